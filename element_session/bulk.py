"""Bulk insert of rows that ingestion has already validated: one parameterised statement per batch.

DataJoint's ``Table.insert`` prepares every value of every row in Python (codecs, lineage,
placeholders); for plain columns of text, numbers and dates that work is already done by
validation, and it was most of the time of a large ingest. Here the values travel as query
parameters of a multi-row ``INSERT`` built from the table's own quoted name and column names,
through DataJoint's connection (so inside its transaction). Columns with codecs, JSON or UUIDs go
through ``Table.insert`` as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

MAX_ROWS = 5_000  # rows per statement
MAX_BYTES = 4 * 2**20  # a statement's largest possible size, well under max_allowed_packet (16 MiB)


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


def insert(table: Any, rows: list[dict]) -> Iterator[int]:
    """Insert ``rows`` (dicts with the same keys) into ``table``; yields the number of rows of each batch."""
    if not rows:
        return
    columns = list(rows[0])
    values = [tuple(row[c] for c in columns) for row in rows]
    if not _plain(table, columns):
        for start in range(0, len(rows), MAX_ROWS):
            table.insert(rows[start : start + MAX_ROWS])
            yield len(rows[start : start + MAX_ROWS])
        return
    quote = table.connection.adapter.quote_identifier
    head = f"INSERT INTO {table.full_table_name} ({', '.join(quote(c) for c in columns)}) VALUES "
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    size = _rows_per_statement(table, columns)
    for start in range(0, len(values), size):
        batch = values[start : start + size]
        table.connection.query(head + ", ".join([one] * len(batch)), args=[v for row in batch for v in row])
        yield len(batch)
