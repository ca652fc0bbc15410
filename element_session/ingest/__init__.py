"""Ingestion of subjects, experimenters, projects and sessions: validate everything, then write once.

One call is one transaction: if anything in the input is wrong, nothing is written and
:class:`~element_session.errors.InputError` lists every problem with its source, row, column and
value. Ingesting the same input again writes nothing (the rows are reported as already present);
a row whose key exists with different content in a column the input gives is a
:class:`~element_session.errors.ConflictError`. Columns the input leaves empty are "not given":
new rows get the column's default, and existing rows are not compared on them.

Keys are compared as the database compares them (:mod:`element_session.keys`): under a
case-insensitive collation an input ``m001`` is the stored ``M001`` (the report's ``matched`` says
so, and the stored spelling is written), and two input keys that differ only so are duplicates.
Anything the server still refuses is a :class:`~element_session.errors.DatabaseRefusedError` naming
the input row (see :mod:`element_session.bulk`).

Session input has the columns ``subject`` (or whatever the linking module's ``Subject`` key is),
``session_datetime``, ``session_id``, ``experimenter``, ``project``, ``session_dir``,
``session_note`` and ``attr.<name>``; several experimenters or projects are separated by ``;`` in
text and are lists in YAML/JSON. See :mod:`element_session.times` for session times.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import operator
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal, NamedTuple

import datajoint as dj
from tqdm import tqdm

from .. import paths, times
from .._collector import cycle_collection_paused
from ..database import database_errors, refused
from ..errors import (
    ConflictError,
    DatabaseBusyError,
    DatabaseRefusedError,
    InputError,
    InputProblem,
    SessionDirectoryError,
    one_problem,
)
from ..formats import ATTRIBUTE_PREFIX, LIST_SEPARATOR, SESSION_FIELDS
from . import bulk, keys
from .readers import Record, _is_dataframe, iter_records
from .validate import check_integer, check_key_text, check_text, column_checks, required_columns

Kind = Literal["subjects", "experimenters", "projects", "sessions"]
KINDS: tuple[str, ...] = ("subjects", "experimenters", "projects", "sessions")
REFERENCE_TABLES = {"subjects": "Subject", "experimenters": "Experimenter", "projects": "Project"}
BATCH = 5_000  # keys per restriction
CHUNK = 5_000  # input rows validated and written at a time
ATTEMPTS = 3  # a transaction that lost a race with a concurrent writer is validated and tried again


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


def ingest(
    kind: Kind,
    source: str | os.PathLike | Sequence[str | os.PathLike] | Any,
    *,
    pipeline: ModuleType,
    session_module: ModuleType | None = None,
    timezone: str = "UTC",
    dry_run: bool = False,
    progress: bool | None = None,
    roots: Sequence[str | os.PathLike] | None = None,
    sheet: str | None = None,
    delimiter: str | None = None,
) -> IngestReport:
    """Ingest ``kind`` rows from ``source`` into the tables of ``pipeline``, in one transaction.

    Parameters
    ----------
    kind : "subjects", "experimenters", "projects" or "sessions".
    source : a CSV/TSV/Excel (.xlsx)/YAML/JSON file path or a list of paths (read as one input), a
        pandas DataFrame, or a list of dicts (see :mod:`element_session.readers` for each format).
    pipeline : the linking module: its ``Subject``, ``Experimenter`` and ``Project`` tables.
    session_module : the activated session module (default ``pipeline.session``).
    timezone : IANA zone of session times written without an offset (default UTC).
    dry_run : validate and report, write nothing.
    progress : show a progress bar (default: on a terminal, once the ingest takes more than a second).
    roots : root data directories for absolute ``session_dir`` values (default: configured roots).
    sheet : the worksheet of ``.xlsx`` files (default: each workbook's first sheet).
    delimiter : the separator of CSV/TSV files (default: tab for ``.tsv``, read from the header for ``.csv``).

    Returns the :class:`IngestReport`. Raises :class:`~element_session.errors.InputError` for
    invalid input (:class:`~element_session.errors.ConflictError` where only stored content
    differs), :class:`~element_session.errors.DatabaseRefusedError` for a row the server refuses,
    :class:`~element_session.errors.DatabaseBusyError` for a deadlock or lock timeout after
    retries, and the connection errors of :mod:`element_session.database`; nothing is written then.

    Python's cyclic garbage collector is paused during the call and restored after (see
    ``element_session._collector``): reference counting frees ingest's objects all the same.
    """
    if kind not in KINDS:
        raise one_problem("arguments", "kind", kind, f"not one of {', '.join(KINDS)}")
    times.zone_argument(timezone)
    read, sources = _reader(source, sheet=sheet, delimiter=delimiter)
    written = (session_module or pipeline.session).Session if kind == "sessions" else REFERENCE_TABLES[kind]
    connection = (getattr(pipeline, written) if isinstance(written, str) else written).connection
    # the tables' own connection (e.g. a web login's), which need not be dj.conn()
    with database_errors(connection), cycle_collection_paused():
        return _ingest_records(
            kind, read, sources, pipeline, session_module, timezone, dry_run, progress, roots, connection
        )


def _ingest_records(
    kind: str,
    read: Callable[[], Iterator[Record]],
    sources: list[str],
    pipeline: ModuleType,
    session_module: ModuleType | None,
    timezone: str,
    dry_run: bool,
    progress: bool | None,
    roots: Sequence | None,
    connection: dj.Connection,
) -> IngestReport:
    """Validate and write chunk by chunk inside one transaction; any problem rolls everything back.

    Rows are written as soon as their chunk is valid, so memory holds one chunk, not the input;
    after the first problem nothing more is written but every chunk is still checked, so that the
    error lists all problems. The transaction is rolled back on any error.
    """
    for attempt in range(ATTEMPTS):
        if kind == "sessions":
            plan: _SessionPlan | _ReferencePlan = _SessionPlan(
                pipeline, session_module or pipeline.session, timezone, roots
            )
        else:
            plan = _ReferencePlan(getattr(pipeline, REFERENCE_TABLES[kind]), kind)
        report = IngestReport(kind, sources, dry_run=dry_run)
        show = progress if progress is not None else sys.stderr.isatty()
        try:
            with (
                tqdm(unit="row", desc=f"ingest {kind}", disable=not show, delay=0 if progress else 1) as bar,
                contextlib.nullcontext() if dry_run else connection.transaction,
            ):
                problems: list[InputProblem] = []
                conflicts_only = True
                for chunk in _chunks(read(), CHUNK):
                    report.rows += len(chunk)
                    try:
                        batches = plan.prepare(chunk, report)
                    except InputError as err:
                        problems.extend(err.problems)
                        conflicts_only = conflicts_only and isinstance(err, ConflictError)
                        continue
                    literals = bulk.Literals(connection)  # keys shared by a chunk's tables are formatted once
                    for batch in batches:
                        name = batch.table.__name__
                        report.inserted[name] = report.inserted.get(name, 0) + len(batch.rows)
                        if not dry_run and not problems:
                            for _ in bulk.insert(
                                batch.table, batch.rows, batch.records, columns=batch.columns, literals=literals
                            ):
                                pass
                    bar.update(len(chunk))
                _raise_if(problems, ConflictError if conflicts_only else InputError)
        except Exception as err:
            typed = err if isinstance(err, DatabaseRefusedError | DatabaseBusyError) else refused(err)
            if typed is None:
                raise
            if not typed.transient or attempt == ATTEMPTS - 1:
                raise typed from None
            continue  # a concurrent writer inserted or deleted some of the same rows: check again
        return report
    raise AssertionError("unreachable")


def _reader(source: Any, **options: str | None) -> tuple[Callable[[], Iterator[Record]], list[str]]:
    """A function that reads the records of ``source`` afresh (for a retry), and the sources' names."""
    if isinstance(source, list | tuple) and source and all(isinstance(s, str | os.PathLike) for s in source):
        files = [str(s) for s in source]
        return (lambda: itertools.chain.from_iterable(iter_records(s, **options) for s in files)), files
    if isinstance(source, str | os.PathLike):
        return (lambda: iter_records(source, **options)), [str(source)]
    if not isinstance(source, Iterable) or isinstance(source, str | bytes | Mapping) or _is_dataframe(source):
        return (lambda: iter_records(source, **options)), ["DataFrame" if _is_dataframe(source) else "input"]
    rows = list(source)  # an iterator of dicts can be read once only: keep it for a retry
    return (lambda: iter_records(rows, **options)), ["input"]


