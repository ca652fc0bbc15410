"""The history of every change to the rows of a session schema, written by the database itself.

Activation (:func:`install`) creates a history table, ``~session_history``, in the session schema and
one trigger per table and action (MySQL/MariaDB: ``AFTER INSERT``, ``AFTER UPDATE`` and ``AFTER DELETE``
triggers of each table; PostgreSQL: one ``plpgsql`` trigger function for every table, inserts and
deletes recorded per statement from its transition table, updates per row). Every
insert, update and delete of a row, by any path (this package, plain DataJoint calls such as
``Session.delete()`` or ``update1``, SQL from another client), adds one history row in the same
transaction: when (UTC, microseconds), the database account (MySQL's ``USER()``, PostgreSQL's
``session_user``), the action, the table, and the row's values before and after as JSON (object
values of ``attribute_blob`` as their MD5 on MySQL/MariaDB; PostgreSQL keeps their bytes, and
:func:`history` gives their MD5 on both). A rolled-back transaction leaves no
history row. The table has no foreign key to ``Session``: the history of a deleted session stays.
The name starts with ``~``, so DataJoint, ``migrate`` and the layout checks leave it alone, and
nothing in this package updates or deletes its rows.

A reason given to the package (``set_status(..., reason=...)``) reaches the triggers through a
variable of the same transaction (:func:`reason`): ``@element_session_reason`` on MySQL/MariaDB,
``element_session.reason`` (``set_config(..., true)``) on PostgreSQL. The triggers write as the account
that installed them (MySQL's triggers run as their definer; the PostgreSQL function is ``SECURITY
DEFINER``), so that accounts may change rows without any privilege on the history table itself.

Creating triggers needs the ``TRIGGER`` privilege (MySQL/MariaDB; on PostgreSQL, ownership of the
tables or ``TRIGGER``). An account without it activates all the same: where no history table exists yet,
one :class:`~element_session.errors.HistoryOffWarning` says the history is off and how to turn it on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

import datajoint as dj
from datajoint.utils import to_camel_case

from .database import database_errors, is_mariadb, server_error, translate
from .errors import HistoryOffWarning, PermissionDeniedError
from .formats import value_text
from .pipeline import session_module_of
from .times import format_time

#: The history table's name in the session schema (hidden from DataJoint by its ``~``).
TABLE = "~session_history"
#: Name of the PostgreSQL trigger function and of every PostgreSQL trigger.
_PG_NAME = "element_session_history"
_ACTIONS = {"i": "INSERT", "u": "UPDATE", "d": "DELETE"}

_DDL = {
    "mysql": (
        "CREATE TABLE IF NOT EXISTS {table} ("
        "history_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "changed_at DATETIME(6) NOT NULL, account VARCHAR(300) NOT NULL, action VARCHAR(8) NOT NULL, "
        "table_name VARCHAR(64) NOT NULL, old_values LONGTEXT NULL, new_values LONGTEXT NULL, "
        "reason VARCHAR(1024) NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin "
        "COMMENT='every change of the rows of this schema, written by triggers (element_session.history)'"
    ),
    "postgresql": (
        "CREATE TABLE IF NOT EXISTS {table} ("
        "history_id BIGSERIAL PRIMARY KEY, changed_at TIMESTAMP(6) NOT NULL, account TEXT NOT NULL, "
        "action VARCHAR(8) NOT NULL, table_name TEXT NOT NULL, old_values JSONB NULL, new_values JSONB NULL, "
        "reason TEXT NULL)"
    ),
}

#: PostgreSQL: inserts and deletes are recorded per statement from its transition table (one
#: ``INSERT ... SELECT`` for a whole ``COPY``), updates per row (old and new paired).
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog AS $body$
DECLARE
    why text := NULLIF(current_setting('element_session.reason', true), '');
BEGIN
    IF TG_LEVEL = 'STATEMENT' AND TG_OP = 'INSERT' THEN
        INSERT INTO {table} (changed_at, account, action, table_name, old_values, new_values, reason)
        SELECT clock_timestamp() AT TIME ZONE 'UTC', session_user, 'insert', TG_TABLE_NAME, NULL, to_jsonb(n), why
        FROM new_rows n;
    ELSIF TG_LEVEL = 'STATEMENT' AND TG_OP = 'DELETE' THEN
        INSERT INTO {table} (changed_at, account, action, table_name, old_values, new_values, reason)
        SELECT clock_timestamp() AT TIME ZONE 'UTC', session_user, 'delete', TG_TABLE_NAME, to_jsonb(o), NULL, why
        FROM old_rows o;
    ELSE
        INSERT INTO {table} (changed_at, account, action, table_name, old_values, new_values, reason)
        VALUES (clock_timestamp() AT TIME ZONE 'UTC', session_user, 'update', TG_TABLE_NAME,
                to_jsonb(OLD), to_jsonb(NEW), why);
    END IF;
    RETURN NULL;
END
$body$
"""
#: PostgreSQL's triggers of each table: name suffix and what follows ``AFTER``.
_PG_TRIGGERS = {
    "": "UPDATE ON {table} FOR EACH ROW",
    "_i": "INSERT ON {table} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
    "_d": "DELETE ON {table} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT",
}


