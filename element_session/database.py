"""Failures of the database itself, as typed errors that name the server but never the password.

:func:`database_errors` wraps work on the database: a lost or refused connection becomes
:class:`~element_session.errors.DatabaseUnreachableError` (host and port), a refused privilege
:class:`~element_session.errors.PermissionDeniedError` (the account and what it tried). The
transaction that was open is rolled back by the server when the connection drops.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import datajoint as dj

from .errors import DatabaseUnreachableError, ElementSessionError, PermissionDeniedError
from .redaction import without_password

_CONNECTION_ERRORS = {"OperationalError", "LostConnectionError", "InterfaceError", "ConnectionRefusedError"}
_LOST_CODES = {2003, 2006, 2013, 2055, 1053, 1927}  # MySQL: can't connect, gone away, lost, shutdown, killed


def _server() -> str:
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


def translate(err: BaseException) -> ElementSessionError | None:
    """The typed error for a database failure, or None if ``err`` is not one."""
    if isinstance(err, ElementSessionError):
        return None
    text = str(err).lower()
    refused_login = (err.args and err.args[0] in (1044, 1045)) or "password authentication failed" in text
    if isinstance(err, dj.errors.AccessError) or "permission denied" in text or refused_login:
        coded = len(err.args) > 1 and isinstance(err.args[0], int)  # pymysql: (code, the server's message)
        said = err.args[1] if coded else err.args[0] if err.args else err
        return PermissionDeniedError(f"the database refused this as {_server()}: {without_password(str(said))}")
    if _is_lost_connection(err):
        return DatabaseUnreachableError(
            f"cannot reach the database at {_server()}: {type(err).__name__}: {without_password(str(err))}"
        )
    return None


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn database failures raised inside the block into typed errors."""
    try:
        yield
    except Exception as err:
        typed = translate(err)
        if typed is None:
            raise
        raise typed from None