def _chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    while chunk := list(itertools.islice(records, size)):
        yield chunk


class _Batch(NamedTuple):
    """Rows to insert into one table: tuples of the values of ``columns``, and the record of each."""

    table: Any
    columns: tuple[str, ...]
    rows: list[tuple]
    records: list[Record]


def _restricted_rows(table: Any, keys: Iterable[dict]) -> list[dict]:
    """Rows of ``table`` matching any of ``keys`` (dict restrictions, in batches)."""
    keys = list(keys)
    rows: list[dict] = []
    for start in range(0, len(keys), BATCH):
        rows.extend((table & keys[start : start + BATCH]).to_dicts())
    return rows


def _literal(value: dt.datetime | int) -> str:
    """SQL text of a value that validation produced (a datetime or an int), never of input text."""
    return f"'{value:%Y-%m-%d %H:%M:%S}'" if isinstance(value, dt.datetime) else str(int(value))


#: Reasons that, down a file, come from its header (a misspelt or missing column), not from its rows.
_HEADER_REASONS = ("unknown column", "required value not given")


def _raise_if(problems: list[InputProblem], error: type[InputError] = InputError) -> None:
    """Raise ``error`` listing ``problems`` by source and row; a header's problem once per column.

    A column that is unknown, or whose value is missing, in several rows of one source is one
    problem at its first row, whose reason names the other rows (``also rows 3-51``), so that a
    misspelt header does not hide the other problems behind one line per row.
    """
    if not problems:
        return
    problems.sort(key=lambda p: (p.source, p.row or 0))
    rows: dict[tuple, list[int]] = {}
    kept: list[InputProblem] = []
    for problem in problems:
        if problem.row is not None and problem.reason.startswith(_HEADER_REASONS):
            where = (problem.source, problem.column, problem.reason)
            if where in rows:
                rows[where].append(problem.row)
                continue
            rows[where] = []
        kept.append(problem)
    for index, problem in enumerate(kept):
        others = rows.get((problem.source, problem.column, problem.reason))
        if others:
            reason = f"{problem.reason} (also row{'s' * (len(others) > 1)} {_row_ranges(others)})"
            kept[index] = InputProblem(problem.source, problem.row, problem.column, problem.value, reason)
    raise error(kept)


