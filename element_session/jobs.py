"""The jobs tables of a pipeline: which keys to work on, reserved and failed keys, and clearing them.

DataJoint's jobs tables record, per Imported/Computed table, the keys a worker has reserved and the
keys that failed. :func:`list_jobs` shows them and :func:`clear_jobs` removes failed keys and stale
reservations so that the next :func:`~element_session.populate.populate` makes those keys again. A
reservation is *stale* when the database server no longer lists its worker's connection, wherever
the worker ran (:mod:`element_session.liveness`); a reservation whose connection the server lists
is never cleared, nor one whose connection this account cannot see (another account's, for a MySQL
account without the PROCESS privilege). One without a recorded connection is cleared only when it
is older than ``older_than`` minutes.

Both this module and the worker pool (:mod:`element_session.populate`) select tables by name
(:func:`select_tables`) and keys by a restriction (:func:`read_restriction`). ``element-session
jobs`` (in :mod:`element_session.cli`) calls these functions; see ``docs/populate.md``.
"""

from __future__ import annotations

import datetime as dt
import numbers
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import datajoint as dj
import pandas as pd

from . import pipeline as pipelines
from . import times
from ._datajoint_compat import declare_jobs_table
from .errors import InputError, InputProblem, PopulateError, one_problem
from .formats import key_text, text_table
from .liveness import ServerConnections, Verdict
from .lookups import attribute_value, check_restriction

_NOT_RESERVED = Verdict(None, "")  # the verdict of a failed key, which is not judged
_JOB_FIELDS = ("status", "host", "pid", "connection_id", "user", "reserved_time", "completed_time", "error_message")

#: Keys to work on: a dict of attribute values, a list of such dicts (any of them), or None (all keys).
Restriction = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


def read_restriction(
    restriction: Restriction, tables: Iterable[type[dj.Table]], timezone: str
) -> dict[str, Any] | list[dict[str, Any]] | None:
    """The restriction as plain dicts (it travels to the workers), its times read.

    Only dicts are accepted, so that values reach the database as query parameters, never as SQL text;
    each value must be one that can be looked up (:mod:`element_session.lookups`: no NaN or other
    missing value of pandas, no list, no NUL character; None means ``IS NULL``), so that a bad value
    is refused here, before any worker starts.
    A value of a datetime attribute in the key of one of ``tables`` (``session_datetime``, stored in
    UTC) is read as every time from a person is (:func:`times.parse_session_time`, in
    ``timezone`` where it has no offset) and replaced by the stored naive UTC datetime; text that is
    not such a time is an :class:`~element_session.errors.InputError` naming the attribute and value.
    Any other value of a key attribute is read as its type (:func:`~element_session.lookups.attribute_value`):
    text for a number attribute is read as a number, or refused; a number for a text attribute is refused.

    Raises
    ------
    PopulateError
        A restriction that is not a dict or a list of dicts.
    InputError
        A value that cannot be looked up (naming the attribute) or not as its attribute's type, a time or
        ``timezone`` that cannot be read,
        an attribute in none of ``tables``' primary keys (DataJoint would ignore it and select every key).
    """
    times.zone_argument(timezone)
    if restriction is None:
        return None
    is_list = isinstance(restriction, Sequence) and not isinstance(restriction, str | bytes)
    if not isinstance(restriction, Mapping) and not (is_list and all(isinstance(i, Mapping) for i in restriction)):
        raise PopulateError(
            f"restriction must be a dict of attribute values or a list of such dicts, not {restriction!r}"
        )
    check_restriction("restriction", restriction)
    tables = list(tables)
    keys = list(dict.fromkeys(name for table in tables for name in table.primary_key))
    items = [restriction] if isinstance(restriction, Mapping) else restriction
    unknown = sorted({name for item in items for name in item if name not in keys})
    if tables and unknown:  # keys are restricted by their own attributes: DataJoint ignores others, selecting every key
        reason = f"no selected table has this attribute in its key (their keys: {', '.join(keys)})"
        raise InputError([InputProblem("restriction", None, name, None, reason) for name in unknown])
    attributes: dict[str, Any] = {}
    for table in reversed(tables):  # the first table's where several have the attribute
        attributes.update((n, a) for n, a in table.heading.attributes.items() if a.in_key)

    def read_value(name: str, value: Any) -> Any:
        attribute = attributes.get(name)
        return value if attribute is None else attribute_value(name, value, attribute, timezone=timezone)

    def read(values: Mapping[str, Any]) -> dict[str, Any]:
        return {name: read_value(name, value) for name, value in values.items()}

    return read(restriction) if isinstance(restriction, Mapping) else [read(item) for item in restriction]


