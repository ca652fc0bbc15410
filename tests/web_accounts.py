"""Database accounts for the web interface's tests: a writer, a reader, and one that may read nothing."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import datajoint as dj

from tests.helpers import create_account, drop_account

SCHEMAS = ("lab", "subject", "session", "inventory")
WRITE = "SELECT, INSERT, UPDATE, DELETE"
#: The session schema's tables that the "partial" account may insert into: all but the notes.
PARTIAL = ("session", "session_timezone", "session_experimenter", "project_session", "session_directory",
           "session__attribute")  # fmt: skip


@dataclass(frozen=True)
class Login:
    user: str
    password: str = field(repr=False)

    @property
    def auth(self) -> tuple[str, str]:
        return self.user, self.password


def _grant_inserts(connection: dj.Connection, user: str, schema: str, tables: tuple[str, ...]) -> None:
    for table in tables:
        if connection.adapter.backend == "postgresql":
            connection.query(f'GRANT INSERT ON TABLE "{schema}"."{table}" TO "{user}"')
        else:
            connection.query(f"GRANT INSERT ON `{schema}`.`{table}` TO %s@%s", args=(user, "%"))


@contextmanager
def accounts(connection: dj.Connection, prefix: str) -> Iterator[dict[str, Login]]:
    """``writer`` (read and write the pipeline), ``reader`` (read only), ``outsider`` (the lab schema only),
    ``partial`` (read, and insert sessions but not their notes)."""
    schemas = [prefix + name for name in SCHEMAS]
    made: dict[str, Login] = {}
    try:
        for role, granted, privileges in (
            ("writer", schemas, WRITE),
            ("reader", schemas, "SELECT"),
            ("outsider", [prefix + "lab"], "SELECT"),
            ("partial", schemas, "SELECT"),
        ):
            login = Login(f"wb{role[0]}_{secrets.token_hex(4)}", f"pw-{secrets.token_urlsafe(12)}:x")
            create_account(connection, login.user, login.password, granted, privileges)
            made[role] = login
        _grant_inserts(connection, made["partial"].user, prefix + "session", PARTIAL)
        yield made
    finally:
        for login in made.values():
            drop_account(connection, login.user)
