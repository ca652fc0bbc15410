"""Populate the Imported and Computed tables of any pipeline module with worker processes sharing the work.

:func:`populate` starts N worker processes (new Python interpreters): each connects to the
database with the caller's DataJoint settings, imports the pipeline module by name (which
activates its schemas, as in the caller) and runs DataJoint's
``populate(reserve_jobs=True, suppress_errors=True)`` on each table in dependency order. Job
reservation in the database hands every key to one worker only, so workers started on several
machines against the same database share the work in the same way.

The jobs tables (reserved and failed keys: :func:`~element_session.jobs.list_jobs`,
:func:`~element_session.jobs.clear_jobs`) are in :mod:`element_session.jobs`; their names are
also importable from here, as before.

``element-session populate`` (in :mod:`element_session.cli`) calls :func:`populate`; see
``docs/populate.md``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pathlib
import pickle
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import datajoint as dj

from . import pipeline as pipelines
from ._datajoint_compat import declare_jobs_table, install_connection_rules, interrupted_here
from .database import translate
from .errors import WORKER_TERMINATED, PopulateError
from .jobs import (
    JobRecord,
    Restriction,
    autopopulated,
    clear_jobs,
    format_jobs,
    list_jobs,
    put_back,
    read_restriction,
    restricted,
    select_tables,
)

__all__ = ["JobRecord", "PopulateError", "PopulateSummary", "clear_jobs", "format_jobs", "list_jobs", "populate"]

#: The DataJoint settings a worker process copies from the caller.
_DATABASE_SETTINGS = ("host", "port", "user", "password", "backend", "name", "use_tls", "reconnect")


# --------------------------------------------------------------------------- populate


@dataclass
class PopulateSummary:
    """What a populate run did: keys made, keys that failed, and workers that ended abnormally."""

    done: int = 0
    errors: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)  # (table, key, error message)
    failed_workers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no key failed and every worker ended normally."""
        return not self.errors and not self.failed_workers

    def __str__(self) -> str:
        text = f"populated {self.done} key(s), {len(self.errors)} error(s)"
        if self.failed_workers:
            text += f"; {len(self.failed_workers)} worker(s) failed: " + "; ".join(self.failed_workers)
        return text


def _connection_settings() -> dict[str, dict[str, Any]]:
    return {
        "database": {name: dj.config[f"database.{name}"] for name in _DATABASE_SETTINGS},
        "jobs": dj.config.jobs.model_dump(),
    }