def _row_ranges(rows: list[int], shown: int = 5) -> str:
    """Sorted row numbers as ranges: ``[3, 4, 5, 9]`` -> ``3-5, 9``; after ``shown`` ranges, how many more rows."""
    ranges: list[list[int]] = []
    for row in sorted(rows):
        if ranges and row == ranges[-1][1] + 1:
            ranges[-1][1] = row
        else:
            ranges.append([row, row])
    text = ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in ranges[:shown])
    rest = sum(b - a + 1 for a, b in ranges[shown:])
    return text + (f" and {rest} more" if rest else "")


class _ReferencePlan:
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

    def prepare(self, records: list[Record], report: IngestReport) -> list[_Batch]:
        """The rows of one chunk of the input to insert (with their records); raises for its problems."""
        problems: list[InputProblem] = []
        given: list[tuple[Record, dict, tuple]] = []
        for record in records:
            row = {}
            for column, value in record.values.items():
                if column not in self.columns:
                    problems.append(record.problem(column, value, f"unknown column: {self.kind} have {self.columns}"))
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
                        f": the database compares {_shown(other)} and {_shown(key)} as equal ({self.folder.describe()})"
                    )
                problems.append(record.problem(self.key[0], _shown(key), reason))
            else:
                self.seen[folded] = (f"{record.source} row {record.row}", key)
                rows[folded] = (record, row, key)
        _raise_if(problems)
        stored = _restricted_rows(self.table, [dict(zip(self.key, key, strict=True)) for _, _, key in rows.values()])
        existing = dict(zip(self.folder.fold_all(tuple(db[k] for k in self.key) for db in stored), stored, strict=True))
        new: dict[tuple[str, ...], _Batch] = {}  # a statement inserts rows of one set of columns
        for folded, (record, row, key) in rows.items():
            if folded not in existing:
                columns = tuple(row)
                batch = new.get(columns)
                if batch is None:
                    batch = new[columns] = _Batch(self.table, columns, [], [])
                batch.rows.append(tuple(row.values()))
                batch.records.append(record)
                continue
            db = existing[folded]
            _note_match(report, record, self.key, key, tuple(db[k] for k in self.key), self.folder)
            for column, value in row.items():
                if column not in self.key and db[column] != value:
                    problems.append(record.problem(column, value, f"conflict: stored value is {db[column]!r}"))
            report.present.append(f"{record.source} row {record.row}")
        _raise_if(problems, ConflictError)
        return list(new.values()) or [_Batch(self.table, (), [], [])]  # the report names the table either way


