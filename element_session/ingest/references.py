"""The plan of a reference table's rows (Subject, Experimenter, Project): one column per attribute."""

from __future__ import annotations

from typing import Any

from ..errors import ConflictError, InputProblem, raise_if_problems, readable
from . import keys
from .plan import Batch, IngestReport, note_match, restricted_rows, shown
from .readers import Record
from .validate import check_key_text, column_checks, required_columns


class ReferencePlan:
    """Rows of a reference table (Subject, Experimenter, Project), one column per attribute."""

    def __init__(self, table: Any, kind: str) -> None:
        self.table = table
        self.kind = kind
        self.checks = column_checks(table())
        self.required = required_columns(table())
        self.columns = list(table.heading.names)
        self.key = list(table.primary_key)
        self.folder = keys.KeyFolder(table, self.key)
        self.seen: dict[tuple, tuple[str, tuple]] = {}  # folded keys of earlier rows -> where, the key as given

    def prepare(self, records: list[Record], report: IngestReport) -> list[Batch]:
        """The rows of one chunk of the input to insert (with their records); raises for its problems."""
        problems: list[InputProblem] = []
        given: list[tuple[Record, dict, tuple]] = []
        for record in records:
            row = {}
            for column, value in record.values.items():
                if column not in self.columns:
                    reason = f"unknown column: {self.kind} have {readable(self.columns)}"
                    problems.append(record.column_problem(column, reason))
                elif isinstance(value, list):
                    problems.append(record.problem(column, value, "a list where one value is expected"))
                elif value is not None:
                    try:
                        row[column] = self.checks[column](value) if column in self.checks else value
                        if column in self.key and isinstance(row[column], str):
                            check_key_text(row[column])
                    except ValueError as err:
                        problems.append(record.problem(column, value, str(err)))
            for column in self.required:
                if column not in record.values or record.values[column] is None:
                    problems.append(record.problem(column, None, "required value not given"))
            if all(k in row for k in self.key):
                given.append((record, row, tuple(row[k] for k in self.key)))
        rows: dict[tuple, tuple[Record, dict, tuple]] = {}
        for (record, row, key), folded in zip(given, self.folder.fold_all(k for _, _, k in given), strict=True):
            if folded in self.seen:
                where, other = self.seen[folded]
                reason = f"duplicate key (also {where})"
                if other != key:
                    reason += (
                        f": the database compares {shown(other)} and {shown(key)} as equal ({self.folder.describe()})"
                    )
                problems.append(record.problem(self.key[0], shown(key), reason))
            else:
                self.seen[folded] = (f"{record.source} row {record.row}", key)
                rows[folded] = (record, row, key)
        raise_if_problems(problems)
        stored = restricted_rows(self.table, [dict(zip(self.key, key, strict=True)) for _, _, key in rows.values()])
        existing = dict(zip(self.folder.fold_all(tuple(db[k] for k in self.key) for db in stored), stored, strict=True))
        new: dict[tuple[str, ...], Batch] = {}  # a statement inserts rows of one set of columns
        for folded, (record, row, key) in rows.items():
            if folded not in existing:
                columns = tuple(row)
                batch = new.get(columns)
                if batch is None:
                    batch = new[columns] = Batch(self.table, columns, [], [])
                batch.rows.append(tuple(row.values()))
                batch.records.append(record)
                continue
            db = existing[folded]
            note_match(report, record, self.key, key, tuple(db[k] for k in self.key), self.folder)
            for column, value in row.items():
                if column not in self.key and db[column] != value:
                    problems.append(record.problem(column, value, f"conflict: stored value is {db[column]!r}"))
            report.present.append(f"{record.source} row {record.row}")
        raise_if_problems(problems, ConflictError)
        return list(new.values()) or [Batch(self.table, (), [], [])]  # the report names the table either way