def _quote(connection: dj.Connection, *names: str) -> str:
    return ".".join(connection.adapter.quote_identifier(n) for n in names)


def _tables(connection: dj.Connection, schema_name: str) -> list[str]:
    """The base tables of the schema that are DataJoint's tables (not ``~`` ones)."""
    rows = connection.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE'",
        args=(schema_name,),
    ).fetchall()
    return sorted(name for (name,) in rows if not name.startswith("~"))


def _columns(connection: dj.Connection, schema_name: str, table: str) -> list[tuple[str, str]]:
    return _tables_columns(connection, schema_name, [table]).get(table, [])


def _tables_columns(
    connection: dj.Connection, schema_name: str, tables: Sequence[str]
) -> dict[str, list[tuple[str, str]]]:
    """Each of ``tables``' columns (name, lower-case data type) in their order, read in one statement."""
    rows = connection.query(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema = %s AND table_name IN ({', '.join(['%s'] * len(tables))}) "
        "ORDER BY table_name, ordinal_position",
        args=(schema_name, *tables),
    ).fetchall()
    found: dict[str, list[tuple[str, str]]] = {}
    for table, name, kind in rows:
        found.setdefault(table, []).append((name, kind.lower()))
    return found


def _existing_triggers(connection: dj.Connection, schema_name: str) -> set[str]:
    """The names of the triggers of the schema's tables that this account can see."""
    if connection.adapter.backend == "postgresql":
        sql = (
            "SELECT c.relname || '/' || t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND NOT t.tgisinternal"
        )
    else:
        sql = "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = %s"
    return {name for (name,) in connection.query(sql, args=(schema_name,)).fetchall()}


def _mysql_trigger_bodies(connection: dj.Connection, schema_name: str) -> dict[str, str]:
    """MySQL/MariaDB: each visible trigger's body (``ACTION_STATEMENT``, as it was created) by name."""
    rows = connection.query(
        "SELECT trigger_name, action_statement FROM information_schema.triggers WHERE trigger_schema = %s",
        args=(schema_name,),
    ).fetchall()
    return {name: body for name, body in rows}


def _mysql_stale_tables(connection: dj.Connection, schema_name: str) -> list[str]:
    """MySQL/MariaDB: the tables whose history triggers write other columns than the table has now.

    A MySQL trigger names the columns it records (``NEW.a``, ``OLD.b``), as they were at its
    creation: after a column is added (by DataJoint's ``alter()`` or plain SQL) it is missing from the
    history; after one is dropped, every write of the table fails (``Unknown column ... in 'NEW'``).
    PostgreSQL's function records whole rows (``to_jsonb``) and has no such list.
    """
    bodies = _mysql_trigger_bodies(connection, schema_name)
    stale = []
    for table in _tables(connection, schema_name):
        for action in _ACTIONS:
            trigger, sql = _mysql_trigger(connection, schema_name, table, action)
            if trigger in bodies and _outdated(bodies[trigger], sql):
                stale.append(table)
                break
    return stale