def restricted(query: Any, restriction: Restriction) -> Any:
    """``query & restriction``, or ``query`` itself for None (an empty list would select nothing)."""
    return query if restriction is None else query & restriction


# --------------------------------------------------------------------------- tables


def autopopulated(pipeline: ModuleType | str) -> dict[str, type[dj.Table]]:
    """The activated Imported and Computed tables of a pipeline module by label, upstream first.

    Raises
    ------
    PipelineImportError, UsageError
        As :func:`element_session.pipeline.load`.
    """
    found = pipelines.tables(pipeline, kinds=(dj.Imported, dj.Computed))
    if not found:
        return {}
    connection = next(iter(found.values())).connection
    connection.dependencies.load()
    order = {name: index for index, name in enumerate(connection.dependencies.topo_sort())}
    return dict(
        sorted(
            found.items(), key=lambda item: (order.get(item[1].full_table_name, len(order)), item[1].full_table_name)
        )
    )


def select_tables(
    pipeline: ModuleType | str,
    names: Sequence[str] | None = None,
    among: Mapping[str, type[dj.Table]] | None = None,
) -> dict[str, type[dj.Table]]:
    """The tables named by ``names`` (class names or labels ``module.Class``) by label, upstream first; all if None.

    ``among`` is :func:`autopopulated` of the pipeline where the caller keeps it (read otherwise).

    Raises
    ------
    PopulateError
        A name matches no table, or several.
    PipelineImportError, UsageError
        As :func:`element_session.pipeline.load`.
    """
    tables = dict(among) if among is not None else autopopulated(pipeline)
    if not names:
        return tables
    if isinstance(names, str):
        names = [names]
    chosen: set[str] = set()
    for name in names:
        matches = [label for label, t in tables.items() if name in (t.__name__, label)]
        if len(matches) != 1:
            known = ", ".join(tables) or "none"
            what = "matches no" if not matches else "is ambiguous among the"
            raise PopulateError(
                f"table {name!r} {what} Imported or Computed tables of {pipelines.load(pipeline).__name__!r} "
                f"(tables: {known})" + ("; give it as module.Class" if matches else "")
            )
        chosen.add(matches[0])
    return {label: t for label, t in tables.items() if label in chosen}


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
    stale: bool | None  # reservations: True if its worker is gone, False if alive, None if not judged (see liveness)
    problem: str = ""  # why the row cannot be read as a job (e.g. a time that is not a datetime); '' if it can
    liveness: str = ""  # reservations: how ``stale`` was judged (e.g. "stale: its connection 42 is gone")
    connection_id: int = 0  # the worker's database connection (0: none recorded)


def list_jobs(
    pipeline: ModuleType | str,
    *,
    tables: Sequence[str] | None = None,
    restriction: Restriction = None,
    timezone: str = "UTC",
) -> list[JobRecord]:
    """The reserved and failed keys of the pipeline's tables (all, or those named), upstream tables first.

    ``restriction`` (a dict or a list of dicts, its times read in ``timezone``, as for
    :func:`~element_session.populate.populate`) selects keys.

    Raises
    ------
    PopulateError
        A table name that matches no table (or several); a restriction that is not a dict or a list
        of dicts.
    InputError
        A restriction time or ``timezone`` it cannot read.
    PipelineImportError
        A pipeline given by a name that cannot be imported.
    """
    return read_jobs(select_tables(pipeline, tables), restriction=restriction, timezone=timezone)


