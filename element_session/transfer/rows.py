"""Tables as a transfer sees them: their columns in portable types, and their rows as stored.

Rows are read with the query's own SQL through the connection's cursor, not through DataJoint's
decoding: a blob stays the bytes DataJoint wrote, so that it arrives byte-identical.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from ..pipeline import label, tables
from .bundle import Column, TableEntry, table_of

#: DataJoint's table tiers, by the prefix of the SQL table name (parts have ``__`` inside the name).
_TIERS = (("~", "hidden"), ("__", "computed"), ("_", "imported"), ("#", "lookup"))


#: A text type with its length, as DataJoint declares it (``varchar(1024)``, ``char(8)``).
_TEXT_TYPE = re.compile(r"(?i)(var)?char\(\d+\)")


def portable_type(attribute: Any, adapter: Any) -> str:
    """The type of a heading's attribute as both backends name it: its codec (``<blob>``), else
    DataJoint's core type (``int32``, ``datetime``, ``varchar(32)``), else the SQL type.

    DataJoint 2.3.5 reads the declared type from the column's comment (PostgreSQL keeps it there);
    a text column altered on the server after its declaration (``ALTER TABLE ... TYPE integer``,
    another length) is given by the server's type instead, so that an import compares what the
    column holds, not what it was declared as.
    """
    if attribute.codec is not None:
        return f"<{attribute.codec.name}>"
    actual = adapter.sql_type_to_core(attribute.type) or attribute.type
    declared = attribute.original_type
    if declared and _TEXT_TYPE.fullmatch(declared) and actual.replace(" ", "").lower() != declared.lower():
        return actual
    return declared or actual


def columns_of(table: Any) -> list[Column]:
    """The columns of a table (its visible heading) in the bundle's terms."""
    adapter = table.connection.adapter
    return [
        Column(a.name, portable_type(a, adapter), bool(a.in_key), bool(a.nullable))
        for a in table.heading.attributes.values()
    ]


def tier_of(table: Any) -> str:
    """``manual``, ``lookup``, ``imported``, ``computed`` or ``part`` (from the SQL table name)."""
    name = table.table_name
    if "__" in name.lstrip("_#~"):
        return "part"
    return next((tier for prefix, tier in _TIERS if name.startswith(prefix)), "manual")


def stored_value(value: Any) -> Any:
    """A value as the driver returned it, in the type the bundle holds (bytes for PostgreSQL's memoryview)."""
    return bytes(value) if isinstance(value, memoryview | bytearray) else value


def read_columns(query: Any, names: Sequence[str]) -> dict[str, Sequence[Any]]:
    """The rows of a query expression as stored (blobs undecoded), column by column, in the server's order.

    One statement (the query's own SQL), its rows read as tuples: a dict of column name to its
    values, one per row (a blob as the driver gives it: bytes, or a memoryview on PostgreSQL).
    """
    cursor = query.cursor()
    found = [d[0] for d in cursor.description]
    values = list(zip(*cursor.fetchall(), strict=True)) or [()] * len(found)
    columns = dict(zip(found, values, strict=True))
    return {name: columns[name] for name in names}


def read_rows(query: Any, names: Sequence[str], key: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of a query expression as stored (blobs as bytes), as dicts sorted by the primary key ``key``.

    Parameters
    ----------
    query : a DataJoint query expression of one table (a restriction of it).
    names : the columns to read.
    key : the primary-key columns, by which the rows are sorted.
    """
    columns = [c for c in columns_of(query) if c.name in names]
    entry = TableEntry("rows", "", "", [Column(c.name, c.type, c.name in key, c.nullable) for c in columns])
    return table_of(entry, read_columns(query, names)).to_pylist()


def tables_by_role(pipeline: ModuleType, session_module: ModuleType) -> dict[str, Any]:
    """The activated tables of ``pipeline`` by role (``session.Session``, ``subject.Subject``, ...).

    The session module's tables are named ``session.<Class>`` (``session.Session.Attribute``) also
    where the pipeline holds the module under another name or not at all.
    """
    found = {table.full_table_name: (role, table) for role, table in tables(pipeline).items()}
    module = session_module
    own = [module.Session, module.SessionDirectory, module.SessionExperimenter, module.SessionNote,
           module.ProjectSession, module.SessionTimezone, module.SessionStatus]  # fmt: skip
    for table in own:
        found[table.full_table_name] = (label(table, "session"), table)
    found[module.Session.Attribute.full_table_name] = ("session.Session.Attribute", module.Session.Attribute)
    return {role: table for role, table in found.values()}
