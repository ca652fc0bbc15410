"""DataJoint 2.x's ``~lineage`` of a legacy schema: what it records, what it should record, the steps between.

DataJoint 2.x joins tables over an attribute only where both record the same origin of it in their
schema's ``~lineage`` table. DataJoint 0.14 wrote none: :func:`wanted_lineage` traces each key
attribute through the foreign keys to the table that first declares it, :func:`recorded_lineage`
reads what a schema records, and :func:`lineage_changes` plans the steps that write the difference.
"""

from __future__ import annotations

import datajoint as dj

from .catalog import Table, referenced_column
from .steps import Change, quote

__all__ = ["lineage_changes", "recorded_lineage", "wanted_lineage"]


def recorded_lineage(connection: dj.Connection, schema: str) -> dict[tuple[str, str], str]:
    """The origin recorded in ``schema``'s ``~lineage`` for each (table, attribute); the table must exist."""
    rows = connection.query(f"SELECT table_name, attribute_name, lineage FROM {quote(schema)}.`~lineage`")
    return {(table, attribute): origin for table, attribute, origin in rows}


def wanted_lineage(connection: dj.Connection, schema: str, tables: dict[str, Table]) -> dict[tuple[str, str], str]:
    """The origin of every key and foreign-key attribute of ``tables``, traced through the foreign keys.

    Where another schema records an attribute's lineage, that record is its origin; legacy schemas
    record none, and their foreign keys are followed to the attribute that no foreign key supplies.
    """
    from datajoint.lineage import get_lineage

    cache: dict[tuple[str, str, str], str] = {}

    def parent_of(db: str, table: str, column: str) -> tuple[str, str, str] | None:
        if db == schema:
            for fk in tables[table].foreign_keys:
                if column in fk.columns:
                    return fk.parent_schema, fk.parent_table, fk.parent_columns[fk.columns.index(column)]
            return None
        return referenced_column(connection, db, table, column)

    def origin(db: str, table: str, column: str) -> str:
        if (db, table, column) not in cache:
            recorded = get_lineage(connection, db, table, column) if db != schema else None
            parent = None if recorded else parent_of(db, table, column)
            cache[(db, table, column)] = recorded or (origin(*parent) if parent else f"{db}.{table}.{column}")
        return cache[(db, table, column)]

    return {
        (table.name, column): origin(schema, table.name, column)
        for table in tables.values()
        for column in sorted(set(table.primary_key) | table.fk_columns)
        if not column.startswith("_")
    }


def lineage_changes(
    connection: dj.Connection,
    schema: str,
    tables: dict[str, Table],
    *,
    exists: bool,
    own: bool,
    scope: str = " (metadata only: no table of this upstream schema changes)",
) -> list[Change]:
    """Create ``~lineage`` in ``schema`` unless it ``exists``, and write what :func:`wanted_lineage` finds there.

    ``own`` says that ``schema`` is the one being migrated (its steps name ``~lineage`` alone); for
    another schema, ``scope`` is added to the description of the table's creation. Empty if the
    recorded lineage is already the wanted one.
    """
    from datajoint import lineage

    wanted = wanted_lineage(connection, schema, tables)
    if exists and recorded_lineage(connection, schema) == wanted:
        return []
    where = "~lineage" if own else f"`{schema}`.~lineage"
    scope = "" if own else scope
    changes = []
    if not exists:
        changes.append(
            Change(
                where,
                "create DataJoint 2.x's lineage table" + scope,
                f"CREATE TABLE {quote(schema)}.`~lineage` (...) as DataJoint 2.3 declares it",
                lambda conn: lineage.ensure_lineage_table(conn, schema),
            )
        )

    def write(conn: dj.Connection) -> None:
        with conn.transaction:
            conn.query(f"DELETE FROM {quote(schema)}.`~lineage`")
            lineage.insert_lineages(conn, schema, [(t, a, origin) for (t, a), origin in sorted(wanted.items())])

    changes.append(
        Change(
            where,
            f"record the origin of {len(wanted)} key attribute{'s' * (len(wanted) != 1)} for DataJoint 2.x's joins "
            "(one transaction)",
            f"DELETE FROM {quote(schema)}.`~lineage`; INSERT INTO {quote(schema)}.`~lineage` ...",
            write,
        )
    )
    return changes