def _mysql_json(connection: dj.Connection, columns: list[tuple[str, str]], row: str) -> str:
    """``JSON_OBJECT`` of a row's columns (``NEW`` or ``OLD``); a blob as its MD5."""
    parts = []
    for name, kind in columns:
        value = f"{row}.{_quote(connection, name)}"
        if "blob" in kind or "binary" in kind:
            value = f"MD5({value})"
        parts.append(f"'{name}', {value}")
    return f"JSON_OBJECT({', '.join(parts)})"


_BODY_FOLLOWS = " FOR EACH ROW "  # what separates a MySQL trigger's head from its body (ACTION_STATEMENT)


def _outdated(body: str, sql: str) -> bool:
    """Whether a stored trigger's ``body`` differs from that of ``sql`` (its ``CREATE TRIGGER`` for the table now)."""
    return body.strip() != sql.split(_BODY_FOLLOWS, 1)[1]


def _mysql_trigger(connection: dj.Connection, schema_name: str, table: str, action: str) -> tuple[str, str]:
    """The name and ``CREATE TRIGGER`` statement of one MySQL/MariaDB trigger."""
    name = _mysql_trigger_name(table, action)
    columns = _columns(connection, schema_name, table)
    old = _mysql_json(connection, columns, "OLD") if action != "i" else "NULL"
    new = _mysql_json(connection, columns, "NEW") if action != "d" else "NULL"
    sql = (
        f"CREATE TRIGGER {_quote(connection, schema_name, name)} AFTER {_ACTIONS[action]} "
        f"ON {_quote(connection, schema_name, table)}{_BODY_FOLLOWS}"
        f"INSERT INTO {_quote(connection, schema_name, TABLE)} "
        "(changed_at, account, action, table_name, old_values, new_values, reason) "
        f"VALUES (UTC_TIMESTAMP(6), USER(), '{_ACTIONS[action].lower()}', '{table}', {old}, {new}, "
        "@element_session_reason)"
    )
    return name, sql


def install(schema: dj.Schema) -> bool:
    """Create the history table and the triggers of every table of ``schema`` that lacks them.

    Does nothing that exists already (run at every activation), but remakes a MySQL/MariaDB table's
    triggers whose columns changed since (:func:`_mysql_stale_tables`). Returns whether the history is on
    as far as this account can tell.

    Warns
    -----
    HistoryOffWarning
        The account may not create the history table or triggers, and no history table exists yet.
    """
    connection, schema_name = schema.connection, schema.database
    existed = TABLE in {
        name
        for (name,) in connection.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", args=(schema_name,)
        ).fetchall()
    }
    try:
        _create(connection, schema_name)
    except Exception as err:
        if not isinstance(translate(err, connection), PermissionDeniedError) and not _is_trigger_refusal(err):
            raise
        if not existed:
            warnings.warn(
                f"history is off for schema `{schema_name}`: the account may not create its history table or "
                f"triggers ({_server_said(err)}). Grant it TRIGGER (and CREATE) on the schema, or activate once as an "
                "account that has them, to record every change (docs/status.md, 'History').",
                HistoryOffWarning,
                stacklevel=4,  # the caller of the variant's activate()
            )
        return existed
    return True


def _server_said(err: BaseException) -> str:
    """The server's own words of a refusal (not the driver's tuple): ``TRIGGER command denied to user ...``."""
    found = server_error(err)
    return found[1].splitlines()[0] if found and found[1] else str(err)


def _is_trigger_refusal(err: BaseException) -> bool:
    """MySQL's refusals to create a trigger that are not privilege errors of their own (binary logging)."""
    return any(code in str(err) for code in ("1419", "SUPER privilege"))


