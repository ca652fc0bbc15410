"""The index leading with ``session_datetime`` on the datetime variant's ``session`` table, both backends.

The list of sessions newest first, its pages and a time window order or restrict every session by
start time; the primary key (subject, then start time) cannot serve that, so without this index the
server reads and sorts every session on each request. Schemas declared by this release have it
(``index(session_datetime)`` in ``Session``'s definition); :func:`missing` finds an older schema
without it, :func:`changes` plans the one statement that adds it (``migrate`` applies it, ``doctor``
reports its absence). Adding it reads the table once (seconds at 10^6 sessions) and changes no row.

The list's order is ``session_datetime DESC`` and then the rest of the key (sessions that share a
start time: a lab's rigs started on the minute). InnoDB appends the primary key to every secondary
index, so on MySQL/MariaDB ``index(session_datetime)`` is in that order. A PostgreSQL B-tree holds
only the columns named, and a definition cannot name the subject's key (the linking module supplies
it): there the index is :data:`ORDER_INDEX` over :func:`order_columns`, which activation adds
(:func:`install`). Without it PostgreSQL sorted every session sharing the newest start time at each
page: 172 ms for the first page of 10^6 sessions with 10,000 a start time, 0.1 ms with it
(``EXPLAIN ANALYZE``, PostgreSQL 15, this project's web-load data set).
"""

from __future__ import annotations

from collections.abc import Sequence

import datajoint as dj

from .steps import Change, statement

__all__ = ["COLUMN", "ORDER_INDEX", "changes", "install", "missing", "order_columns"]

COLUMN = "session_datetime"
TABLE = "session"
ORDER_INDEX = "session_newest_first"  # PostgreSQL's index in the list's order (names are per schema there)


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


#: The primary-key columns of ``session``, in key order (PostgreSQL).
_PG_KEY = (
    "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position) "
    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
    "WHERE i.indisprimary AND n.nspname = %s AND c.relname = %s ORDER BY k.position"
)
#: Whether an index of ``session`` has exactly the columns given, in their order (PostgreSQL).
_PG_ORDER_INDEXED = (
    "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s "
    "AND ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position) "
    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.position) = %s::text[]"
)


def order_columns(key: Sequence[str]) -> list[str]:
    """``session_datetime`` and then the rest of ``key`` (``Session``'s primary key): the list's order."""
    return [COLUMN, *(name for name in key if name != COLUMN)]


def _pg_columns(connection: dj.Connection, schema: str) -> set[str]:
    """The columns of ``schema``.session (PostgreSQL)."""
    sql = "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"
    return {row[0] for row in connection.query(sql, args=(schema, TABLE)).fetchall()}


def _pg_order(connection: dj.Connection, schema: str) -> list[str]:
    """:func:`order_columns` of ``schema``.session's primary key, read from the catalog (PostgreSQL)."""
    return order_columns([row[0] for row in connection.query(_PG_KEY, args=(schema, TABLE)).fetchall()])


def _holds(connection: dj.Connection, schema: str, queries: dict[str, str]) -> bool:
    """Whether the catalog query of ``queries`` for this backend finds ``session_datetime`` of ``schema``.session."""
    sql = queries[connection.adapter.backend]
    return connection.query(sql, args=(schema, TABLE, COLUMN)).fetchone() is not None


def _pg_has_order_index(connection: dj.Connection, schema: str) -> bool:
    """Whether ``schema``.session has an index over exactly :func:`order_columns` (PostgreSQL)."""
    args = (schema, TABLE, _pg_order(connection, schema))
    return connection.query(_PG_ORDER_INDEXED, args=args).fetchone() is not None


def missing(connection: dj.Connection, schema: str) -> bool:
    """Whether ``schema`` is of the datetime variant and its ``session`` table lacks the start-time index.

    On PostgreSQL: lacks an index over exactly :func:`order_columns` (:data:`ORDER_INDEX`).
    """
    if not _holds(connection, schema, _IN_KEY):
        return False
    if connection.adapter.backend == "postgresql":
        return not _pg_has_order_index(connection, schema)
    return not _holds(connection, schema, _INDEXED)


def _create_order_index(connection: dj.Connection, schema: str) -> str:
    """The ``CREATE INDEX`` of :data:`ORDER_INDEX` on ``schema``.session (PostgreSQL)."""
    quote = connection.adapter.quote_identifier
    columns = ", ".join(quote(c) for c in _pg_order(connection, schema))
    return f"CREATE INDEX IF NOT EXISTS {quote(ORDER_INDEX)} ON {quote(schema)}.{quote(TABLE)} ({columns})"


def install(connection: dj.Connection, schema: str) -> None:
    """Add :data:`ORDER_INDEX` to ``schema``.session where it is missing, on PostgreSQL (activation).

    The one index of this release that ``Session``'s definition cannot state (see above), for either
    variant (the id variant lists its sessions with a start time newest first too). The catalog is
    read first, so that an activation where the index exists takes no lock of the table. Run under
    the activation lock, so once per schema; a table of 10^6 sessions took 1.4 s. Does nothing on
    MySQL/MariaDB (``migrate`` adds the index to their older schemas of the datetime variant).
    """
    if connection.adapter.backend != "postgresql" or COLUMN not in _pg_columns(connection, schema):
        return
    if not _pg_has_order_index(connection, schema):
        connection.query(_create_order_index(connection, schema))


def changes(connection: dj.Connection, schema: str) -> list[Change]:
    """The step that adds the start-time index to ``schema``.``session``, or none where it is there (or not wanted)."""
    if not missing(connection, schema):
        return []
    adapter = connection.adapter
    table = f"{adapter.quote_identifier(schema)}.{adapter.quote_identifier(TABLE)}"
    if adapter.backend == "postgresql":
        sql = _create_order_index(connection, schema)
    else:
        sql = f"ALTER TABLE {table} ADD INDEX {adapter.quote_identifier(COLUMN)} ({adapter.quote_identifier(COLUMN)})"
    what = f"add an index on {COLUMN} (the newest sessions and time windows without reading every session)"
    return [Change(TABLE, what, sql, statement(sql))]
