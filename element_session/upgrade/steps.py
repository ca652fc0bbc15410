"""A planned schema change: one atomic step that ``migrate`` lists in a dry run and applies in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import datajoint as dj

__all__ = ["Change", "apply", "quote", "statement"]


@dataclass(frozen=True)
class Change:
    """One step of a migration: the table it changes, what it does, and the SQL it runs."""

    table: str
    description: str
    sql: str
    run: Callable[[dj.Connection], None] = field(repr=False, compare=False)

    def __str__(self) -> str:
        return f"{self.table}: {self.description}"


def quote(name: str) -> str:
    """``name`` as a MySQL identifier in backquotes."""
    return "`" + name.replace("`", "``") + "`"


def statement(sql: str, args: tuple = ()) -> Callable[[dj.Connection], None]:
    """A step that runs one SQL statement with ``args`` as its parameters."""

    def run(connection: dj.Connection) -> None:
        connection.query(sql, args=args)

    return run


def apply(connection: dj.Connection, change: Change) -> None:
    """Run one planned step: the one place where ``migrate`` applies a step (tests replace it to make one fail).

    Raises whatever the step's statements raise.
    """
    change.run(connection)
