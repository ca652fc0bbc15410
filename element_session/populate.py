"""Populate the Imported and Computed tables of any pipeline module with worker processes sharing the work.

:func:`populate` starts N worker processes (new Python interpreters): each connects to the
database with the caller's DataJoint settings, imports the pipeline module by name (which
activates its schemas, as in the caller) and runs DataJoint's
``populate(reserve_jobs=True, suppress_errors=True)`` on each table in dependency order. Job
reservation in the database hands every key to one worker only, so workers started on several
machines against the same database share the work in the same way.

:func:`list_jobs` shows the reservations and failed keys of DataJoint's jobs tables, and
:func:`clear_jobs` removes failed keys and stale reservations so that the next populate runs
them again. A reservation is *stale* when its worker is gone: on this host, when its process id
no longer runs; on another host, whose processes cannot be seen from here, only when it is older
than ``older_than`` minutes. A reservation held by a live process of this host is never cleared.

``element-session populate`` and ``element-session jobs`` (in :mod:`element_session.cli`) call these
functions; see ``docs/populate.md``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import inspect
import pathlib
import pickle
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import datajoint as dj

from . import times
from ._datajoint_compat import declare_jobs_table, release_interrupted_job
from ._processes import process_alive
from .database import translate
from .errors import PopulateError
from .ingest.validate import holds_nul

#: The DataJoint settings a worker process copies from the caller.
_DATABASE_SETTINGS = ("host", "port", "user", "password", "backend", "name", "use_tls", "reconnect")
_JOB_FIELDS = ("status", "host", "pid", "user", "reserved_time", "completed_time", "error_message")


#: Keys to work on: a dict of attribute values, a list of such dicts (any of them), or None (all keys).
Restriction = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


def _check_restriction(
    restriction: Restriction, tables: Sequence[type[dj.Table]], timezone: str
) -> dict[str, Any] | list[dict[str, Any]] | None:
    """The restriction as plain dicts (it travels to the workers), its times read; PopulateError for anything else.

    Only dicts are accepted, so that values reach the database as query parameters, never as SQL text.
    A value of a datetime attribute in the key of one of ``tables`` (``session_datetime``, stored in
    UTC) is read as every time from a person is (:func:`times.parse_session_time`, in
    ``timezone`` where it has no offset) and replaced by the stored naive UTC datetime; text that is
    not such a time is an :class:`~element_session.errors.InputError` naming the attribute and value.
    """
    times.zone_argument(timezone)
    if holds_nul(restriction):
        raise PopulateError(f"a restriction value contains a NUL character: {restriction!r}")
    if restriction is None:
        return None
    is_list = isinstance(restriction, Sequence) and not isinstance(restriction, str | bytes)
    if not isinstance(restriction, Mapping) and not (is_list and all(isinstance(i, Mapping) for i in restriction)):
        raise PopulateError(
            f"restriction must be a dict of attribute values or a list of such dicts, not {restriction!r}"
        )
    time_names = {
        name
        for table in tables
        for name, attribute in table.heading.attributes.items()
        if attribute.in_key and attribute.type.startswith(("datetime", "timestamp"))
    }

    def read(values: Mapping[str, Any]) -> dict[str, Any]:
        return {
            name: times.time_argument(name, value, timezone, source="restriction")
            if name in time_names and value is not None
            else value
            for name, value in values.items()
        }

    return read(restriction) if isinstance(restriction, Mapping) else [read(item) for item in restriction]


def _restricted(query: Any, restriction: Restriction) -> Any:
    """``query & restriction``, or ``query`` itself for None (an empty list would select nothing)."""
    return query if restriction is None else query & restriction


# --------------------------------------------------------------------------- tables of a pipeline


def resolve_pipeline(pipeline: ModuleType | str) -> ModuleType:
    """The pipeline module itself, imported (and thereby activated) from its dotted name if given as text."""
    if isinstance(pipeline, ModuleType):
        return pipeline
    if isinstance(pipeline, str):
        try:
            return importlib.import_module(pipeline)
        except ImportError as err:
            raise PopulateError(f"pipeline module {pipeline!r} cannot be imported: {err}") from err
    raise PopulateError(f"the pipeline must be a module or its import path, not {type(pipeline).__name__}")


def table_label(table: type[dj.Table]) -> str:
    """How tables are named to users: ``<module>.<Class>``, e.g. ``inventory.SessionInventory``."""
    return f"{table.__module__.rsplit('.', 1)[-1]}.{table.__name__}"


def _is_autopopulated(obj: object) -> bool:
    return (
        inspect.isclass(obj)
        and issubclass(obj, dj.Imported | dj.Computed)
        and obj not in (dj.Imported, dj.Computed)
        and getattr(obj, "database", None) is not None
    )


def autopopulated_tables(pipeline: ModuleType | str) -> list[type[dj.Table]]:
    """The activated Imported and Computed tables of a pipeline module, upstream first.

    Tables are found among the module's names and the names of the modules it holds (its schema
    modules, e.g. ``pipeline.inventory``).
    """
    module = resolve_pipeline(pipeline)
    found: dict[str, type[dj.Table]] = {}
    namespaces = [vars(module)] + [vars(v) for v in vars(module).values() if isinstance(v, ModuleType)]
    for namespace in namespaces:
        for obj in namespace.values():
            if _is_autopopulated(obj):
                found.setdefault(obj.full_table_name, obj)
    if not found:
        return []
    connection = next(iter(found.values())).connection
    connection.dependencies.load()
    order = {name: index for index, name in enumerate(connection.dependencies.topo_sort())}
    return sorted(found.values(), key=lambda t: (order.get(t.full_table_name, len(order)), t.full_table_name))


def select_tables(pipeline: ModuleType | str, names: Sequence[str] | None = None) -> list[type[dj.Table]]:
    """The tables named by ``names`` (class names or ``module.Class``), upstream first; all if None.

    Raises :class:`PopulateError` for a name that matches no table, or several.
    """
    tables = autopopulated_tables(pipeline)
    if not names:
        return tables
    if isinstance(names, str):
        names = [names]
    chosen: set[str] = set()
    for name in names:
        matches = [t for t in tables if name in (t.__name__, table_label(t))]
        if len(matches) != 1:
            known = ", ".join(table_label(t) for t in tables) or "none"
            what = "matches no" if not matches else "is ambiguous among the"
            raise PopulateError(
                f"table {name!r} {what} Imported or Computed tables of {resolve_pipeline(pipeline).__name__!r} "
                f"(tables: {known})" + ("; give it as module.Class" if matches else "")
            )
        chosen.add(matches[0].full_table_name)
    return [t for t in tables if t.full_table_name in chosen]


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
    tables: Sequence[str] | None = None,
    workers: int = 1,
    limit: int | None = None,
    progress: bool = True,
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
    progress : show a progress bar (on stderr) of the keys done, polled from the database.
    restriction : only keys matching it: a dict of attribute values (e.g. ``{"subject": "m1"}``),
        or a list of dicts (any of them); attributes a table lacks are ignored. A start time
        (``session_datetime``) may be a datetime or ISO 8601 text with an offset or ``[Zone]``
        (``docs/times.md``); it selects the session stored at that instant.
    poll_interval : seconds between two polls of the progress bar's counts.
    verbose : let the workers show DataJoint's warnings and messages on standard error (by default
        they are quiet).
    timezone : the zone of restriction times without an offset (naive datetimes too); default UTC.

    Returns the :class:`PopulateSummary`. Failed keys are also recorded, with their error, in
    DataJoint's jobs tables (:func:`list_jobs`); they are not retried until cleared
    (:func:`clear_jobs`). Interrupting (Ctrl-C) stops the workers; the keys they were making are
    put back, not recorded as failed.

    Raises :class:`~element_session.errors.PopulateError` for an unusable module, table name,
    restriction, ``workers`` or ``limit``; :class:`~element_session.errors.PermissionDeniedError` or
    :class:`~element_session.errors.DatabaseUnreachableError` when a worker was refused by the
    database or could not reach it (after all workers ended);
    :class:`~element_session.errors.InputError` for a restriction time or ``timezone`` it cannot read.
    """
    module = resolve_pipeline(pipeline)
    if module.__name__ == "__main__":
        raise PopulateError("the pipeline module is __main__: worker processes need a module they can import by name")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise PopulateError(f"workers must be a positive integer, not {workers!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise PopulateError(f"limit must be a positive integer or None, not {limit!r}")
    selected = select_tables(module, tables)
    restriction = _check_restriction(restriction, selected, timezone)
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
            bar = _ProgressBar(selected, restriction) if progress else None
            polled = time.monotonic()
            while any(proc.poll() is None for proc, _ in procs):
                if bar is not None and time.monotonic() - polled >= poll_interval:
                    bar.update()
                    polled = time.monotonic()
                time.sleep(0.05)
            if bar is not None:
                bar.update()
        except BaseException:
            _stop([proc for proc, _ in procs])
            raise
        finally:
            if bar is not None:
                bar.close()
        for proc, result_path in procs:
            # written by our own worker into this process's private (0700) directory
            result = pickle.loads(result_path.read_bytes()) if result_path.exists() else None  # noqa: S301
            if result is None or "fatal" in result:
                reason = result["fatal"] if result else f"ended with exit code {_describe_exit(proc.returncode)}"
                summary.failed_workers.append(f"worker pid {proc.pid}: {reason}")
                refused = refused or (result or {}).get("refused")
            else:
                summary.done += result["done"]
                summary.errors.extend(result["errors"])
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
    """Stop workers with SIGTERM (DataJoint ends the current job), then SIGKILL after 10 s."""
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


class _ProgressBar:
    """A tqdm bar of the keys made since the start, over the selected tables, polled from the database."""

    def __init__(self, tables: Sequence[type[dj.Table]], restriction: Restriction) -> None:
        from tqdm import tqdm

        self.tables = [t() for t in tables]
        self.restriction = restriction
        self.restrictions = [restriction] if restriction is not None else []
        self.start = self._made()
        self.bar = tqdm(total=self._remaining(), unit="key", desc="populate", dynamic_ncols=True)

    def _made(self) -> int:
        return sum(total - remaining for remaining, total in (t.progress(*self.restrictions) for t in self.tables))

    def _remaining(self) -> int:
        return sum(t.progress(*self.restrictions)[0] for t in self.tables)

    def update(self) -> None:
        done = self._made() - self.start
        self.bar.total = done + self._remaining()
        self.bar.n = done
        errors = sum(len(_restricted(t.jobs.errors, self.restriction)) for t in self.tables)
        self.bar.set_postfix(errors=errors, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _populate_table(
    table: dj.Table, quota: int | None, restriction: Restriction
) -> tuple[int, list[tuple[dict[str, Any], str]]]:
    """Run DataJoint's populate with job reservation on one table; (keys made, errors).

    With a quota, populate runs again until the quota is used or no key is pending: keys that
    another worker reserved first do not count.
    """
    options = {"reserve_jobs": True, "suppress_errors": True}
    restrictions = [restriction] if restriction is not None else []
    if quota is None:
        result = table.populate(*restrictions, **options)
        return result["success_count"], list(result["error_list"])
    made, errors, refresh = 0, [], True
    while made + len(errors) < quota:
        result = table.populate(*restrictions, **options, max_calls=quota - made - len(errors), refresh=refresh)
        refresh = False
        made += result["success_count"]
        errors.extend(result["error_list"])
        nothing = not result["success_count"] and not result["error_list"]
        pending = _restricted(table.jobs.pending, restriction) & "scheduled_time <= CURRENT_TIMESTAMP(3)"
        if nothing and not len(pending):
            break
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
        tables = {t.full_table_name: t for t in autopopulated_tables(module)}
        missing = [name for name in orders["tables"] if name not in tables]
        if missing:
            raise PopulateError(
                f"the worker imported {module_name!r} but found no table {', '.join(missing)}: the worker's "
                "environment (e.g. DATABASE_PREFIX) must activate the same schemas as the caller's"
            )
        for name in orders["tables"]:
            table = tables[name]()
            try:
                made, errors = _populate_table(table, orders["quota"], orders["restriction"])
            except SystemExit:
                release_interrupted_job(table)
                raise
            result["done"] += made
            result["errors"].extend((table_label(tables[name]), key, message) for key, message in errors)
    except Exception as err:
        typed = translate(err)
        result = {"fatal": f"{type(err).__name__}: {err}" if typed is None else str(typed), "refused": typed}
    finally:
        path = pathlib.Path(orders["result"])
        path.with_suffix(".tmp").write_bytes(pickle.dumps(result))
        path.with_suffix(".tmp").replace(path)
    if "fatal" in result:
        raise SystemExit(1)


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class JobRecord:
    """One reserved or failed key of a jobs table."""

    table: str  # the table, as module.Class
    key: dict[str, Any]  # the key's primary-key values
    status: str  # 'reserved' (a worker is making it) or 'error' (it failed)
    host: str  # host name of the worker that reserved it
    pid: int  # process id of that worker on its host
    user: str  # database user of that worker
    time: dt.datetime | None  # reservation time ('reserved') or failure time ('error'), database server clock
    age_minutes: float | None  # minutes since that time
    error_message: str  # the error of a failed key ('' for a reservation)
    stale: bool | None  # reservations: True if its process on this host is gone; None on another host
    problem: str = ""  # why the row cannot be read as a job (e.g. a time that is not a datetime); '' if it can


def list_jobs(
    pipeline: ModuleType | str,
    tables: Sequence[str] | None = None,
    restriction: Restriction = None,
    timezone: str = "UTC",
) -> list[JobRecord]:
    """The reserved and failed keys of the pipeline's tables (all, or those named), upstream tables first.

    ``restriction`` (a dict or a list of dicts, its times read in ``timezone``, as for
    :func:`populate`) selects keys.

    Raises :class:`~element_session.errors.PopulateError` for a table name that matches no table (or
    several) and for a restriction that is not a dict or a list of dicts;
    :class:`~element_session.errors.InputError` for a restriction time or ``timezone`` it cannot read.
    """
    selected = select_tables(pipeline, tables)
    restriction = _check_restriction(restriction, selected, timezone)
    if not selected:
        return []
    connection = selected[0].connection
    now = connection.query("SELECT CURRENT_TIMESTAMP(3)").fetchone()[0].replace(tzinfo=None)
    here = platform.node()
    records = []
    for table in selected:
        jobs = declare_jobs_table(table)
        found = _restricted(jobs & [{"status": "reserved"}, {"status": "error"}], restriction)
        rows = found.proj(*_JOB_FIELDS).to_dicts()
        times = [n for n in jobs.primary_key if jobs.heading[n].type.lower().startswith(("date", "timestamp"))]
        for row in rows:
            key = {name: row[name] for name in jobs.primary_key}
            try:
                records.append(_job_record(table_label(table), key, times, row, now, here))
            except (TypeError, ValueError, AttributeError, OverflowError) as err:  # one bad row hides no other
                problem = f"this jobs row cannot be read ({type(err).__name__}: {err})"
                records.append(
                    JobRecord(table_label(table), key, str(row["status"]), str(row["host"]), row["pid"],
                              str(row["user"]), None, None, str(row["error_message"] or ""), None, problem)
                )  # fmt: skip
    return records


def _job_record(
    label: str, key: dict[str, Any], times: list[str], row: dict[str, Any], now: dt.datetime, here: str
) -> JobRecord:
    """The record of one jobs row; TypeError or ValueError if a value is not of its column's type.

    ``times`` are the key attributes that hold dates or times."""
    reserved = row["status"] == "reserved"
    when = row["reserved_time"] if reserved else row["completed_time"]
    if when is not None and not isinstance(when, dt.datetime):
        raise TypeError(f"{'reserved_time' if reserved else 'completed_time'} {when!r} is not a date and time")
    for name in times:
        if key[name] is not None and not isinstance(key[name], dt.date):  # e.g. MySQL's zero date, read as text
            raise ValueError(f"key attribute {name} holds {key[name]!r}, which is not a date and time")
    stale = not process_alive(row["pid"]) if reserved and row["host"] == here else None
    return JobRecord(
        table=label,
        key=key,
        status=row["status"],
        host=row["host"],
        pid=row["pid"],
        user=row["user"],
        time=when,
        age_minutes=(now - when).total_seconds() / 60 if when is not None else None,
        error_message=row["error_message"] or "",
        stale=stale,
    )


def clear_jobs(
    pipeline: ModuleType | str,
    errors: bool = True,
    stale: bool = True,
    older_than: float | None = None,
    tables: Sequence[str] | None = None,
    restriction: Restriction = None,
    timezone: str = "UTC",
) -> list[JobRecord]:
    """Clear failed keys and stale reservations, so that the next populate makes those keys again.

    ``errors`` clears every failed key. ``stale`` clears the reservations whose worker is gone:
    those of this host whose process no longer runs, and, when ``older_than`` (minutes) is given,
    those of other hosts reserved at least that long ago (their processes cannot be checked from
    here: choose an age longer than any job takes). Reservations of live processes of this host
    are never cleared. ``tables``, ``restriction`` and ``timezone`` select as in :func:`list_jobs`.
    Returns the records cleared.
    """
    if older_than is not None and older_than < 0:
        raise PopulateError(f"older_than must be a number of minutes >= 0, not {older_than!r}")
    here = platform.node()
    cleared = []
    by_label = {table_label(t): t for t in select_tables(pipeline, tables)}
    for record in list_jobs(pipeline, tables, restriction, timezone):
        if record.problem:
            continue  # not understood, so not cleared: list_jobs shows it with the reason
        if record.status == "error":
            chosen = errors
        elif record.host == here:
            chosen = stale and bool(record.stale)
        else:
            chosen = stale and older_than is not None and (record.age_minutes or 0) >= older_than
        if not chosen:
            continue
        match = {**record.key, "status": record.status, "host": record.host, "pid": record.pid}
        if (by_label[record.table].jobs & match).delete_quick(get_count=True):
            cleared.append(record)
    return cleared


def format_key(key: dict[str, Any]) -> str:
    """A key as ``name=value, ...`` for the terminal."""
    return ", ".join(f"{name}={value}" for name, value in key.items())


def format_jobs(records: Sequence[JobRecord]) -> str:
    """A plain-text table of job records, one per line, for the terminal."""
    if not records:
        return "no reserved or failed jobs"
    lines = []
    for r in records:
        key = format_key(r.key)
        age = f"{r.age_minutes:.1f} min" if r.age_minutes is not None else "?"
        if r.problem:
            detail = f"UNREADABLE: {r.problem}"
        elif r.status == "error":
            detail = r.error_message
        else:
            detail = {True: "stale: the process is gone", False: "running", None: "on another host"}[r.stale]
        lines.append(f"{r.status:8} {r.table}  {key}  {r.host} pid {r.pid}  {age}  {detail}")
    return "\n".join(lines)
