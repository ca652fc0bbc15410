"""Every workaround of a DataJoint 2.3.5 behaviour, in one place.

Each function names the behaviour it works around and the version it was seen in. Whoever upgrades
DataJoint (``install_requires`` pins ``datajoint>=2.3.5,<2.4``) revisits this module: drop what the
new version fixes, and keep the rest with the new version named.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import datajoint as dj
from datajoint.heading import Heading
from datajoint.utils import from_camel_case

from .errors import ActivationError, UsageError
from .locks import activation_lock

#: What DataJoint 2.3.5 records as the error of a job whose worker was stopped with SIGTERM.
SIGTERM_MESSAGE = "SystemExit: SIGTERM received"

_BACKSLASH_BEFORE_QUOTE = re.compile(r"\\(?=['\"]|$)")


def cascade_counts(expression: dj.Table) -> dict[str, int]:
    """Rows per table (full table name) that deleting ``expression`` would remove, counted without a log line.

    DataJoint 2.3.5's ``Diagram.counts()`` logs one "``table`` (N tuples)" line (INFO, which its
    logger prints by default) per table it counts: a count is not an action to report (``set_status``
    and the web's delete preview count downstream rows). Those records are dropped by a filter on
    DataJoint's logger for this thread only, while the count runs; its level and every other record
    (another thread's, or this thread's before and after) are left as they are.
    """
    counting = threading.get_ident()

    def keep(record: logging.LogRecord) -> bool:
        return record.thread != counting or not record.getMessage().endswith(" tuples)")

    logger = logging.getLogger("datajoint")
    logger.addFilter(keep)
    try:
        counts: Mapping[str, int] = dj.Diagram.cascade(expression).counts()
    finally:
        logger.removeFilter(keep)
    return dict(counts)


@contextmanager
def read_snapshot(connection: dj.Connection) -> Iterator[None]:
    """Every read inside sees the database as it was at one instant: one read-only transaction.

    For a reader of several tables (an export) that must not see a session without the parts another
    client commits meanwhile. ``REPEATABLE READ`` and ``READ ONLY`` on both backends (MySQL/MariaDB:
    ``START TRANSACTION WITH CONSISTENT SNAPSHOT``; PostgreSQL: ``BEGIN ISOLATION LEVEL REPEATABLE
    READ READ ONLY``), rolled back at the end. DataJoint 2.3.5's ``start_transaction`` takes no
    isolation level, so the statement is its adapter's with one, and DataJoint is told of the
    transaction (its private ``_in_transaction``) so that a connection lost inside raises
    ``LostConnectionError`` instead of reconnecting silently outside the snapshot. Inside a transaction
    of the caller: that transaction's view, left to the caller.
    """
    if connection.in_transaction:
        yield
        return
    adapter = connection.adapter
    if adapter.backend == "postgresql":
        begin = adapter.start_transaction_sql("REPEATABLE READ READ ONLY")
    else:  # the level of the next transaction only; the server's default may be READ COMMITTED
        connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        begin = adapter.start_transaction_sql("READ ONLY")
    connection.query(begin)
    connection._in_transaction = True
    try:
        yield
    finally:
        with suppress(Exception):  # a lost connection has ended the transaction already
            connection.cancel_transaction()
        connection._in_transaction = False


def declare_jobs_table(table: type[dj.Table]) -> dj.Table:
    """The jobs table of ``table``, declared if it does not exist yet.

    DataJoint 2.3.5 derives the jobs table's key types from the target table's columns; on
    PostgreSQL, columns inherited through a foreign key carry no DataJoint type, so a ``datetime``
    key (e.g. ``Session.session_datetime``) arrives as ``timestamp without time zone`` and the
    declaration fails. Here such columns take the type declared in the table they come from (this
    writes DataJoint's private ``Job._definition`` before ``declare()``).
    """
    from datajoint.jobs import Job

    instance = table()
    if Job(instance).is_declared:
        return instance.jobs
    with activation_lock(instance.connection, instance.database):  # many workers may start at once
        jobs = Job(instance)
        if not jobs.is_declared:
            definition = jobs.definition
            for name in instance.primary_key:
                attribute = instance.heading[name]
                if attribute.original_type is None:
                    origin = _origin_type(instance, attribute.lineage)
                    if origin and origin != attribute.type:
                        definition = definition.replace(
                            f"\n    {name} : {attribute.type}\n", f"\n    {name} : {origin}\n"
                        )
            jobs._definition = definition
            jobs.declare()
    return instance.jobs


def declared_names(tables: Iterable[type[dj.Table]], backend: str) -> list[tuple[str, str]]:
    """The names DataJoint 2.3.5 makes the server create for the master classes ``tables``: (kind, name) pairs.

    Each class's table (its tier's prefix and its name in snake case), its part tables
    (``master__part``) and, for an Imported or Computed table, its jobs table (``~~`` and the name
    without leading underscores; ``datajoint.jobs.Job``). On MySQL/MariaDB also the names the server
    gives the foreign keys DataJoint declares without a name (``table_ibfk_N``, one per ``->`` line),
    which count against the same limit ("Identifier name ... is too long"); PostgreSQL shortens its
    own. Computed from the classes alone, so that a name the server cannot hold is found before
    anything is created.
    """
    names: list[tuple[str, str]] = []
    for table in tables:
        parts = [part for part in vars(table).values() if isinstance(part, type) and issubclass(part, dj.Part)]
        named = [(table.table_name, table)] + [(f"{table.table_name}__{from_camel_case(p.__name__)}", p) for p in parts]
        for name, cls in named:
            names.append(("table", name))
            definition = vars(cls).get("definition", "")
            references = sum(line.strip().startswith("->") for line in str(definition).splitlines())
            if backend == "mysql" and references:
                names.append(("foreign key", f"{name}_ibfk_{references}"))
        if issubclass(table, dj.Imported | dj.Computed):
            names.append(("jobs table", "~~" + table.table_name.lstrip("_")))
    return names


def _origin_type(table: dj.Table, lineage: str | None) -> str | None:
    """The DataJoint type of an attribute in the table it was declared in (from its lineage)."""
    if not lineage or lineage.count(".") < 2:
        return None
    database, table_name, attribute = lineage.rsplit(".", 2)
    adapter = table.connection.adapter
    origin = dj.FreeTable(table.connection, adapter.make_full_table_name(database, table_name))
    heading = origin.heading[attribute]
    return heading.original_type or heading.type


def interrupted_here() -> dict[str, object]:
    """The jobs rows this process's interrupted job left: a restriction (``table.jobs & interrupted_here()``).

    DataJoint 2.3.5's ``populate(reserve_jobs=True)`` records a job interrupted by SIGTERM as an
    error (:data:`SIGTERM_MESSAGE`), so the key would not be made again until cleared; an
    interruption is not a failure of the key, and the caller puts such rows back
    (:func:`element_session.jobs.put_back`).
    """
    return {"status": "error", "host": platform.node(), "pid": os.getpid(), "error_message": SIGTERM_MESSAGE}


def match_backslashes_as_datajoint_escapes_them(connection: dj.Connection) -> None:
    """On PostgreSQL, read backslashes in string literals as escapes, as DataJoint writes them.

    DataJoint 2.3.5 escapes a backslash in a dict restriction by doubling it (MySQL's rule). With
    PostgreSQL's default ``standard_conforming_strings = on`` the doubled backslash is taken
    literally, and ``Table & {"name": "a\\b"}`` silently matches nothing. Turning the setting off for
    this session makes such restrictions exact; query parameters are unaffected. To make it
    permanent for a role: ``ALTER ROLE name SET standard_conforming_strings = off``.
    """
    if connection.adapter.backend != "postgresql":
        return
    if connection.query("SHOW standard_conforming_strings").fetchone()[0] == "on":
        connection.query("SET escape_string_warning = off")
        connection.query("SET standard_conforming_strings = off")


def forget_dropped_schema(schema: dj.Schema) -> None:
    """Remove a dropped ``schema`` from its connection's registry and dependency graph.

    DataJoint 2.3.5's ``Schema.drop`` leaves the dropped schema registered on the connection
    (``connection.schemas``), where later cascading deletes still look for its tables, and keeps
    the schema object bound, so that its module could not be activated again.
    """
    schema.connection.schemas.pop(schema.database, None)
    schema.connection.dependencies.clear()
    schema.database = None


def check_key_backslashes(value: str) -> str:
    """``value``, refused (``ValueError``) if it has a backslash before a quote or at its end.

    DataJoint 2.3.5's cascading delete re-reads restrictions as SQL text and misparses such values,
    so rows keyed by them could not be deleted.
    """
    if _BACKSLASH_BEFORE_QUOTE.search(value):
        raise ValueError("a key value may not have a backslash at its end or before a quote")
    return value


def _missing_lineage(table: type[dj.Table]) -> list[str]:
    heading = table().heading
    if not heading.lineage_available:
        return []  # a schema without ``~lineage`` (before DataJoint 2.x): joins do not check lineage
    return [name for name in table.primary_key if heading[name].lineage is None]


def reload_stale_headings(tables: Iterable[type[dj.Table]], schema_name: str) -> None:
    """Read again the headings of ``tables`` that were read before their lineage rows were repaired.

    DataJoint 2.3.5 repairs missing ``~lineage`` rows of a declared table while activating its
    schema (``Table._refresh_lineage``), but the table's heading, read just before to find them
    missing, stays cached without lineage: the first join in the process then fails ("Cannot join
    on attribute ...: lineage missing"), the next process works. A new heading is made the way
    DataJoint's own ``Table.alter`` does. Lineage still missing afterwards (the account may not
    write ``~lineage``, or the upstream schema was not activated with ``create_tables``) raises
    :class:`ActivationError` naming the repair.
    """
    missing = []
    for table in tables:
        if _missing_lineage(table):
            table._heading = Heading(table_info=table().heading.table_info)
            missing += [f"`{table.database}`.`{table.table_name}`.{name}" for name in _missing_lineage(table)]
    if missing:
        raise ActivationError(
            f"the ~lineage rows DataJoint 2.x needs for joins are missing for {', '.join(missing)}, and activating "
            f"`{schema_name}` could not write them. Repair them with `element-session migrate --schema {schema_name}` "
            "(MySQL/MariaDB), or activate once with an account that may write to the schemas' `~lineage` tables."
        )


# --------------------------------------------------------------------------- connections

#: Seconds to wait for the server to accept a connection and answer its handshake (0: no limit).
CONNECT_TIMEOUT_VARIABLE = "ELEMENT_SESSION_CONNECT_TIMEOUT"
#: Seconds to wait for the server's answer to a query (0: no limit).
READ_TIMEOUT_VARIABLE = "ELEMENT_SESSION_READ_TIMEOUT"
DEFAULT_TIMEOUT = 30.0


def connection_timeouts() -> tuple[float | None, float | None]:
    """(connect, read) timeouts in seconds from the environment (default 30 s each; 0: no limit).

    Raises
    ------
    UsageError
        A value that is not a number >= 0 (the message names the variable).
    """
    found = []
    for name in (CONNECT_TIMEOUT_VARIABLE, READ_TIMEOUT_VARIABLE):
        text = os.environ.get(name, "").strip()
        try:
            value = float(text) if text else DEFAULT_TIMEOUT
        except ValueError:
            value = -1.0
        if not value >= 0:  # also NaN
            raise UsageError(f"{name}={text!r}: give a number of seconds >= 0 (0: no limit)")
        found.append(value or None)
    return found[0], found[1]


def install_connection_rules() -> None:
    """Make every DataJoint connection of this process safe for long-lived workers (idempotent).

    DataJoint 2.3.5 (each point a workaround of a behaviour seen there):

    - connects without a read timeout (a server that accepts and never answers, frozen or behind a
      dead SSH tunnel, hangs the process forever), and with a fixed 10 s connect timeout on
      PostgreSQL: here the connect and read timeouts come from :func:`connection_timeouts`
      (PyMySQL's ``connect_timeout``/``read_timeout``/``write_timeout``; libpq's
      ``connect_timeout``, which bounds the handshake too, and
      :mod:`element_session.answer_deadline` for the answers, as psycopg2 has no read timeout);
    - on PostgreSQL never replaces a connection the server ended (``pg_terminate_backend``, a
      restart, an idle timeout): psycopg2 reports it without an SQLSTATE, which DataJoint does not
      read as a lost connection, and later the closed connection fails before DataJoint's reconnect
      looks at it. Here such errors are lost connections (so DataJoint reconnects and runs the query
      again, or, inside a transaction, cancels it), and a query on a closed connection (outside a
      transaction, with ``database.reconnect``) connects again first;
    - keeps the first ``connection_id`` after a reconnect, so jobs reserved afterwards would name a
      connection that is gone (and look stale to :mod:`element_session.liveness`): here it is read
      again on every connect;
    - compares jobs times (``CURRENT_TIMESTAMP(3)`` into ``datetime(3)`` columns) in each client's
      session time zone, so a worker under ``PGTZ=Asia/Tokyo`` writes times others read as in the
      future: here every session's time zone is UTC, the zone every stored time is in (docs/times.md).
    """
    if getattr(dj.Connection, "_element_session_rules", False):
        return
    from datajoint.adapters import mysql, postgres

    connect, query = dj.Connection.connect, dj.Connection.query

    def connect_with_rules(self: dj.Connection) -> None:
        connect(self)
        _after_connect(self)

    def query_with_reconnect(self: dj.Connection, sql: str, args: Any = (), **kwargs: Any) -> Any:
        wanted = kwargs.get("reconnect")
        wanted = self._config["database.reconnect"] if wanted is None else wanted
        if wanted and _closed(self) and not getattr(self, "_in_transaction", False):
            self.connect()
        return query(self, sql, args, **kwargs)

    adapter = postgres.PostgreSQLAdapter
    postgres_connect, postgres_translate = adapter.connect, adapter.translate_error

    def postgres_lost_connection(self: Any, error: Exception, query: str = "") -> Exception:
        # the server closed the connection: psycopg2 says so with no SQLSTATE (OperationalError
        # "server closed the connection unexpectedly", InterfaceError "connection already closed")
        lost = type(error).__name__ in ("OperationalError", "InterfaceError") and not getattr(error, "pgcode", None)
        return dj.errors.LostConnectionError(str(error)) if lost else postgres_translate(self, error, query)

    def postgres_with_timeout(self: Any, *args: Any, **kwargs: Any) -> Any:
        connect_timeout = connection_timeouts()[0]  # libpq: whole seconds, at least 2; 0 is no limit
        kwargs.setdefault("connect_timeout", max(2, math.ceil(connect_timeout)) if connect_timeout else 0)
        return postgres_connect(self, *args, **kwargs)

    for adapter_module in (mysql, postgres):
        if adapter_module.client is not None:  # None: the driver is not installed (the adapter says so)
            adapter_module.client = _ClientWithTimeouts(adapter_module.client)
    postgres.PostgreSQLAdapter.connect = postgres_with_timeout
    postgres.PostgreSQLAdapter.translate_error = postgres_lost_connection
    dj.Connection.connect = connect_with_rules
    dj.Connection.query = query_with_reconnect
    dj.Connection._element_session_rules = True


class _ClientWithTimeouts:
    """The driver module as DataJoint's adapter calls it (``client.connect``), with this process's timeouts.

    PyMySQL takes them as ``connect_timeout``/``read_timeout``/``write_timeout``; psycopg2 has no
    read timeout, :mod:`element_session.answer_deadline` gives its connections one.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def connect(self, **params: Any) -> Any:
        connect_timeout, read_timeout = connection_timeouts()
        if self._client.__name__ == "psycopg2":
            from . import answer_deadline

            return answer_deadline.connect(read_timeout, READ_TIMEOUT_VARIABLE, **params)
        params.setdefault("connect_timeout", connect_timeout or 31536000)
        params.setdefault("read_timeout", read_timeout)
        params.setdefault("write_timeout", read_timeout)
        return self._client.connect(**params)


def _closed(connection: dj.Connection) -> bool:
    """Whether the driver knows the connection is closed (psycopg2 ``closed``; PyMySQL ``open``)."""
    raw = getattr(connection, "_conn", None)
    if raw is None:
        return False
    if hasattr(raw, "closed") and not hasattr(raw, "open"):
        return bool(raw.closed)
    return not getattr(raw, "open", True)


def _after_connect(connection: dj.Connection) -> None:
    """UTC session time zone and the new ``connection_id``, on the driver's connection itself."""
    raw = connection._conn
    cursor = raw.cursor()
    try:
        if connection.adapter.backend == "postgresql":
            cursor.execute("SET TIME ZONE 'UTC'")
        else:
            cursor.execute("SET time_zone = '+00:00'")
    finally:
        cursor.close()
    connection.connection_id = connection.adapter.get_connection_id(raw)


def statement_text(connection: dj.Connection, sql: str, args: Sequence[Any]) -> str:
    """MySQL/MariaDB: ``sql`` with ``args`` escaped into it by the driver, as PyMySQL's ``execute`` would send it.

    For building a statement on another thread while the connection waits for the server (PyMySQL's
    ``mogrify``: no I/O). DataJoint 2.3.5's ``Connection`` offers no way to escape without executing;
    it holds the driver's connection as ``_conn``. The text is to be sent by ``Connection.query`` with
    no arguments, its ``%`` doubled (PyMySQL formats a query even when given ``args=()``, DataJoint's
    default).
    """
    return str(connection._conn.cursor().mogrify(sql, args))
