"""Failures of the database itself, as typed errors that name the server but never the password.

:func:`database_errors` wraps work on the database and :func:`translate` is its one map: a lost or
refused connection becomes :class:`~element_session.errors.DatabaseUnreachableError` (host and
port), a refused privilege or login (:func:`is_refused_login`, the one rule for a refused login)
:class:`~element_session.errors.PermissionDeniedError` (the account and what it tried; a schema it may
neither read nor create, in :func:`schema_refused`'s words), a refused
value :class:`~element_session.errors.DatabaseRefusedError` (MySQL errors 1048, 1062, 1264, 1265,
1292, 1364, 1366, 1406, 1451, 1452, 3819, 4025; PostgreSQL SQLSTATE classes 22 and 23) naming the
column and value, and a deadlock or lock wait timeout
:class:`~element_session.errors.DatabaseBusyError` (MySQL 1205, 1213; SQLSTATE class 40, 55P03).
The transaction that was open is rolled back by the server when the connection drops.
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import datajoint as dj

from ._datajoint_compat import CONNECT_TIMEOUT_VARIABLE, READ_TIMEOUT_VARIABLE, connection_timeouts
from .errors import (
    ActivationError,
    DatabaseBusyError,
    DatabaseRefusedError,
    DatabaseUnreachableError,
    ElementSessionError,
    InputProblem,
    PermissionDeniedError,
    UsageError,
)
from .redaction import without_password

#: Set for a process whose ``DJ_*`` settings another process took from a settings file (``copy --to CONFIG``):
#: the file, which a failure to connect names with its fields instead of ``DJ_HOST``/``DJ_PORT``.
SETTINGS_FILE_VARIABLE = "ELEMENT_SESSION_SETTINGS_FILE"
_CONNECTION_ERRORS = {"OperationalError", "LostConnectionError", "InterfaceError", "ConnectionRefusedError"}
_LOST_CODES = {2003, 2006, 2013, 2055, 1053, 1927}  # MySQL: can't connect, gone away, lost, shutdown, killed
_REFUSED = {  # MySQL error -> what the server refused
    1048: "a value the column requires is missing",
    1062: "a duplicate key",
    1264: "a number out of the column's range",
    1265: "a value the column truncates",
    1292: "a value not valid for the column's type",
    1366: "a character (or value) the column cannot hold",
    1364: "a value the column requires is missing",
    1406: "text too long for the column",
    1451: "rows of another table refer to it",
    1452: "no such row in the table it refers to",
    3819: "a value its check constraint refuses",
    4025: "a value its check constraint refuses",
}
#: MySQL: a database, table, identifier or column name the server cannot hold (too long, or a character it refuses)
_NAME_CODES = {1059: "name", 1102: "database name", 1103: "table name", 1166: "column name"}
_QUOTED_NAME = re.compile(r"'([^']*)'")
_NO_SUCH_TYPE = re.compile(r'type "([^"]+)" does not exist')  # PostgreSQL, SQLSTATE 42704
_NOT_CREATED = re.compile(r"Schema `([^`]+)` does not exist and could not be created")  # DataJoint's activate()
_BUSY = {1205: "a lock wait timeout", 1213: "a deadlock"}
_LOGIN_CODES = {1044, 1045, 1698}  # MySQL: access denied to the database, to the account, by its auth plugin
_LOGIN_MESSAGES = re.compile(r'password authentication failed|role "[^"]*" does not exist', re.IGNORECASE)  # PostgreSQL
_TRANSIENT = {1062, 1452, "23505", "23503"}  # a concurrent writer may have caused these: check again
_TIMED_OUT = re.compile(r"timed out|timeout expired", re.IGNORECASE)
#: What the drivers (PyMySQL, libpq) say when a connection fails, in people's words.
#: ``{host}``, ``{host_and_port}``: where they came from (:func:`_settings_fields`).
_CONNECTION_FAILURES = (
    (
        re.compile(r"connection refused", re.IGNORECASE),
        "nothing accepts connections there: is the server running, and are the host and port ({host_and_port}) right?",
    ),
    (
        re.compile(
            r"name or service not known|nodename nor servname|could not translate host name|"
            r"temporary failure in name resolution|getaddrinfo failed",
            re.IGNORECASE,
        ),
        "the host name is not known ({host})",
    ),
    (re.compile(r"no route to host|network is unreachable", re.IGNORECASE), "the network has no route to the host"),
    (
        re.compile(
            r"lost connection|server closed the connection|server has gone away|connection already closed|"
            r"terminating connection",
            re.IGNORECASE,
        ),
        "the server ended the connection (a restart, an idle timeout or a network failure); try again",
    ),
)
_LIBPQ_PREFIX = re.compile(r"^connection to server at .*? failed:\s*(FATAL:\s*)?")
_CONNECTING = re.compile(r"can't connect|timeout expired", re.IGNORECASE)
_COLUMN = (  # where the server's message names the column
    re.compile(r"for column [`'\"]?(?:[^`'\"]*[`'\"]?\.[`'\"]?)*([^`'\".]+)[`'\"]? at row"),
    re.compile(r"FOREIGN KEY \(`([^`]+)`"),
    re.compile(r"Column '([^']+)' cannot be null"),
    re.compile(r"Key \(([^,)]+)\)="),
    re.compile(r'column "([^"]+)"'),
)


def _server(connection: dj.Connection | None = None) -> str:
    """The server and account of ``connection`` (default: DataJoint's settings)."""
    if connection is not None:
        info = connection.conn_info
        return f"{info['host']}:{info['port']} as user {info['user']!r}"
    config = dj.config
    return f"{config['database.host']}:{config['database.port']} as user {config['database.user']!r}"


def _is_lost_connection(err: BaseException) -> bool:
    chain = [e for e in (err, err.__cause__, err.__context__) if e is not None]
    for e in chain:
        if isinstance(e, BrokenPipeError) and not type(e).__module__.startswith(("pymysql", "psycopg2")):
            continue  # our own output's reader went away (``| head``), not the database
        if isinstance(e, dj.errors.LostConnectionError | ConnectionError):
            return True
        code = e.args[0] if e.args and isinstance(e.args[0], int) else None
        if type(e).__name__ in _CONNECTION_ERRORS and (code is None or code in _LOST_CODES):
            return True
        if type(e).__module__.startswith("psycopg2") and "connection" in str(e).lower():
            return True
    return False


def _timed_out(err: BaseException) -> str | None:
    """The driver's message of the deepest error behind ``err`` (causes and contexts) saying a time limit ran out.

    What failed next on the closed connection (a rollback: "connection already closed") says less,
    and DataJoint's error wrapping the driver's shows a tuple.
    """
    todo: list[BaseException | None] = [err]
    seen: set[int] = set()
    found = None
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        said = str(e.args[-1] if e.args else e).strip()
        if _TIMED_OUT.search(said):
            found = said
        todo += [e.__cause__, e.__context__]
    return found


def _connection_failure(said: str) -> str:
    """Why a connection failed, from the driver's message ``said``: people's words where the failure is a
    known one (a refused port, an unknown host, a time limit), else the driver's words on one line."""
    if READ_TIMEOUT_VARIABLE in said:  # element_session.answer_deadline's own words, naming its limit
        return said
    if _TIMED_OUT.search(said):
        return "the server did not answer" + (_timeout_named(said) or " in time")
    known = next((words for pattern, words in _CONNECTION_FAILURES if pattern.search(said)), None)
    return known.format_map(_settings_fields()) if known else " ".join(without_password(said).split())


def _settings_fields() -> dict[str, str]:
    """Where this process's database host and port came from, as a message names them: ``DJ_HOST`` and
    ``DJ_PORT``, or the fields of the settings file :data:`SETTINGS_FILE_VARIABLE` names."""
    source = os.environ.get(SETTINGS_FILE_VARIABLE)
    if not source:
        return {"host": "DJ_HOST", "host_and_port": "DJ_HOST, DJ_PORT"}
    return {"host": f"database.host of {source}", "host_and_port": f"database.host and database.port of {source}"}


def _timeout_named(said: str) -> str:
    """The time limit that ran out, as a note to add to the driver's message ``said`` ('' if none did).

    PyMySQL says "(timed out)" for either limit, libpq "timeout expired" when connecting;
    :mod:`element_session.answer_deadline` names its limit itself.
    """
    if READ_TIMEOUT_VARIABLE in said or not _TIMED_OUT.search(said):
        return ""
    connect, read = connection_timeouts()
    if _CONNECTING.search(said):
        return f" (no answer within {connect or 0:g} s: {CONNECT_TIMEOUT_VARIABLE})"
    return f" (no answer within {read or 0:g} s: {READ_TIMEOUT_VARIABLE})"


#: psycopg2's words refusing text with a NUL character, which PostgreSQL cannot store (SQLSTATE 22021 on the server).
_PG_NUL = "cannot contain NUL (0x00) characters"


def server_error(err: BaseException) -> tuple[int | str, str] | None:
    """The server's error code (MySQL number or PostgreSQL SQLSTATE) and message behind ``err``, if any.

    DataJoint raises its own errors from the driver's, so the chain is followed. psycopg2's refusal of text
    holding a NUL character (a ``ValueError``, before the server sees it) is the server's (SQLSTATE 22021).
    """
    for e in (err, err.__cause__, err.__context__):
        if e is None:
            continue
        pgcode = getattr(e, "pgcode", None)
        if isinstance(pgcode, str):
            return pgcode, str(getattr(e, "pgerror", None) or e).strip()
        if isinstance(e, ValueError) and _PG_NUL in str(e):  # psycopg2 refuses it before the server would
            return "22021", "PostgreSQL text cannot hold a NUL character (0x00)"
        if type(e).__module__.startswith("pymysql") and e.args and isinstance(e.args[0], int):
            return e.args[0], str(e.args[1]) if len(e.args) > 1 else ""
    return None


def is_refusal(err: BaseException) -> bool:
    """Whether ``err`` is the server refusing the values written (not a lost connection or a deadlock)."""
    found = server_error(err)
    return found is not None and (found[0] in _REFUSED or str(found[0])[:2] in ("22", "23"))


def refused(
    err: BaseException,
    *,
    source: str = "database",
    row: int | None = None,
    values: Mapping[str, Any] | None = None,
    table: str | None = None,
) -> DatabaseRefusedError | DatabaseBusyError | None:
    """The typed error for the server refusing a write, naming where if known; None if ``err`` is not one.

    ``source``/``row`` say where the refused row came from, ``values`` is the row written and
    ``table`` its table's name: the column the server's message names is given with its value.
    """
    found = server_error(err)
    if found is None:
        return None
    code, message = found
    state = str(code)
    if code in _BUSY or state[:2] == "40" or state == "55P03":
        what = _BUSY.get(code, "a deadlock or lock timeout") if isinstance(code, int) else "a deadlock or lock timeout"
        return DatabaseBusyError(f"the database gave up on the write ({what}): nothing was written; try again")
    if code not in _REFUSED and state[:2] not in ("22", "23"):
        return None
    column = next((m[1] for pattern in _COLUMN if (m := pattern.search(message))), None)
    values = values or {}
    value = values.get(column) if column else (dict(values) or None)  # the whole row if no column is named
    known = _REFUSED.get(code) if isinstance(code, int) else None
    what = known or ("a value the column cannot hold" if state[:2] == "22" else "a key or constraint")
    said = " ".join(without_password(message).split())  # the server's words on one line (PostgreSQL adds DETAIL:)
    reason = f"the database refused {what}" + (f" in {table}" if table else "") + f": {said}"
    return DatabaseRefusedError(
        [InputProblem(source, row, column, value, reason)], code=code, transient=code in _TRANSIENT
    )


def is_refused_login(err: BaseException) -> bool:
    """Whether ``err`` is the server refusing an account's name or password, rather than failing to answer.

    MySQL errors 1044, 1045 and 1698; PostgreSQL's "password authentication failed" and
    "role ... does not exist".
    """
    code = err.args[0] if err.args and isinstance(err.args[0], int) else None
    return code in _LOGIN_CODES or _LOGIN_MESSAGES.search(str(err)) is not None


def translate(err: BaseException, connection: dj.Connection | None = None) -> ElementSessionError | None:
    """The typed error for a database failure on ``connection`` (default: DataJoint's), or None if it is not one."""
    if isinstance(err, ElementSessionError):
        return None
    text = str(err).lower()
    unconfigured = "user not configured" in text or "password not configured" in text
    if isinstance(err, dj.errors.DataJointError) and unconfigured:
        return UsageError(
            "no database account is configured: set DJ_HOST, DJ_USER and DJ_PASS (the demo prints an `eval` line "
            "that sets them for its private server) or write datajoint.json (DataJoint's settings)"
        )
    if isinstance(err, dj.errors.DataJointError) and (missing := _NOT_CREATED.search(str(err))):
        user = connection.conn_info["user"] if connection is not None else dj.config["database.user"]
        return schema_refused(missing[1], user)  # the server's refusal (MySQL 1044, PostgreSQL's) is its cause
    if isinstance(err, dj.errors.AccessError) or "permission denied" in text or is_refused_login(err):
        coded = len(err.args) > 1 and isinstance(err.args[0], int)  # pymysql: (code, the server's message)
        said = err.args[1] if coded else err.args[0] if err.args else err
        reason = " ".join(without_password(str(said)).split())  # the server's words, on one line
        wrong_login = err.args[0] in (1045, 1698) if coded else not isinstance(err, dj.errors.AccessError)
        if is_refused_login(err) and wrong_login:
            reason = _LIBPQ_PREFIX.sub("", reason)  # libpq's 'connection to server at "h", port p failed: FATAL:'
            reason = f"the user name or password is wrong, or the account may not log in from here (it said: {reason})"
        return PermissionDeniedError(f"the database at {_server(connection)} refused: {reason}")
    found = server_error(err)
    if found is not None and found[0] in _NAME_CODES:  # a pipeline's own dj.Schema(prefix + name), say
        return _refused_name(_NAME_CODES[int(found[0])], found[1])
    if found is not None and found[0] == "42704" and (unknown := _NO_SUCH_TYPE.search(found[1])):
        return _native_type(unknown[1], found[1])  # a table its pipeline declares itself in 0.14's spelling
    if _is_lost_connection(err):
        coded = len(err.args) > 1 and isinstance(err.args[0], int)  # pymysql: (code, the driver's message)
        said = _timed_out(err) or str(err.args[1] if coded else err).strip()
        return DatabaseUnreachableError(
            f"cannot reach the database at {_server(connection)}: {_connection_failure(said)}"
        )
    return refused(err)


def schema_refused(schema: str, user: str) -> PermissionDeniedError:
    """The refusal of the account ``user`` that may not read ``schema``, nor create it where it is missing:
    one rule, in the same words for the command line, the Python API and the web.

    An account sees no schema it holds no privilege on, so a schema it may not read and one that does not
    exist (a misspelt prefix) look the same to it.
    """
    return PermissionDeniedError(
        f"your account {user} may not read schema {schema} (ask the database's administrator for SELECT on it; "
        "a missing schema it may not create either: is DATABASE_PREFIX right?)"
    )


@contextmanager
def database_errors(connection: dj.Connection | None = None) -> Iterator[None]:
    """Turn database failures raised inside the block into typed errors naming ``connection``'s account."""
    try:
        yield
    except Exception as err:
        typed = translate(err, connection)
        if typed is None:
            raise
        raise typed from None


def _refused_name(what: str, message: str) -> ActivationError:
    """The :class:`ActivationError` for MySQL refusing the name of a schema, table or column (``message``)."""
    quoted = _QUOTED_NAME.search(message)
    name = quoted[1] if quoted else None
    if name is not None and len(name) > 64:
        return ActivationError(
            f"the database refused the {what} {name!r} ({len(name)} characters): MySQL/MariaDB holds names of at "
            "most 64 characters. Nothing of it was created. Shorten the schema prefix (DATABASE_PREFIX) or the name."
        )
    return ActivationError(f"the database refused the {what} {name!r}: {without_password(message)}")


def _native_type(native: str, message: str) -> ActivationError:
    """The :class:`ActivationError` for PostgreSQL refusing a MySQL-native type of a definition (``message``)."""
    from .native_types import spelling

    column = re.search(rf'"([^"]+)"\s+{re.escape(native)}\b', message)
    where = f" (attribute {column[1]!r})" if column else ""
    return ActivationError(
        f"PostgreSQL has no type {native!r}{where}, DataJoint 0.14's spelling: write the DataJoint 2.x type "
        f"{spelling(native)} in the table's definition (`element-session doctor --definitions` lists them all; "
        "activate_downstream() checks them before creating anything)"
    )


#: Whether each connection's server is MariaDB, asked once a connection: by id (DataJoint's connections
#: are not hashable), with a weak reference telling a live connection from one that had its id before.
_MARIADB: dict[int, tuple[weakref.ref, bool]] = {}


def is_mariadb(connection: Any) -> bool:
    """Whether the server of ``connection`` (a DataJoint connection to MySQL or MariaDB) is MariaDB."""
    kept = _MARIADB.get(id(connection))
    if kept is None or kept[0]() is not connection:
        (version,) = connection.query("SELECT VERSION()").fetchone()
        kept = _MARIADB[id(connection)] = (weakref.ref(connection), "mariadb" in str(version).lower())
    return kept[1]