#: MySQL/MariaDB: the history table's indexed virtual column holding the row's first key value (the
#: subject, for every table of a session schema), cut to its first 255 characters (an index's width).
_FIRST = "first_key_value"
_FIRST_WIDTH = 255
#: The index of the history rows by the first key attribute (on PostgreSQL an index of that expression).
_FIRST_INDEX = "es_history_first_key"


def _first_key_attribute(connection: dj.Connection, schema_name: str) -> str | None:
    """The first primary-key attribute of the schema's ``session`` table, or None where there is none."""
    rows = connection.query(
        "SELECT k.column_name FROM information_schema.table_constraints c "
        "JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name "
        "AND k.table_schema = c.table_schema AND k.table_name = c.table_name "
        "WHERE c.table_schema = %s AND c.table_name = 'session' AND c.constraint_type = 'PRIMARY KEY' "
        "AND k.ordinal_position = 1",
        args=(schema_name,),
    ).fetchall()
    return str(rows[0][0]) if rows else None


def _first_key_expression(backend: str, attribute: str) -> str:
    """The SQL of a history row's value of the key ``attribute`` (an attribute name: letters, digits, ``_``)."""
    if not re.fullmatch(r"(?a)\w+", attribute):
        raise ValueError(f"not an attribute name: {attribute!r}")
    if backend == "postgresql":
        return f"(COALESCE(new_values, old_values) ->> '{attribute}')"
    return f"JSON_UNQUOTE(JSON_EXTRACT(COALESCE(new_values, old_values), '$.{attribute}'))"


def _index_first_key(connection: dj.Connection, schema_name: str) -> None:
    """Index the history rows by the session's first key attribute, where not yet done.

    So that one session's (or subject's) history is read along an index, not by a scan of every
    change of the schema (seconds at 10^5 sessions). MySQL/MariaDB: a ``VIRTUAL`` column
    (:data:`_FIRST`, nothing stored) and its index; PostgreSQL: an index of the expression that
    :func:`history` selects by.
    """
    attribute = _first_key_attribute(connection, schema_name)
    if attribute is None:
        return
    table = _quote(connection, schema_name, TABLE)
    expression = _first_key_expression(connection.adapter.backend, attribute)
    if connection.adapter.backend == "postgresql":
        connection.query(f"CREATE INDEX IF NOT EXISTS {_FIRST_INDEX} ON {table} ({expression})")
        return
    if not _has_first_key_column(connection, schema_name):
        connection.query(
            f"ALTER TABLE {table} ADD COLUMN {_FIRST} VARCHAR({_FIRST_WIDTH}) "
            f"AS (LEFT({expression}, {_FIRST_WIDTH})) VIRTUAL, ADD INDEX {_FIRST_INDEX} ({_FIRST})"
        )


def _has_first_key_column(connection: dj.Connection, schema_name: str) -> bool:
    """MySQL/MariaDB: whether the history table has its indexed first-key column (:data:`_FIRST`)."""
    return bool(
        connection.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s AND column_name = %s",
            args=(schema_name, TABLE, _FIRST),
        ).fetchall()
    )


def _create(connection: dj.Connection, schema_name: str) -> None:
    table = _quote(connection, schema_name, TABLE)
    backend = connection.adapter.backend
    existing = _existing_triggers(connection, schema_name)
    connection.query(_DDL[backend].format(table=table))
    if backend == "postgresql":
        function = _quote(connection, schema_name, _PG_NAME)
        if not any(name.endswith("/" + _PG_NAME) for name in existing):
            connection.query(_PG_FUNCTION.format(function=function, table=table))
        for name in _tables(connection, schema_name):
            for suffix, when in _PG_TRIGGERS.items():
                if f"{name}/{_PG_NAME}{suffix}" not in existing:
                    on = when.format(table=_quote(connection, schema_name, name))
                    connection.query(f"CREATE TRIGGER {_PG_NAME}{suffix} AFTER {on} EXECUTE FUNCTION {function}()")
    else:
        bodies = _mysql_trigger_bodies(connection, schema_name)
        for name in _tables(connection, schema_name):
            for action in _ACTIONS:
                trigger, sql = _mysql_trigger(connection, schema_name, name, action)
                if trigger not in bodies:
                    connection.query(sql)
                elif _outdated(bodies[trigger], sql):  # the table's columns changed
                    _mysql_replace_trigger(connection, schema_name, trigger, sql)
    _index_first_key(connection, schema_name)


