"""Key values compared the way the database compares them: by the collation of each key column.

MySQL and MariaDB compare text by the column's collation. ``utf8mb4_bin`` compares code points;
``utf8mb4_general_ci``, ``utf8mb4_unicode_ci`` and MySQL 8's default ``utf8mb4_0900_ai_ci``
ignore case and accents (``'M001' = 'm001'``, ``'é' = 'e'``; ``utf8mb4_general_ci`` even makes
every emoji equal). PAD SPACE collations (every MariaDB collation but the ``_nopad_`` ones, and
MySQL's before ``_0900_``, ``utf8mb4_bin`` included) also ignore trailing spaces (``'a' = 'a '``).
A unique key follows the same rule, so ingest must decide "already stored" and "duplicate" by it.

:class:`KeyFolder` folds a key into the value the database compares:

- the value itself where the comparison is exact: PostgreSQL (whose collations here are
  deterministic), numbers, dates, and ``_nopad_bin``;
- trailing spaces removed for a binary PAD SPACE collation (``utf8mb4_bin``);
- otherwise the collation's own weight string, computed by the server (``WEIGHT_STRING``), so that
  two values fold alike exactly when the server calls them equal. A value the column's character
  set cannot hold is not folded (the server refuses it when it is written).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

BATCH = 1_000  # values folded by one query
_NAME = re.compile(r"[A-Za-z0-9_]+")


def is_binary(collation: str) -> bool:
    """Whether the collation named ``collation`` compares text by code point (after padding)."""
    return collation == "binary" or collation.endswith("_bin")


@dataclass(frozen=True)
class Collation:
    """How the database compares the text of one column: the collation and character set names."""

    name: str
    charset: str
    pad_space: bool  # trailing spaces are ignored

    @property
    def binary(self) -> bool:
        """Whether text is compared by code point (after padding): ``utf8mb4_bin``, ``latin1_bin``."""
        return is_binary(self.name)

    def __str__(self) -> str:
        return f"collation {self.name}"


class ColumnCollation(NamedTuple):
    """A text column of a MySQL/MariaDB table, as ``information_schema.columns`` describes it."""

    table: str
    column: str
    charset: str
    collation: str


def collations(
    connection: Any, schema: str, tables: Iterable[str] = (), *, primary_key: bool = False
) -> list[ColumnCollation]:
    """The text columns of ``schema`` (of ``tables`` alone if given) with their collations, in table order.

    With ``primary_key``, only the columns of primary keys. One query on ``information_schema.columns``
    alone, with the schema name a constant: MariaDB then reads that schema's table definitions only,
    where a join with ``key_column_usage`` opened every table of the server, once per table. MySQL and
    MariaDB only: the caller checks the backend.
    """
    names = sorted(set(tables))
    rows = connection.query(
        "SELECT table_name, column_name, character_set_name, collation_name FROM information_schema.columns "
        "WHERE table_schema = %s AND collation_name IS NOT NULL"
        + (f" AND table_name IN ({', '.join(['%s'] * len(names))})" if names else "")
        + (" AND column_key = 'PRI'" if primary_key else "")
        + " ORDER BY table_name, ordinal_position",
        args=(schema, *names),
    ).fetchall()
    return [ColumnCollation(*row) for row in rows]


def column_collations(table: Any, columns: Sequence[str]) -> dict[str, Collation | None]:
    """The collation of each of ``columns`` of ``table``; None where values are compared exactly.

    Reads ``information_schema.columns`` (:func:`collations`) on MySQL/MariaDB; on PostgreSQL every
    column is exact.
    """
    found: dict[str, Collation | None] = dict.fromkeys(columns)
    connection = table.connection
    if connection.adapter.backend != "mysql":
        return found
    for _, column, charset, collation in collations(connection, table.database, [table.table_name]):
        if column in found and _NAME.fullmatch(charset) and _NAME.fullmatch(collation):
            found[column] = Collation(collation, charset, _pads_spaces(connection, charset, collation))
    return found


def _same(value: Any) -> Any:
    return value


def _without_trailing_spaces(value: Any) -> Any:
    return value.rstrip(" ") if isinstance(value, str) else value


def _pads_spaces(connection: Any, charset: str, collation: str) -> bool:
    """Whether ``collation`` ignores trailing spaces, asked of the server itself."""
    converted = f"CONVERT(%s USING {charset}) COLLATE {collation}"
    return bool(connection.query(f"SELECT {converted} = {converted}", args=("a", "a ")).fetchone()[0])


class KeyFolder:
    """Folds keys of some columns of one table into what the database compares (see the module).

    Keys are tuples of values in the order of ``columns``. The weights asked of the server are
    kept, so that each distinct value costs one round trip at most once per folder.
    """

    def __init__(self, table: Any, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.collations = column_collations(table, self.columns)
        self._connection = table.connection
        self._weights: dict[tuple[str, str], Hashable] = {}
        #: Whether the database compares these columns' values exactly as Python does.
        self.exact = all(c is None or (c.binary and not c.pad_space) for c in self.collations.values())
        self._folds = [self._folding(column) for column in self.columns]  # one function a column, chosen once

    def describe(self) -> str:
        """The non-exact collations, as a phrase for messages, e.g. ``collation utf8mb4_general_ci``."""
        names = sorted({str(c) for c in self.collations.values() if c is not None})
        return ", ".join(names) or "exact comparison"

    def fold(self, key: tuple) -> tuple:
        """The folded form of one key."""
        return self.fold_all([key])[0]

    def fold_all(self, keys: Iterable[tuple]) -> list[tuple]:
        """The folded form of each key, in order: equal exactly when the database calls the keys equal."""
        keys = list(keys)
        if self.exact:
            return keys
        for index, column in enumerate(self.columns):
            collation = self.collations[column]
            if collation is not None and not collation.binary:
                self._learn(column, collation, {key[index] for key in keys if isinstance(key[index], str)})
        if len(self._folds) == 1:  # the common case, without a generator a key
            (fold,) = self._folds
            return [(fold(value),) for (value,) in keys]
        return [tuple(fold(value) for fold, value in zip(self._folds, key, strict=True)) for key in keys]

    def _folding(self, column: str) -> Callable[[Any], Hashable]:
        """The function folding one value of ``column`` (values other than text are kept)."""
        collation = self.collations[column]
        if collation is None or (collation.binary and not collation.pad_space):
            return _same
        if collation.binary:
            return _without_trailing_spaces
        weights = self._weights
        return lambda value: weights[(column, value)] if isinstance(value, str) else value

    def _learn(self, column: str, collation: Collation, values: set[str]) -> None:
        """Ask the server for the weight strings of ``values`` not folded yet, ``BATCH`` at a time."""
        todo = sorted(v for v in values if (column, v) not in self._weights)
        converted = f"CONVERT(t.v USING {collation.charset})"
        for start in range(0, len(todo), BATCH):
            batch = todo[start : start + BATCH]
            padded = [v.rstrip(" ") if collation.pad_space else v for v in batch]
            rows = " UNION ALL ".join(["SELECT %s AS i, %s AS v"] * len(batch))
            result = self._connection.query(
                f"SELECT t.i, HEX(WEIGHT_STRING({converted} COLLATE {collation.name})), "
                f"CONVERT({converted} USING utf8mb4) FROM ({rows}) AS t ORDER BY t.i",
                args=[x for pair in enumerate(padded) for x in pair],
            ).fetchall()
            for (_, weight, back), value, sent in zip(result, batch, padded, strict=True):
                # a value the character set cannot hold comes back changed: it is not folded
                self._weights[(column, value)] = ("weight", weight) if back == sent else value