def read_jobs(
    selected: Mapping[str, type[dj.Table]],
    jobs_tables: Mapping[str, dj.Table] | None = None,
    *,
    restriction: Restriction = None,
    timezone: str = "UTC",
) -> list[JobRecord]:
    """The reserved and failed keys of ``selected`` (label -> table, as :func:`select_tables` gives them).

    ``jobs_tables`` (label -> jobs table, as :func:`~element_session._datajoint_compat.declare_jobs_table`
    gives them) spares the check that each is declared, for a caller that keeps them (the web
    pages, per connection). The server's connections are read only where a key is reserved.
    Raises as :func:`list_jobs`.
    """
    restriction = read_restriction(restriction, selected.values(), timezone)
    if not selected:
        return []
    connection = next(iter(selected.values())).connection
    now = connection.query("SELECT CURRENT_TIMESTAMP(3)").fetchone()[0].replace(tzinfo=None)
    connections: ServerConnections | None = None
    here = platform.node()
    records = []
    for label, table in selected.items():
        jobs = jobs_tables[label] if jobs_tables is not None else declare_jobs_table(table)
        found = restricted(jobs & [{"status": "reserved"}, {"status": "error"}], restriction)
        rows = found.proj(*_JOB_FIELDS).to_dicts()
        if connections is None and any(row["status"] == "reserved" for row in rows):
            connections = ServerConnections.read(connection)
        times = [n for n in jobs.primary_key if jobs.heading[n].type.lower().startswith(("date", "timestamp"))]
        for row in rows:
            key = {name: row[name] for name in jobs.primary_key}
            try:
                verdict = connections.judge(row, here) if connections is not None else _NOT_RESERVED
                records.append(_job_record(label, key, times, row, now, verdict))
            except (TypeError, ValueError, AttributeError, OverflowError) as err:  # one bad row hides no other
                problem = f"this jobs row cannot be read ({type(err).__name__}: {err})"
                records.append(
                    JobRecord(label, key, str(row["status"]), str(row["host"]), row["pid"],
                              str(row["user"]), None, None, str(row["error_message"] or ""), None, problem)
                )  # fmt: skip
    return records


def _job_record(
    label: str, key: dict[str, Any], times: list[str], row: dict[str, Any], now: dt.datetime, verdict: Verdict
) -> JobRecord:
    """The record of one jobs row; TypeError or ValueError if a value is not of its column's type.

    ``times`` are the key attributes that hold dates or times; ``verdict`` whether its worker is alive."""
    reserved = row["status"] == "reserved"
    when = row["reserved_time"] if reserved else row["completed_time"]
    if when is not None and not isinstance(when, dt.datetime):
        raise TypeError(f"{'reserved_time' if reserved else 'completed_time'} {when!r} is not a date and time")
    for name in times:
        if key[name] is not None and not isinstance(key[name], dt.date):  # e.g. MySQL's zero date, read as text
            raise ValueError(f"key attribute {name} holds {key[name]!r}, which is not a date and time")
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
        stale=verdict.stale if reserved else None,
        liveness=verdict.reason if reserved else "",
        connection_id=int(row["connection_id"] or 0),
    )