def _mysql_replace_trigger(connection: dj.Connection, schema_name: str, trigger: str, sql: str) -> None:
    """Replace a trigger by ``sql`` (its ``CREATE TRIGGER``): in one statement on MariaDB (``CREATE OR
    REPLACE``), dropped and created on MySQL (another process doing the same at once is no error)."""
    if is_mariadb(connection):
        connection.query(sql.replace("CREATE TRIGGER", "CREATE OR REPLACE TRIGGER", 1))
        return
    connection.query(f"DROP TRIGGER IF EXISTS {_quote(connection, schema_name, trigger)}")
    try:
        connection.query(sql)
    except Exception as err:
        if "1359" not in str(err):  # ER_TRG_ALREADY_EXISTS: made by the other process
            raise


def problems(connection: dj.Connection, schema_name: str) -> list[str]:
    """Why the history of ``schema_name`` may miss changes, as this account sees it (empty: none found).

    No history table; no trigger visible (MySQL shows triggers only to an account holding ``TRIGGER``);
    tables without their triggers (created after the last activation by an account that could add them);
    MySQL/MariaDB tables whose columns changed after their triggers were made.
    """
    tables = _tables(connection, schema_name)
    if not has_table(connection, schema_name):
        return [f"no history table ({TABLE}): the history of changes is off"]
    existing = _existing_triggers(connection, schema_name)
    if not existing:
        return ["no history trigger is visible to this account: it lacks the TRIGGER privilege, or the history is off"]
    stale: list[str] = []
    if connection.adapter.backend == "postgresql":
        missing = [t for t in tables if any(f"{t}/{_PG_NAME}{x}" not in existing for x in _PG_TRIGGERS)]
    else:
        missing = [t for t in tables if any(_mysql_trigger_name(t, a) not in existing for a in _ACTIONS)]
        stale = _mysql_stale_tables(connection, schema_name)
    found = [f"tables without history triggers: {', '.join(missing)}"] if missing else []
    if stale:
        found.append(
            f"tables whose columns changed after their history triggers were made: {', '.join(stale)} "
            "(activate the pipeline again, as an account holding TRIGGER, to remake them)"
        )
    return found


def has_table(connection: dj.Connection, schema_name: str) -> bool:
    """Whether the schema ``schema_name`` has its history table (one query)."""
    return bool(
        connection.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            args=(schema_name, TABLE),
        ).fetchall()
    )


def _mysql_trigger_name(table: str, action: str) -> str:
    return f"es_history_{action}_{table}"[:64]


@contextlib.contextmanager
def reason(connection: dj.Connection, text: str | None) -> Iterator[None]:
    """Inside a transaction of ``connection``: the history rows its triggers write carry ``text``.

    PostgreSQL's setting ends with the transaction; MySQL's user variable is cleared on the way out.
    """
    if not text:
        yield
        return
    if connection.adapter.backend == "postgresql":
        connection.query("SELECT set_config('element_session.reason', %s, true)", args=(text,))
        yield
        return
    connection.query("SET @element_session_reason = %s", args=(text,))
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # a dropped connection forgets it anyway
            connection.query("SET @element_session_reason = NULL")


