"""Bulk insert of rows that ingestion has already validated: one parameterised statement per batch.

DataJoint's ``Table.insert`` prepares every value of every row in Python (codecs, lineage,
placeholders); for plain columns of text, numbers and dates that work is already done by
validation, and it was most of the time of a large ingest. Here the values travel as query
parameters of a multi-row ``INSERT`` built from the table's own quoted name and column names,
through DataJoint's connection (so inside its transaction). Columns with codecs, JSON or UUIDs go
through ``Table.insert`` as before.

When the server refuses a batch (see :func:`element_session.database.refused`), the batch is
undone to a savepoint taken before it, and the first row the server refuses is found by inserting
halves of the batch, each inside a savepoint of its own; the error names that row. PostgreSQL
needs the savepoint anyway: after a failed statement it accepts nothing else in the transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from .database import is_refusal, refused

MAX_ROWS = 5_000  # rows per statement
MAX_BYTES = 4 * 2**20  # a statement's largest possible size, well under max_allowed_packet (16 MiB)

#: Where each row came from: (source, row number) of ``rows[i]``.
Where = Sequence[tuple[str, int | None]]


def _plain(table: Any, columns: list[str]) -> bool:
    heading = table.heading
    return all(
        name in heading.names
        and heading[name].codec is None
        and not heading[name].is_blob
        and not heading[name].json
        and not heading[name].uuid
        for name in columns
    )


def _rows_per_statement(table: Any, columns: list[str]) -> int:
    """Rows per statement such that even rows of the widest values stay under ``MAX_BYTES``."""
    widest = 0
    for name in columns:
        width = re.search(r"char[^(]*\((\d+)\)", table.heading[name].type)
        widest += 4 * int(width[1]) + 8 if width else 64  # utf8mb4: up to 4 bytes a character
    return max(1, min(MAX_ROWS, MAX_BYTES // widest))


def insert(table: Any, rows: list[dict], where: Where | None = None) -> Iterator[int]:
    """Insert ``rows`` (dicts with the same keys) into ``table``; yields the number of rows of each batch.

    Raises :class:`~element_session.errors.DatabaseRefusedError` naming the first row the server
    refuses (its source and row from ``where``, its column and value), or
    :class:`~element_session.errors.DatabaseBusyError` for a deadlock or lock wait timeout.
    """
    if not rows:
        return
    columns = list(rows[0])
    if _plain(table, columns):
        quote = table.connection.adapter.quote_identifier
        head = f"INSERT INTO {table.full_table_name} ({', '.join(quote(c) for c in columns)}) VALUES "
        one = "(" + ", ".join(["%s"] * len(columns)) + ")"

        def write(batch: list[dict]) -> None:
            args = [row[c] for row in batch for c in columns]
            table.connection.query(head + ", ".join([one] * len(batch)), args=args)

        size = _rows_per_statement(table, columns)
    else:
        write, size = table.insert, MAX_ROWS
    for start in range(0, len(rows), size):
        _write_batch(table, write, rows, start, min(start + size, len(rows)), where)
        yield min(size, len(rows) - start)


def _write_batch(
    table: Any, write: Callable[[list[dict]], None], rows: list[dict], start: int, stop: int, where: Where | None
) -> None:
    connection = table.connection
    try:
        with _savepoint(connection, "bulk_batch"):
            write(rows[start:stop])
    except Exception as err:
        if not is_refusal(err):
            raise
        index, err = _first_refused(connection, write, rows, start, stop, err)
        source, row = where[index] if where else ("database", None)
        raise refused(err, source=source, row=row, values=rows[index], table=table.__name__) from None


def _first_refused(
    connection: Any, write: Callable[[list[dict]], None], rows: list[dict], lo: int, hi: int, err: Exception
) -> tuple[int, Exception]:
    """The first row of ``rows[lo:hi]`` the server refuses after the rows before it, and its error.

    Halves are inserted inside savepoints (kept when accepted, so that a row refused because of an
    earlier one is found); all of it is undone at the end.
    """
    with _savepoint(connection, "bulk_search", keep=False):
        while hi - lo > 1:
            mid = (lo + hi) // 2
            try:
                with _savepoint(connection, "bulk_half"):
                    write(rows[lo:mid])
                lo = mid  # accepted: the refused row is further on
            except Exception as half:
                if not is_refusal(half):
                    raise
                hi, err = mid, half
        try:
            with _savepoint(connection, "bulk_row"):
                write(rows[lo:hi])
        except Exception as single:
            if not is_refusal(single):
                raise
            err = single
    return lo, err


@contextmanager
def _savepoint(connection: Any, name: str, keep: bool = True) -> Iterator[None]:
    """A savepoint around the block: rolled back to on an error, or always if not ``keep``.

    Outside a transaction (a dry run writes nothing; tests may insert directly) there is none.
    """
    if not connection.in_transaction:
        yield
        return
    connection.query(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        with suppress(Exception):  # gone with the transaction after a deadlock: the error says so
            connection.query(f"ROLLBACK TO SAVEPOINT {name}")
        raise
    if keep:
        connection.query(f"RELEASE SAVEPOINT {name}")
    else:
        connection.query(f"ROLLBACK TO SAVEPOINT {name}")