def clear_jobs(
    pipeline: ModuleType | str,
    *,
    errors: bool = True,
    stale: bool = True,
    older_than: float | None = None,
    tables: Sequence[str] | None = None,
    restriction: Restriction = None,
    timezone: str = "UTC",
) -> list[JobRecord]:
    """Clear failed keys and stale reservations, so that the next populate makes those keys again.

    ``errors`` clears every failed key. ``stale`` clears the reservations whose worker is gone (its
    connection is no longer on the database server, wherever it ran: :mod:`element_session.liveness`)
    and, when ``older_than`` (minutes) is given, those without a recorded connection (not written by
    DataJoint 2.x) reserved at least that long ago. A reservation whose worker is alive is never
    cleared, whatever its age; nor is one whose connection this account cannot see (another
    account's, on MySQL without the PROCESS privilege): its worker may be alive. A row is deleted only if
    it still is the reservation judged (same worker and connection). ``tables``, ``restriction`` and
    ``timezone`` select as in :func:`list_jobs`. Returns the records cleared.

    Raises
    ------
    InputError
        ``older_than`` is negative or not a number (NaN), named as the argument (``--older-than``
        on the command line); and as :func:`list_jobs`.
    PopulateError, PipelineImportError
        As :func:`list_jobs`.
    """
    usable = isinstance(older_than, numbers.Real) and not isinstance(older_than, bool) and older_than >= 0  # not NaN
    if older_than is not None and not usable:
        raise one_problem("arguments", "older_than", older_than, "give a number of minutes >= 0")
    cleared = []
    by_label = select_tables(pipeline, tables)
    for record in list_jobs(pipeline, tables=tables, restriction=restriction, timezone=timezone):
        if record.problem:
            continue  # not understood, so not cleared: list_jobs shows it with the reason
        if record.status == "error":
            chosen = errors
        elif record.stale is None:  # a worker whose connection this account cannot see may be alive: never cleared
            aged = older_than is not None and (record.age_minutes or 0) >= older_than
            chosen = stale and aged and not record.connection_id
        else:
            chosen = stale and record.stale
        if not chosen:
            continue
        match = {**record.key, "status": record.status, "host": record.host, "pid": record.pid}
        if record.status == "reserved":
            match["connection_id"] = record.connection_id
        if (by_label[record.table].jobs & match).delete_quick(get_count=True):
            cleared.append(record)
    return cleared


def put_back(jobs: dj.Table, rows: Mapping[str, Any]) -> int:
    """Make the keys of the rows of ``jobs`` (a jobs table) that match ``rows`` pending again; how many.

    A key put back is one its worker did not finish (stopped, or killed and its death certain): it
    is not a failure, so it is neither recorded as an error nor left reserved. As ``pending`` (the
    state DataJoint's ``refresh`` gives a new key) the next pass of any worker, in this run or
    another, reserves it; its reservation, error and worker fields are reset.
    """
    count = 0
    for key in (jobs & dict(rows)).keys():  # noqa: SIM118 (a query's keys, not a dict's)
        row = {
            **key,
            "status": "pending",
            "reserved_time": None,
            "completed_time": None,
            "error_message": "",
            "error_stack": None,
            "host": "",
            "pid": 0,
            "connection_id": 0,
            "user": "",
        }
        try:
            jobs.update1(row)
        except dj.errors.DataJointError:  # deleted meanwhile (cleared, or made and completed): nothing to put back
            continue
        count += 1
    return count


def format_jobs(records: Sequence[JobRecord]) -> str:
    """A plain-text table of job records for the terminal: a header line, then one line per record."""
    if not records:
        return "no reserved or failed jobs"
    return text_table(
        pd.DataFrame(
            {
                "status": [r.status for r in records],
                "table": [r.table for r in records],
                "key": [key_text(r.key) for r in records],
                "host": [r.host for r in records],
                "pid": [r.pid for r in records],
                "age": [f"{r.age_minutes:.1f} min" if r.age_minutes is not None else "?" for r in records],
                "detail": [_detail(r) for r in records],
            }
        )
    )


def _detail(record: JobRecord) -> str:
    """What a job row says: its error, whether its reservation is stale, or why it cannot be read."""
    if record.problem:
        return f"UNREADABLE: {record.problem}"
    if record.status == "error":
        return record.error_message
    return record.liveness
