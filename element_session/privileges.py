"""What the connected database account may do to a table, as the database itself answers.

Grants reach an account in many ways (to the account, to a role it has, on the server, the schema
or the table), so the database is asked rather than its grants parsed:

- MySQL/MariaDB: ``EXPLAIN`` of a statement needs the privileges of the statement itself, and
  plans it without running it; ``EXPLAIN DELETE FROM t WHERE FALSE`` is refused (error 1142)
  exactly when ``DELETE FROM t`` would be.
- PostgreSQL: ``has_table_privilege(table, privilege)`` of the current role.

Nothing is written. Only table names of the pipeline's own classes and the fixed words below reach
the SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import datajoint as dj

from .database import translate
from .errors import PermissionDeniedError

#: The privileges that can be asked about.
PRIVILEGES = ("INSERT", "UPDATE", "DELETE")


def _mysql_statement(table: Any, privilege: str) -> str:
    name = table.full_table_name
    if privilege == "INSERT":
        return f"EXPLAIN INSERT INTO {name} SELECT * FROM {name} WHERE FALSE"
    if privilege == "DELETE":
        return f"EXPLAIN DELETE FROM {name} WHERE FALSE"
    column = table.heading.primary_key[0]
    return f"EXPLAIN UPDATE {name} SET `{column}` = `{column}` WHERE FALSE"


def may(connection: dj.Connection, table: Any, privilege: str) -> bool:
    """Whether the account of ``connection`` may ``privilege`` (one of :data:`PRIVILEGES`) rows of ``table``.

    ``table`` is a DataJoint table (class or instance) on that connection. Raises ``ValueError`` for
    another privilege, and the database's typed errors (:func:`~element_session.database.translate`)
    for anything but a refusal, such as a lost connection.
    """
    if privilege not in PRIVILEGES:
        raise ValueError(f"privilege {privilege!r} is not one of {PRIVILEGES}")
    if connection.adapter.backend == "postgresql":
        (allowed,) = connection.query("SELECT has_table_privilege(%s, %s)", args=(table.full_table_name, privilege))
        return bool(allowed[0] if isinstance(allowed, tuple) else allowed)
    try:
        connection.query(_mysql_statement(table, privilege)).fetchall()
    except Exception as err:  # the driver's or DataJoint's error: a refusal is the answer "no"
        typed = translate(err, connection)
        if isinstance(typed, PermissionDeniedError):
            return False
        if typed is None:
            raise
        raise typed from None
    return True


def may_all(connection: dj.Connection, asks: Iterable[tuple[Any, str]]) -> bool:
    """Whether the account may do every ``(table, privilege)`` of ``asks``."""
    return all(may(connection, table, privilege) for table, privilege in asks)
