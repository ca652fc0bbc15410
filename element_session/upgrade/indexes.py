"""The index leading with ``session_datetime`` on the datetime variant's ``session`` table, both backends.

The list of sessions newest first, its pages and a time window order or restrict every session by
start time; the primary key (subject, then start time) cannot serve that, so without this index the
server reads and sorts every session on each request. Schemas declared by this release have it
(``index(session_datetime)`` in ``Session``'s definition); :func:`missing` finds an older schema
without it, :func:`changes` plans the one statement that adds it (``migrate`` applies it, ``doctor``
reports its absence). Adding it reads the table once (seconds at 10^6 sessions) and changes no row.
"""

from __future__ import annotations

import datajoint as dj

from .steps import Change, statement

__all__ = ["COLUMN", "changes", "missing"]

COLUMN = "session_datetime"
TABLE = "session"


#: Whether ``session_datetime`` is in the primary key of ``session`` (the datetime variant), by backend.
_IN_KEY = {
    "postgresql": (
        "SELECT 1 FROM information_schema.table_constraints t JOIN information_schema.key_column_usage k "
        "ON k.constraint_schema = t.constraint_schema AND k.constraint_name = t.constraint_name "
        "AND k.table_name = t.table_name WHERE t.constraint_type = 'PRIMARY KEY' "
        "AND t.table_schema = %s AND t.table_name = %s AND k.column_name = %s"
    ),
    "mysql": (
        "SELECT 1 FROM information_schema.statistics WHERE table_schema = %s AND table_name = %s "
        "AND index_name = 'PRIMARY' AND column_name = %s"
    ),
}
#: Whether an index of ``session`` has ``session_datetime`` as its first column, by backend.
_INDEXED = {
    "postgresql": (
        "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attname = %s"
    ),
    "mysql": (
        "SELECT 1 FROM information_schema.statistics WHERE table_schema = %s AND table_name = %s "
        "AND seq_in_index = 1 AND column_name = %s"
    ),
}


def _holds(connection: dj.Connection, schema: str, queries: dict[str, str]) -> bool:
    """Whether the catalog query of ``queries`` for this backend finds ``session_datetime`` of ``schema``.session."""
    sql = queries[connection.adapter.backend]
    return connection.query(sql, args=(schema, TABLE, COLUMN)).fetchone() is not None


def missing(connection: dj.Connection, schema: str) -> bool:
    """Whether ``schema`` is of the datetime variant and its ``session`` table lacks the start-time index."""
    return _holds(connection, schema, _IN_KEY) and not _holds(connection, schema, _INDEXED)


def changes(connection: dj.Connection, schema: str) -> list[Change]:
    """The step that adds the start-time index to ``schema``.``session``, or none where it is there (or not wanted)."""
    if not missing(connection, schema):
        return []
    adapter = connection.adapter
    table = f"{adapter.quote_identifier(schema)}.{adapter.quote_identifier(TABLE)}"
    if adapter.backend == "postgresql":  # the name DataJoint gives the index it declares
        sql = adapter.create_index_ddl(table, [COLUMN])
    else:
        sql = f"ALTER TABLE {table} ADD INDEX {adapter.quote_identifier(COLUMN)} ({adapter.quote_identifier(COLUMN)})"
    what = f"add an index on {COLUMN} (the newest sessions and time windows without reading every session)"
    return [Change(TABLE, what, sql, statement(sql))]
