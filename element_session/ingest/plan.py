"""What the plans of both kinds of input share: the report they fill, the batches of rows they return,
and the reading of stored rows by key."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import keys
from .readers import Record

BATCH = 5_000  # keys per restriction


@dataclass
class IngestReport:
    """What one ingestion read, found already present, and inserted (or would insert, in a dry run)."""

    kind: str
    sources: list[str]
    rows: int = 0
    present: list[str] = field(default_factory=list)  # rows already in the database exactly
    inserted: dict[str, int] = field(default_factory=dict)  # table name -> rows inserted
    dry_run: bool = False
    matched: list[str] = field(default_factory=list)  # input keys taken as stored keys spelt otherwise

    @property
    def new(self) -> int:
        return self.rows - len(self.present)

    def __str__(self) -> str:
        tables = ", ".join(f"{table} {n}" for table, n in self.inserted.items() if n) or "nothing"
        verb = "would insert" if self.dry_run else "inserted"
        text = (
            f"{self.kind} from {', '.join(self.sources)}: {self.rows} row(s) read, {self.new} new, "
            f"{len(self.present)} already present; {verb} {tables}"
        )
        if self.matched:
            text += f"\n{len(self.matched)} key value(s) taken as the stored key the database compares equal:"
            text += "".join(f"\n  {line}" for line in self.matched[:20])
            text += f"\n  ... and {len(self.matched) - 20} more" if len(self.matched) > 20 else ""
        return text


class Batch(NamedTuple):
    """Rows to insert into one table: tuples of the values of ``columns``, and the record of each."""

    table: Any
    columns: tuple[str, ...]
    rows: list[tuple]
    records: list[Record]


def restricted_rows(table: Any, keys: Iterable[dict]) -> list[dict]:
    """Rows of ``table`` matching any of ``keys`` (dict restrictions, in batches)."""
    keys = list(keys)
    rows: list[dict] = []
    for start in range(0, len(keys), BATCH):
        rows.extend((table & keys[start : start + BATCH]).to_dicts())
    return rows


def shown(key: tuple) -> Any:
    """A key as a message shows it: its one value, or the tuple of several."""
    return key[0] if len(key) == 1 else key


def note_match(
    report: IngestReport, record: Record, columns: list[str], given: tuple, stored: tuple, folder: keys.KeyFolder
) -> None:
    """Say in the report that the input key ``given`` was taken as the ``stored`` key spelt otherwise."""
    if given != stored:
        report.matched.append(
            f"{record.source} row {record.row}, column {columns[0] if len(columns) == 1 else columns}: "
            f"{shown(given)!r} is the stored {shown(stored)!r} ({folder.describe()})"
        )
