"""One call of :func:`ingest`: the input read chunk by chunk, each chunk planned and written, in one
transaction, checked and tried again when it lost a race with a concurrent writer."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

import datajoint as dj

from .. import times
from .._collector import cycle_collection_paused
from ..columns import KINDS, REFERENCE_TABLES, Kind
from ..database import database_errors, refused
from ..errors import (
    ConflictError,
    DatabaseBusyError,
    DatabaseRefusedError,
    InputError,
    InputProblem,
    SessionLockedError,
    one_problem,
    raise_if_problems,
)
from ..pipeline import linking_module_argument
from ..progress import progress_bar
from . import bulk
from .plan import IngestReport
from .readers import Record, is_dataframe, iter_records
from .references import ReferencePlan
from .sessions import SessionPlan

CHUNK = 5_000  # input rows validated and written at a time
ATTEMPTS = 3  # a transaction that lost a race with a concurrent writer is validated and tried again


def ingest(
    kind: Kind,
    source: str | os.PathLike | Sequence[str | os.PathLike] | Any,
    *,
    linking_module: ModuleType | None = None,
    pipeline: ModuleType | None = None,
    session_module: ModuleType | None = None,
    timezone: str = "UTC",
    dry_run: bool = False,
    progress: bool | None = None,
    roots: Sequence[str | os.PathLike] | None = None,
    sheet: str | None = None,
    delimiter: str | None = None,
) -> IngestReport:
    """Ingest ``kind`` rows from ``source`` into the tables of ``linking_module``, in one transaction.

    Parameters
    ----------
    kind : "subjects", "experimenters", "projects" or "sessions".
    source : a CSV/TSV/Excel (.xlsx)/YAML/JSON file path or a list of paths (read as one input), a
        pandas DataFrame, or a list of dicts (see :mod:`element_session.readers` for each format).
    linking_module : the module providing the ``Subject``, ``Experimenter`` and ``Project`` tables
        (the one given to the session module's ``activate``).
    pipeline : the same, under its earlier name (kept, no warning: a pipeline module such as
        ``workflow.pipeline`` is a linking module too). Give one of the two.
    session_module : the activated session module (default ``linking_module.session``).
    timezone : IANA zone of session times written without an offset (default UTC).
    dry_run : validate and report, write nothing.
    progress : show a progress bar (default: on a terminal, once the ingest takes more than a second).
    roots : root data directories for absolute ``session_dir`` values (default: configured roots).
    sheet : the worksheet of ``.xlsx`` files (default: each workbook's first sheet).
    delimiter : the separator of CSV/TSV files (default: tab for ``.tsv``, read from the header for ``.csv``).

    Returns
    -------
    IngestReport
        What was read, found present and inserted.

    Raises
    ------
    InputError
        For invalid input (:class:`~element_session.errors.ConflictError` where only stored content differs).
    DatabaseRefusedError
        For a row the server refuses.
    DatabaseBusyError
        For a deadlock or lock timeout after retries.
    TypeError
        If neither ``linking_module`` nor ``pipeline`` is given, or both (different modules).

    The connection errors of :mod:`element_session.database` are raised as they are. Nothing is
    written when anything is raised.

    Python's cyclic garbage collector is paused during the call and restored after (see
    ``element_session._collector``): reference counting frees ingest's objects all the same.
    """
    linking = linking_module_argument(linking_module, pipeline)
    if linking is None:
        raise TypeError("ingest() needs linking_module=, the module providing Subject, Experimenter and Project")
    if kind not in KINDS:
        raise one_problem("arguments", "kind", kind, f"not one of {', '.join(KINDS)}")
    times.zone_argument(timezone)
    read, sources = _reader(source, sheet=sheet, delimiter=delimiter)
    written = (session_module or linking.session).Session if kind == "sessions" else REFERENCE_TABLES[kind]
    connection = (getattr(linking, written) if isinstance(written, str) else written).connection
    # the tables' own connection (e.g. a web login's), which need not be dj.conn()
    with database_errors(connection), cycle_collection_paused():
        return _ingest_records(
            kind, read, sources, linking, session_module, timezone, dry_run, progress, roots, connection
        )


def _ingest_records(
    kind: str,
    read: Callable[[], Iterator[Record]],
    sources: list[str],
    linking_module: ModuleType,
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
            plan: SessionPlan | ReferencePlan = SessionPlan(
                linking_module, session_module or linking_module.session, timezone, roots
            )
        else:
            plan = ReferencePlan(getattr(linking_module, REFERENCE_TABLES[kind]), kind)
        report = IngestReport(kind, sources, dry_run=dry_run)
        try:
            with (
                progress_bar(shown=progress, unit="row", desc=f"ingest {kind}", delay=0 if progress else 1) as bar,
                contextlib.nullcontext() if dry_run else connection.transaction,
            ):
                problems: list[InputProblem] = []
                kinds: set[type[InputError]] = set()  # of the errors of the chunks
                for chunk in _chunks(read(), CHUNK):
                    report.rows += len(chunk)
                    try:
                        batches = plan.prepare(chunk, report)
                    except InputError as err:
                        problems.extend(err.problems)
                        kinds.add(type(err))
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
                raise_if_problems(problems, common_error(kinds))
        except Exception as err:
            typed = err if isinstance(err, DatabaseRefusedError | DatabaseBusyError) else refused(err)
            if typed is None:
                raise
            if not typed.transient or attempt == ATTEMPTS - 1:
                raise typed from None
            continue  # a concurrent writer inserted or deleted some of the same rows: check again
        return report
    raise AssertionError("unreachable")


def common_error(kinds: set[type[InputError]]) -> type[InputError]:
    """The error class of problems of chunks that raised ``kinds``: the most specific one they all are."""
    for kind in (SessionLockedError, ConflictError):
        if kinds and all(issubclass(k, kind) for k in kinds):
            return kind
    return InputError


def _reader(source: Any, **options: str | None) -> tuple[Callable[[], Iterator[Record]], list[str]]:
    """A function that reads the records of ``source`` afresh (for a retry), and the sources' names."""
    if isinstance(source, list | tuple) and source and all(isinstance(s, str | os.PathLike) for s in source):
        files = [str(s) for s in source]
        return (lambda: itertools.chain.from_iterable(iter_records(s, **options) for s in files)), files
    if isinstance(source, str | os.PathLike):
        return (lambda: iter_records(source, **options)), [str(source)]
    if not isinstance(source, Iterable) or isinstance(source, str | bytes | Mapping) or is_dataframe(source):
        return (lambda: iter_records(source, **options)), ["DataFrame" if is_dataframe(source) else "input"]
    rows = list(source)  # an iterator of dicts can be read once only: keep it for a retry
    return (lambda: iter_records(rows, **options)), ["input"]


def _chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    while chunk := list(itertools.islice(records, size)):
        yield chunk