def _tuple_getter(columns: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple]:
    """The function taking the values of ``columns`` from a row, as a tuple (also of one column)."""
    if len(columns) == 1:
        (column,) = columns
        return lambda row: (row[column],)
    return operator.itemgetter(*columns)


def _shown(key: tuple) -> Any:
    return key[0] if len(key) == 1 else key


def _note_match(
    report: IngestReport, record: Record, columns: list[str], given: tuple, stored: tuple, folder: keys.KeyFolder
) -> None:
    """Say in the report that the input key ``given`` was taken as the ``stored`` key spelt otherwise."""
    if given != stored:
        report.matched.append(
            f"{record.source} row {record.row}, column {columns[0] if len(columns) == 1 else columns}: "
            f"{_shown(given)!r} is the stored {_shown(stored)!r} ({folder.describe()})"
        )


@dataclass
class _Session:
    """One session of the input, validated."""

    record: Record
    key: dict[str, Any]
    fields: dict[str, Any]  # secondary attribute of Session given by the input
    zone: str | None = None
    experimenters: list[str] | None = None
    projects: list[str] | None = None
    session_dir: str | None = None
    note: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


class _SessionPlan:
    """Sessions and their satellite rows, checked against the reference tables and existing sessions."""

    def __init__(self, pipeline: ModuleType, module: ModuleType, zone: str, roots: Sequence | None) -> None:
        self.module = module
        self.zone = zone
        self.roots = roots
        self.subject, self.experimenter, self.project = pipeline.Subject, pipeline.Experimenter, pipeline.Project
        for name, table in (("Experimenter", self.experimenter), ("Project", self.project)):
            if len(table.primary_key) != 1:
                raise one_problem("pipeline", name, table.primary_key, "a one-column primary key is needed")
        self.subject_key = list(self.subject.primary_key)
        self.subject_checks = column_checks(self.subject())
        self.subject_of = _tuple_getter(self.subject_key)  # a row's subject key, as a tuple
        self.experimenter_attr = self.experimenter.primary_key[0]
        self.project_attr = self.project.primary_key[0]
        self.by_datetime = "session_datetime" in module.Session.primary_key
        self.identity = "session_datetime" if self.by_datetime else "session_id"
        self.secondary = "session_id" if self.by_datetime else "session_datetime"
        self.columns = [*self.subject_key, *SESSION_FIELDS]
        self.column_set = frozenset(self.columns)
        self.seen: dict[tuple, tuple[str, int]] = {}  # sessions of earlier chunks -> their source and row
        self.attribute_names: set[str] = set()  # names of attribute columns found valid
        self.folders = {
            "subject": keys.KeyFolder(self.subject, self.subject_key),
            "experimenter": keys.KeyFolder(self.experimenter, [self.experimenter_attr]),
            "project": keys.KeyFolder(self.project, [self.project_attr]),
            "attribute": keys.KeyFolder(module.Session.Attribute, ["attribute_name"]),
        }
        # keys found to exist, folded -> the stored key
        self.known: dict[str, dict[tuple, tuple]] = {"subject": {}, "experimenter": {}, "project": {}}

    # -- reading one record ----------------------------------------------------------------------
    def _parse(self, record: Record, problems: list[InputProblem]) -> _Session | None:
        values = record.values
        start = len(problems)

        def fail(column: str, value: object, reason: str) -> None:
            problems.append(record.problem(column, value, reason))

        for column, value in values.items():
            if column not in self.column_set and not column.startswith(ATTRIBUTE_PREFIX):
                fail(column, value, f"unknown column: sessions have {self.columns} and attr.<name>")
            elif isinstance(value, list) and column not in ("experimenter", "project"):
                fail(column, value, "a list where one value is expected")
        key: dict[str, Any] = {}
        for column in self.subject_key:
            value = values.get(column)
            if value is None:
                fail(column, value, "required value not given")
            elif not isinstance(value, list):
                try:
                    key[column] = self.subject_checks[column](value) if column in self.subject_checks else value
                    if isinstance(key[column], str) and key[column].endswith(" "):  # refused in keys (validate)
                        raise ValueError("a key value may not end with a space (MySQL/MariaDB ignore trailing spaces)")
                except ValueError as err:
                    fail(column, value, str(err))
        session = _Session(record, key, {})
        stamp = values.get("session_datetime")
        if isinstance(stamp, str):
            try:
                utc, session.zone = times.parse_session_time(stamp, self.zone)
                (key if self.by_datetime else session.fields)["session_datetime"] = utc
            except times.TimeError as err:
                fail("session_datetime", stamp, str(err))
        number = values.get("session_id")
        if isinstance(number, str):
            try:
                (session.fields if self.by_datetime else key)["session_id"] = check_integer(number)
            except ValueError as err:
                fail("session_id", number, str(err))
        if values.get(self.identity) is None:
            fail(self.identity, None, "required value not given")
        session.experimenters = self._names(record, "experimenter", problems)
        session.projects = self._names(record, "project", problems)
        directory = values.get("session_dir")
        if isinstance(directory, str):
            try:
                session.session_dir = paths.normalize_session_dir(directory, self.roots)
            except SessionDirectoryError as err:
                fail("session_dir", directory, str(err))
        note = values.get("session_note")
        if isinstance(note, str):
            try:
                session.note = check_text(note, 1024)
            except ValueError as err:
                fail("session_note", note, str(err))
        for column, value in values.items():
            if column.startswith(ATTRIBUTE_PREFIX) and isinstance(value, str):
                name = column[len(ATTRIBUTE_PREFIX) :]
                try:
                    if name not in self.attribute_names:  # a column's name is checked once
                        check_key_text(name, 32)
                        if not name:
                            raise ValueError("attribute column without a name after 'attr.'")
                        self.attribute_names.add(name)
                    session.attributes[name] = check_text(value, 2000)
                except ValueError as err:
                    fail(column, value, str(err))
        return session if len(problems) == start else None

    def _names(self, record: Record, column: str, problems: list[InputProblem]) -> list[str] | None:
        value = record.values.get(column)
        if value is None or (isinstance(value, list) and not value):
            return None
        if isinstance(value, str):
            names = [value.strip()] if LIST_SEPARATOR not in value else [n.strip() for n in value.split(LIST_SEPARATOR)]
            nul = "\x00" in value
        else:
            names = [name.strip() for name in value]
            nul = any("\x00" in name for name in names)
        if nul:
            problems.append(record.problem(column, value, "contains a NUL character"))
        elif not all(names):
            problems.append(
                record.problem(column, value, f"an empty name in the list (separate names with '{LIST_SEPARATOR}')")
            )
        elif len(set(names)) != len(names):
            problems.append(record.problem(column, value, "a name listed twice"))
        return names

    # -- the whole input -----------------------------------------------------------------------
    def prepare(self, records: list[Record], report: IngestReport) -> list[_Batch]:
        """The rows of one chunk of the input to insert (with their records); raises for its problems."""
        problems: list[InputProblem] = []
        parsed = [session for record in records if (session := self._parse(record, problems)) is not None]
        self._check_references(parsed, problems, report)
        self._check_attribute_names(parsed, problems)
        sessions: dict[tuple, _Session] = {}
        for session in parsed:  # subjects are spelt as stored now: identities compare exactly
            record, identity = session.record, tuple(session.key.values())
            if identity in self.seen:
                reason = "duplicate session (also {} row {})".format(*self.seen[identity])
                problems.append(record.problem(self.identity, identity, reason))
            else:
                self.seen[identity] = (record.source, record.row)
                sessions[identity] = session
        _raise_if(problems)
        existing = self._existing(list(sessions.values()))
        new: list[_Session] = []
        idents = self._idents([s.key for s in sessions.values()]) if existing else [None] * len(sessions)
        for session, ident in zip(sessions.values(), idents, strict=True):
            stored = existing.get(ident)
            if stored is None:
                new.append(session)
                continue
            for column, (mine, theirs) in self._differences(session, stored, report).items():
                problems.append(session.record.problem(column, mine, f"conflict: the stored session has {theirs!r}"))
            report.present.append(f"{session.record.source} row {session.record.row}")
        _raise_if(problems, ConflictError)
        return self._rows(new)

    def _check_references(self, sessions: list[_Session], problems: list[InputProblem], report: IngestReport) -> None:
        """Find each session's subject, experimenters and projects as stored, and spell them so.

        A name the database compares equal to a stored one is taken as that one (and reported);
        names of one list that are then the same are a problem, as are unknown ones.
        """
        tables = {
            "subject": (self.subject, self.subject_key),
            "experimenter": (self.experimenter, [self.experimenter_attr]),
            "project": (self.project, [self.project_attr]),
        }
        given = {
            "subject": [self.subject_of(s.key) for s in sessions],
            "experimenter": [(n,) for s in sessions for n in s.experimenters or ()],
            "project": [(n,) for s in sessions for n in s.projects or ()],
        }
        folded: dict[str, dict[tuple, tuple]] = {}
        for name, (table, columns) in tables.items():
            folder, known = self.folders[name], self.known[name]
            distinct = list(dict.fromkeys(given[name]))  # each value folded once
            folded[name] = dict(zip(distinct, folder.fold_all(distinct), strict=True))
            wanted = {key for key, f in folded[name].items() if f not in known}
            stored = [tuple(r[k] for k in columns) for r in _restricted_rows(
                table.proj(), [dict(zip(columns, key, strict=True)) for key in wanted]
            )]  # fmt: skip
            known.update(zip(folder.fold_all(stored), stored, strict=True))
        for s in sessions:
            subject = self.subject_of(s.key)
            stored = self.known["subject"].get(folded["subject"][subject])
            if stored is None:
                problems.append(
                    s.record.problem(
                        self.subject_key[0], _shown(subject), "unknown subject: ingest it into Subject first"
                    )
                )
            else:
                _note_match(report, s.record, self.subject_key, subject, stored, self.folders["subject"])
                s.key.update(zip(self.subject_key, stored, strict=True))
            for column in ("experimenter", "project"):
                names = getattr(s, column + "s")
                spelt = []
                for name in names or ():
                    stored = self.known[column].get(folded[column][(name,)])
                    if stored is None:
                        problems.append(s.record.problem(column, name, f"unknown {column}: ingest it first"))
                    else:
                        _note_match(report, s.record, [column], (name,), stored, self.folders[column])
                        spelt.append(stored[0])
                if len(set(spelt)) != len(spelt):
                    reason = f"a name listed twice (the database compares names by {self.folders[column].describe()})"
                    problems.append(s.record.problem(column, names, reason))
                elif names is not None and len(spelt) == len(names):
                    setattr(s, column + "s", spelt)

    def _check_attribute_names(self, sessions: list[_Session], problems: list[InputProblem]) -> None:
        """Refuse two attribute columns of one row whose names the database compares as equal."""
        folder = self.folders["attribute"]
        if folder.exact:
            return
        names = list({name: None for s in sessions for name in s.attributes})
        folded = dict(zip(names, folder.fold_all((n,) for n in names), strict=True))
        for s in sessions:
            seen: dict[tuple, str] = {}
            for name in s.attributes:
                f = folded[name]
                if f in seen:
                    reason = (f"the same attribute as {ATTRIBUTE_PREFIX}{seen[f]} for the database "
                              f"({folder.describe()}): give it once")  # fmt: skip
                    problems.append(s.record.problem(ATTRIBUTE_PREFIX + name, s.attributes[name], reason))
                else:
                    seen[f] = name

    def _existing(self, sessions: list[_Session]) -> dict[tuple, dict[str, Any]]:
        """The stored state of those input sessions that exist already, by identity."""
        m = self.module
        if not sessions:
            return {}
        idents = self._idents

        # one cheap query for which input sessions exist: their subjects, within the span of their identities
        subjects = {self.subject_of(s.key) for s in sessions}
        values = [s.key[self.identity] for s in sessions]
        span = f"{self.identity} BETWEEN {_literal(min(values))} AND {_literal(max(values))}"
        candidates = (
            m.Session.proj() & [dict(zip(self.subject_key, v, strict=True)) for v in subjects] & span
        ).to_dicts()
        stored = set(idents(candidates))
        keys_given = [s.key for s in sessions]
        existing_keys = [key for key, i in zip(keys_given, idents(keys_given), strict=True) if i in stored]
        if not existing_keys:
            return {}

        def rows(table: Any) -> Iterator[tuple[tuple, dict]]:
            found = _restricted_rows(table, existing_keys)
            return zip(idents(found), found, strict=True)

        found = {i: {"row": r} for i, r in rows(m.Session)}
        for i, row in rows(m.SessionExperimenter):
            found[i].setdefault("experimenter", []).append(row[self.experimenter_attr])
        for i, row in rows(m.ProjectSession):
            found[i].setdefault("project", []).append(row[self.project_attr])
        for i, row in rows(m.SessionDirectory):
            found[i]["session_dir"] = row["session_dir"]
        for i, row in rows(m.SessionNote):
            found[i]["session_note"] = row["session_note"]
        for i, row in rows(m.SessionTimezone):
            found[i]["zone"] = row["session_timezone"]
        for i, row in rows(m.Session.Attribute.proj("attribute_value")):
            found[i].setdefault("attributes", {})[row["attribute_name"]] = row["attribute_value"]
        return found

    def _idents(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple]:
        """Sessions' identities as the database compares them: the subject folded, the time or number."""
        subjects = self.folders["subject"].fold_all([*map(self.subject_of, rows)])
        return [(*subject, row[self.identity]) for subject, row in zip(subjects, rows, strict=True)]

    def _folded_names(self, kind: str, names: Sequence[str]) -> list[tuple]:
        return sorted(self.folders[kind].fold_all((n,) for n in names), key=repr)

    def _differences(self, session: _Session, stored: dict[str, Any], report: IngestReport) -> dict[str, tuple]:
        """Columns the input gives whose value differs from the stored session; names compare as stored."""
        differences: dict[str, tuple[Any, Any]] = {}
        row = stored["row"]
        for column, value in session.fields.items():
            if row[column] != value:
                differences[column] = (value, row[column])
        if session.zone is not None and session.zone != stored.get("zone", "UTC"):
            differences["session_datetime"] = (session.zone, f"zone {stored.get('zone', 'UTC')}")
        for column, mine in (("experimenter", session.experimenters), ("project", session.projects)):
            theirs = stored.get(column, [])
            if mine is not None and self._folded_names(column, mine) != self._folded_names(column, theirs):
                differences[column] = (mine, sorted(theirs))
        for column, mine in (("session_dir", session.session_dir), ("session_note", session.note)):
            if mine is not None and mine != stored.get(column):
                differences[column] = (mine, stored.get(column))
        folder = self.folders["attribute"]
        attributes = stored.get("attributes", {})
        by_fold = dict(zip(folder.fold_all((n,) for n in attributes), attributes, strict=True))
        for name, value in session.attributes.items():
            stored_name = by_fold.get(folder.fold((name,)))
            theirs = attributes.get(stored_name)
            if value != theirs:
                differences[ATTRIBUTE_PREFIX + name] = (value, theirs)
            elif stored_name is not None:
                _note_match(report, session.record, [ATTRIBUTE_PREFIX + name], (name,), (stored_name,), folder)
        return differences

    def _rows(self, sessions: list[_Session]) -> list[_Batch]:
        """The rows of every session table, as tuples: the session's key, then the table's own columns."""
        m = self.module
        key = (*self.subject_key, self.identity)

        def batch(table: Any, *own: str) -> _Batch:
            return _Batch(table, (*key, *own), [], [])

        session, zone, experimenter, project, directory, note, attribute = batches = [
            batch(m.Session, self.secondary),
            batch(m.SessionTimezone, "session_timezone"),
            batch(m.SessionExperimenter, self.experimenter_attr),
            batch(m.ProjectSession, self.project_attr),
            batch(m.SessionDirectory, "session_dir"),
            batch(m.SessionNote, "session_note"),
            batch(m.Session.Attribute, "attribute_name", "attribute_value"),
        ]
        secondary, key_of = self.secondary, operator.itemgetter(*key)
        for s in sessions:
            k, record = key_of(s.key), s.record
            session.rows.append((*k, s.fields.get(secondary)))
            session.records.append(record)
            if s.zone is not None:
                zone.rows.append((*k, s.zone))
                zone.records.append(record)
            for name in s.experimenters or ():
                experimenter.rows.append((*k, name))
                experimenter.records.append(record)
            for name in s.projects or ():
                project.rows.append((*k, name))
                project.records.append(record)
            if s.session_dir is not None:
                directory.rows.append((*k, s.session_dir))
                directory.records.append(record)
            if s.note is not None:
                note.rows.append((*k, s.note))
                note.records.append(record)
            for name, value in s.attributes.items():
                attribute.rows.append((*k, name, value))
                attribute.records.append(record)
        return batches