def _decoded(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    return json.loads(value.decode() if isinstance(value, bytes) else value)


def _in_column_order(values: dict[str, Any] | None, columns: list[tuple[str, str]]) -> dict[str, Any] | None:
    """A row's values from the history's JSON in its table's column order, a blob as the MD5 of its bytes, a
    time column's value as a naive datetime (UTC, as stored).

    MySQL/MariaDB's triggers write a blob's MD5 (hex) and the columns in their order; PostgreSQL's
    ``to_jsonb`` writes a ``bytea`` as ``\\x`` and its hex digits, and sorts the names (by length, then
    bytes). Both write a time as text. Columns of a table dropped since keep the JSON's order.
    """
    if values is None:
        return None
    ordered = {name: values[name] for name, _ in columns if name in values}
    ordered.update((name, value) for name, value in values.items() if name not in ordered)
    for name, kind in columns:
        value = ordered.get(name)
        if kind == "bytea" and isinstance(value, str) and value.startswith("\\x"):
            ordered[name] = hashlib.md5(bytes.fromhex(value[2:]), usedforsecurity=False).hexdigest()
        elif kind.startswith(("datetime", "timestamp")) and isinstance(value, str) and _STORED_TIME.fullmatch(value):
            ordered[name] = dt.datetime.fromisoformat(value)
    return ordered


def _same(stored: Any, wanted: Any) -> bool:
    """Whether a value from the history's JSON is the key value ``wanted``.

    Times compare as instants: ``wanted`` may be a naive datetime (UTC, as stored), an aware one (a
    ``session_table`` row's ``pandas.Timestamp`` too) or ISO 8601 text (with or without an offset).
    """
    moment = _utc(wanted)
    if moment is not None and isinstance(stored, str) and _STORED_TIME.fullmatch(stored):
        return dt.datetime.fromisoformat(stored) == moment
    return stored == wanted or str(stored) == str(wanted)


def _utc(value: Any) -> dt.datetime | None:
    """``value`` as a naive UTC datetime, if it is a datetime or ISO 8601 text of one (naive: UTC already)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def history(
    keys: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, session_module: ModuleType | None = None
) -> list[dict[str, Any]]:
    """Every recorded change of the rows of the sessions ``keys`` names, oldest first.

    ``keys`` is one restriction of the session's key attributes (``{"subject": "M001"}`` for every
    session of a subject, a full key for one session, ``{}`` for all) or a list of them (any). The
    sessions need not exist any more. Rows are chosen on the server by the first key attribute where
    every restriction gives it (along the history's index of it, made at activation), and for one
    session by the text of its start time (to the second), then compared in Python (times as
    instants: naive UTC, aware, or ISO text).

    Returns
    -------
    list of dict
        ``history_id``, ``changed_at`` (naive datetime, UTC, microseconds), ``account``, ``action``
        (insert, update or delete), ``table_name``, ``old_values`` and ``new_values`` (dicts of the
        row's columns, None where the action has none; a time column's value a naive datetime, UTC; a
        blob the MD5 of its bytes), ``reason`` (None where none was given).

    Raises
    ------
    ActivationError
        No session module is activated (and ``session_module`` is not given).
    """
    wanted = [dict(keys)] if isinstance(keys, Mapping) else [dict(k) for k in keys]
    m = session_module or session_module_of(wanted[0] if len(wanted) == 1 else None)
    connection = m.Session.connection
    first = m.Session.primary_key[0]
    where: str = ""
    args: tuple[str, ...] = ()
    if wanted and all(isinstance(k.get(first), str) for k in wanted):
        values = sorted({k[first] for k in wanted})
        backend = connection.adapter.backend
        picked, marker = _first_key_expression(backend, first), "%s"
        if backend != "postgresql" and _has_first_key_column(connection, m.Session.database):  # along its index
            picked, marker = _FIRST, f"LEFT(%s, {_FIRST_WIDTH})"
        where, args = f" WHERE {picked} IN ({', '.join([marker] * len(values))})", tuple(values)
        moment = _utc(wanted[0].get("session_datetime")) if len(wanted) == 1 and first != "session_datetime" else None
        if moment is not None:  # one session: its start time's text too (the seconds, any separator and fraction)
            where += f" AND {_first_key_expression(backend, 'session_datetime')} LIKE %s"
            args += (moment.strftime("%Y-%m-%d_%H:%M:%S") + "%",)
    names = ("history_id", "changed_at", "account", "action", "table_name", "old_values", "new_values", "reason")
    sql = f"SELECT {', '.join(names)} FROM {_quote(connection, m.Session.database, TABLE)}{where} ORDER BY history_id"
    with database_errors(connection):
        rows = connection.query(sql, args=args).fetchall()
    found = []
    for row in rows:
        entry = dict(zip(names, row, strict=True))
        entry["old_values"], entry["new_values"] = _decoded(entry["old_values"]), _decoded(entry["new_values"])
        changed: dict[str, Any] = entry["new_values"] or entry["old_values"] or {}
        if any(all(n in changed and _same(changed[n], v) for n, v in k.items()) for k in wanted):
            found.append(entry)
    if found:  # the columns of the tables changed, in one statement
        with database_errors(connection):
            columns = _tables_columns(connection, m.Session.database, sorted({e["table_name"] for e in found}))
        for entry in found:
            for side in ("old_values", "new_values"):
                entry[side] = _in_column_order(entry[side], columns.get(entry["table_name"], []))
    return found


#: A stored time as the history's JSON holds it: MySQL's ``2024-02-05 08:30:00``, PostgreSQL's ``2024-02-05T08:30:00``.
_STORED_TIME = re.compile(r"(?a)\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?")


def _value(value: Any) -> Any:
    """A value of :func:`history` with a time (naive, UTC) as every output shows times (``times.format_time``).

    Only a time column's value is a time: text that looks like one (a note ``2024-03-10 14:30:00``) is shown as
    written.
    """
    return format_time(value) if isinstance(value, dt.datetime) else value


def table_label(table_name: str) -> str:
    """A table's name on the server as people name its class: ``session__attribute`` -> ``Session.Attribute``."""
    return ".".join(to_camel_case(part) for part in table_name.lstrip("_#~").split("__"))


def changes_text(entry: Mapping[str, Any]) -> str:
    """What one history entry changed, for a terminal: ``column: old -> new`` of an update, else the row's values.

    Values as :func:`~element_session.formats.value_text` shows them (times with their offset, a
    missing value as ``(none)``).
    """
    old, new = entry["old_values"] or {}, entry["new_values"] or {}
    if old and new:
        return "; ".join(
            f"{c}: {value_text(_value(old.get(c)))} -> {value_text(_value(new[c]))}"
            for c in new
            if old.get(c) != new[c]
        )
    return ", ".join(f"{c}={value_text(_value(v))}" for c, v in (new or old).items())


def history_records(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The entries of :func:`history` as JSON objects: as they are, with every time as text (``times.format_time``)
    and ``table``, the table's class name as the table output names it, beside the SQL ``table_name``."""
    return [
        {
            **e,
            "changed_at": format_time(e["changed_at"]),
            "table": table_label(e["table_name"]),
            "old_values": None if e["old_values"] is None else {c: _value(v) for c, v in e["old_values"].items()},
            "new_values": None if e["new_values"] is None else {c: _value(v) for c, v in e["new_values"].items()},
        }
        for e in entries
    ]


def history_frame(entries: Sequence[Mapping[str, Any]], key: Sequence[str] = ()) -> Any:
    """The entries of :func:`history` as a DataFrame for a terminal: when, who, what, which session (the values of
    the attributes ``key``, ``Session``'s primary key, where given), which table, why."""
    import pandas as pd

    def session(entry: Mapping[str, Any]) -> str:
        values = entry["new_values"] or entry["old_values"] or {}
        return ", ".join(value_text(_value(values.get(name))) for name in key)

    return pd.DataFrame(
        {
            "changed_at": [format_time(e["changed_at"]) for e in entries],
            "account": [e["account"] for e in entries],
            "action": [e["action"] for e in entries],
            **({"session": [session(e) for e in entries]} if key else {}),
            "table": [table_label(e["table_name"]) for e in entries],
            "changes": [changes_text(e) for e in entries],
            "reason": [e["reason"] or "" for e in entries],
        }
    )