def _quotas(limit: int | None, workers: int) -> list[int | None]:
    """Each worker's share of ``limit`` keys per table (None: no limit)."""
    if limit is None:
        return [None] * workers
    return [limit // workers + (i < limit % workers) for i in range(workers)]


def populate(
    pipeline: ModuleType | str,
    *,
    tables: Sequence[str] | None = None,
    workers: int = 1,
    limit: int | None = None,
    progress: bool | None = True,
    restriction: Restriction = None,
    poll_interval: float = 0.5,
    verbose: bool = False,
    timezone: str = "UTC",
) -> PopulateSummary:
    """Populate the Imported/Computed tables of ``pipeline`` with ``workers`` processes.

    Parameters
    ----------
    pipeline : the pipeline module, or its import path. Each worker is a new Python process that
        imports it by name, so it must be importable (not ``__main__``) and activate the same
        schemas there: workers inherit this process's environment (``DATABASE_PREFIX``,
        ``SESSION_ROOT_DIRS``), ``sys.path``, current directory and DataJoint connection settings.
    tables : class names or ``module.Class`` names of the tables to populate; None: all of them.
        They run in dependency order.
    workers : number of worker processes on this machine.
    limit : at most this many keys per table in this run (shared among the workers); None: no limit.
    progress : show a progress bar (on stderr) of the keys done, polled from the database (None: only
        where stderr is a terminal, as the command does; False: none).
    restriction : only keys matching it: a dict of attribute values (e.g. ``{"subject": "m1"}``),
        or a list of dicts (any of them); attributes a table lacks are ignored for it, but one that no
        selected table has is refused (a misspelling would select every key). A start time
        (``session_datetime``) may be a datetime or ISO 8601 text with an offset or ``[Zone]``
        (``docs/times.md``); it selects the session stored at that instant.
    poll_interval : seconds between two polls of the progress bar's counts.
    verbose : let the workers show DataJoint's warnings and messages on standard error (by default
        they are quiet).
    timezone : the zone of restriction times without an offset (naive datetimes too); default UTC.

    Returns the :class:`PopulateSummary`. Failed keys are also recorded, with their error, in
    DataJoint's jobs tables (:func:`list_jobs`); they are not retried until cleared
    (:func:`clear_jobs`). A KeyboardInterrupt here (Ctrl-C, or SIGTERM as the command line turns it
    into :class:`~element_session.errors.Terminated`) stops the workers (SIGTERM, SIGKILL after
    10 s) and is raised again once they ended; the keys they were making are put back (pending, not
    failed), so other workers take them.

    Raises :class:`~element_session.errors.PopulateError` for an unusable table name,
    restriction, ``workers`` or ``limit``; :class:`~element_session.errors.PipelineImportError` for a
    pipeline module that cannot be found; :class:`~element_session.errors.PermissionDeniedError` or
    :class:`~element_session.errors.DatabaseUnreachableError` when a worker was refused by the
    database or could not reach it (after all workers ended);
    :class:`~element_session.errors.InputError` for a restriction value that cannot be looked up (a NaN,
    a list; :mod:`element_session.lookups`), a time or ``timezone`` it cannot read, before any worker starts.
    """
    install_connection_rules()
    module = pipelines.load(pipeline)
    if module.__name__ == "__main__":
        raise PopulateError("the pipeline module is __main__: worker processes need a module they can import by name")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise PopulateError(f"workers must be a positive integer, not {workers!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise PopulateError(f"limit must be a positive integer or None, not {limit!r}")
    selected = list(select_tables(module, tables).values())
    restriction = read_restriction(restriction, selected, timezone)
    summary = PopulateSummary()
    if not selected:
        return summary
    for table in selected:
        declare_jobs_table(table)

    with tempfile.TemporaryDirectory(prefix="element-session-populate-") as scratch:
        procs: list[tuple[subprocess.Popen, pathlib.Path]] = []
        refused = None
        bar = None
        try:
            for i, quota in enumerate(_quotas(limit, workers)):
                result_path = pathlib.Path(scratch, f"worker{i}.pickle")
                procs.append(_start_worker(module.__name__, selected, quota, restriction, result_path, verbose))
            bar = _ProgressBar(selected, restriction, progress) if progress is not False else None
            polled = time.monotonic()
            while any(proc.poll() is None for proc, _ in procs):
                if bar is not None and time.monotonic() - polled >= poll_interval:
                    bar.update()
                    polled = time.monotonic()
                time.sleep(0.05)
            if bar is not None:
                bar.update()
        except BaseException:  # Ctrl-C, SIGTERM (Terminated), or a failure here: no worker may outlive this
            with _signals_ignored():
                _stop([proc for proc, _ in procs])
                _put_back_reservations(selected, [proc.pid for proc, _ in procs])
            raise
        finally:
            if bar is not None:
                bar.close()
        for proc, result_path in procs:
            # written by our own worker into this process's private (0700) directory
            result = pickle.loads(result_path.read_bytes()) if result_path.exists() else {}  # noqa: S301
            if "fatal" in result or "done" not in result or proc.returncode:  # a worker that ended early failed
                reason = result.get("fatal") or f"ended with exit code {_describe_exit(proc.returncode)}"
                summary.failed_workers.append(f"worker pid {proc.pid}: {reason}")
                refused = refused or result.get("refused")
            summary.done += result.get("done", 0)  # what it made and what failed before it ended count too
            summary.errors.extend(result.get("errors", []))
    if refused is not None:
        raise refused
    return summary


def _start_worker(
    module_name: str,
    tables: Sequence[type[dj.Table]],
    quota: int | None,
    restriction: Restriction,
    result_path: pathlib.Path,
    verbose: bool,
) -> tuple[subprocess.Popen, pathlib.Path]:
    """Start one worker process; its instructions (with the connection settings) go through its stdin."""
    orders = {
        "parent": os.getpid(),
        "module": module_name,
        "tables": [t.full_table_name for t in tables],
        "quota": quota,
        "restriction": restriction,
        "settings": _connection_settings(),
        "sys_path": sys.path,
        "result": str(result_path),
        "verbose": verbose,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "element_session.populate_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    proc.stdin.write(pickle.dumps(orders))
    proc.stdin.close()
    return proc, result_path


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"{code} (killed by {signal.Signals(-code).name})"
    return str(code)


def _stop(procs: Sequence[subprocess.Popen]) -> None:
    """Stop workers with SIGTERM (each puts back the key it was making), then SIGKILL after 10 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 10
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """SIGTERM and SIGINT ignored in the block (in the main thread), so that stopping the workers is not cut short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _put_back_reservations(tables: Sequence[type[dj.Table]], pids: Sequence[int]) -> None:
    """Put back the keys still reserved by these (ended) workers of this host: a worker killed by
    :func:`_stop` after its grace time could not do it itself."""
    here = platform.node()
    with contextlib.suppress(Exception):  # the database may be gone too: the reservations are then stale, and
        for table in tables:  # `jobs --clear-stale` proves it by their connection (docs/populate.md)
            for pid in pids:
                put_back(table().jobs, {"status": "reserved", "host": here, "pid": pid})


class _ProgressBar:
    """A tqdm bar of the keys made since the start, over the selected tables, polled from the database."""

    def __init__(self, tables: Sequence[type[dj.Table]], restriction: Restriction, shown: bool | None) -> None:
        from .progress import progress_bar

        self.tables = [t() for t in tables]
        self.restriction = restriction
        self.restrictions = [restriction] if restriction is not None else []
        self.start = self._made()
        self.bar = progress_bar(total=self._remaining(), shown=shown, unit="key", desc="populate", dynamic_ncols=True)

    def _made(self) -> int:
        return sum(total - remaining for remaining, total in (t.progress(*self.restrictions) for t in self.tables))

    def _remaining(self) -> int:
        return sum(t.progress(*self.restrictions)[0] for t in self.tables)

    def update(self) -> None:
        done = self._made() - self.start
        self.bar.total = done + self._remaining()
        self.bar.n = done
        errors = sum(len(restricted(t.jobs.errors, self.restriction)) for t in self.tables)
        self.bar.set_postfix(errors=errors, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _populate_table(
    table: dj.Table, quota: int | None, restriction: Restriction
) -> tuple[int, list[tuple[dict[str, Any], str]]]:
    """Run DataJoint's populate with job reservation on one table; (keys made, errors).

    Populate runs again while a pass made or failed keys (and, with a quota, until the quota is
    used): so keys another worker put back while this one worked (:func:`put_back`) are taken in
    the same run, and keys another worker reserved first do not count against the quota. It stops
    after a pass that did nothing when no key is pending, or after three such passes.
    """
    options = {"reserve_jobs": True, "suppress_errors": True}
    restrictions = [restriction] if restriction is not None else []
    made, refresh, idle = 0, True, 0
    errors: list[Any] = []
    while quota is None or made + len(errors) < quota:
        calls = None if quota is None else quota - made - len(errors)
        result = table.populate(*restrictions, **options, max_calls=calls, refresh=refresh)
        refresh = False
        made += result["success_count"]
        errors.extend(result["error_list"])
        if result["success_count"] or result["error_list"]:
            idle = 0
            continue
        idle += 1
        pending = restricted(table.jobs.pending, restriction) & "scheduled_time <= CURRENT_TIMESTAMP(3)"
        if idle >= 3 or not len(pending):
            break
        time.sleep(0.2)  # pending keys this pass could not reserve: another worker's, or not yet schedulable
    return made, errors


def run_worker(orders: dict[str, Any]) -> None:
    """The work of a worker process (:mod:`element_session.populate_worker`): connect, import the pipeline,
    populate, and write the result where ``orders`` say.

    A failure is written as ``{"fatal": message}``, with ``"refused"``: the typed error when the
    database refused the work or could not be reached.
    """
    result: dict[str, Any] = {"done": 0, "errors": []}
    try:
        for section, values in orders["settings"].items():
            for name, value in values.items():
                dj.config[f"{section}.{name}"] = value
        module_name = orders["module"]
        module = importlib.import_module(module_name)
        tables = {t.full_table_name: (label, t) for label, t in autopopulated(module).items()}
        missing = [name for name in orders["tables"] if name not in tables]
        if missing:
            raise PopulateError(
                f"the worker imported {module_name!r} but found no table {', '.join(missing)}: the worker's "
                "environment (e.g. DATABASE_PREFIX) must activate the same schemas as the caller's"
            )
        for name in orders["tables"]:
            label, table_class = tables[name]
            table = table_class()
            try:
                made, errors = _populate_table(table, orders["quota"], orders["restriction"])
            except SystemExit as stop:  # SIGTERM, or a make that called sys.exit(): the worker ends here
                result["fatal"], failed = _ended(stop, label, table)
                result["errors"].extend(failed)
                if stop.code == WORKER_TERMINATED:
                    raise
                raise SystemExit(1) from None
            result["done"] += made
            result["errors"].extend((label, key, message) for key, message in errors)
    except Exception as err:
        typed = translate(err)
        result.update(fatal=f"{type(err).__name__}: {err}" if typed is None else str(typed), refused=typed)
    finally:
        path = pathlib.Path(orders["result"])
        path.with_suffix(".tmp").write_bytes(pickle.dumps(result))
        path.with_suffix(".tmp").replace(path)
    if "fatal" in result:
        raise SystemExit(1)


def _ended(stop: SystemExit, label: str, table: dj.Table) -> tuple[str, list[tuple[str, dict[str, Any], str]]]:
    """Why a worker ended with ``stop`` while populating ``table`` (labelled ``label``), and the key that failed.

    SIGTERM (DataJoint's handler during a key, the worker's own between keys) is not a failure of the
    key: it is put back. A ``make`` that called ``sys.exit()`` failed its key, which DataJoint recorded
    as an error (``SystemExit: CODE``); the worker ends with it, since DataJoint raises it again.
    """
    if stop.code == WORKER_TERMINATED:
        with contextlib.suppress(Exception):
            put_back(table.jobs, interrupted_here())
        return "stopped by SIGTERM (the key it was making was put back)", []
    message = f"SystemExit: {stop}" if str(stop) else "SystemExit"  # as DataJoint records it
    mine = {"status": "error", "host": platform.node(), "pid": os.getpid(), "error_message": message}
    failed: list[tuple[str, dict[str, Any], str]] = []
    with contextlib.suppress(Exception):  # the connection may be gone: the key is in the jobs table all the same
        failed = [(label, key, message) for key in (table.jobs & mine).keys()]  # noqa: SIM118 (a query's keys)
    return f"the make of {label} called sys.exit({stop.code!r}): its key failed, and the worker ended", failed
