"""What the web interface does with the database, as the logged-in account: no HTTP here.

Every function takes the account's :class:`~element_session.web.accounts.UserPipeline` and goes
through the project's own query and ingest functions; values reach SQL only as DataJoint dict
restrictions or query parameters. Bad input raises :class:`~element_session.errors.InputError`
(the problems name the parameter or field). Failures of the database (a refusal is
:class:`~element_session.errors.PermissionDeniedError`) are translated once, around the work of a
request, by :meth:`~element_session.web.accounts.Accounts.use`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datajoint as dj
import pandas as pd

from .. import formats, paths, query, times
from .. import pipeline as pipelines
from ..columns import ATTRIBUTE_PREFIX
from ..errors import InputError, InputProblem, SessionDirectoryError, SessionNotFoundError, one_problem
from ..ingest import IngestReport, ingest, validate
from ..ingest.validate import check_integer, check_text, column_checks
from ..jobs import JobRecord, list_jobs
from ..status import check_editable
from .accounts import UserPipeline

#: Query parameters of a selection of sessions, with ``find_sessions``' meaning (``subject`` repeatable).
FILTERS = ("subject", "project", "experimenter", "since", "until", "timezone", "attribute", "value")
MAX_LIMIT = 10_000  # sessions in one answer


@dataclass(frozen=True)
class Selection:
    """A validated selection of sessions: ``find_sessions`` arguments and a page of its result."""

    filters: dict[str, Any]  # keyword arguments of find_sessions (only those given)
    limit: int
    offset: int


def _text(name: str, value: str) -> str:
    try:
        return check_text(value)
    except ValueError as err:
        raise one_problem("query", name, value, str(err)) from None


def _count(name: str, value: str | None, default: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        return check_integer(value, 0, high)
    except ValueError as err:
        raise one_problem("query", name, value, f"{err} (a whole number from 0 to {high})") from None


def parse_selection(params: Sequence[tuple[str, str]], default_limit: int) -> Selection:
    """The selection of query parameters ``params`` (name, value pairs, in order).

    Empty values mean "not given"; unknown names are refused. Raises :class:`InputError` naming
    every bad parameter.
    """
    problems: list[InputProblem] = []
    filters: dict[str, Any] = {}
    counts: dict[str, str] = {}
    subjects: list[str] = []
    for name, value in params:
        try:
            if name in ("limit", "offset", "page"):
                counts[name] = value
            elif name not in FILTERS:
                raise one_problem("query", name, value, f"unknown parameter: use {', '.join(FILTERS)}, limit, offset")
            elif value == "":
                continue
            elif name == "subject":
                subjects.append(_text(name, value))
            elif name in filters:
                raise one_problem("query", name, value, "given twice")
            else:
                filters[name] = _text(name, value)
        except InputError as err:
            problems.extend(err.problems)
    if subjects:
        filters["subject"] = subjects
    if "timezone" in filters:
        try:
            times.zone_info(filters["timezone"])
        except times.TimeError as err:
            problems.append(InputProblem("query", None, "timezone", filters["timezone"], str(err)))
    limit = offset = 0
    try:
        limit = _count("limit", counts.get("limit"), default_limit, MAX_LIMIT)
        offset = _count("offset", counts.get("offset"), 0, 2**62)
        if "page" in counts:
            offset = (_count("page", counts["page"], 1, 2**40) - 1) * limit
            if offset < 0:
                raise one_problem("query", "page", counts["page"], "pages are numbered from 1")
    except InputError as err:
        problems.extend(err.problems)
    if problems:
        raise InputError(problems)
    return Selection(filters, limit, offset)


def _found(user: UserPipeline, selection: Selection) -> Any:
    return query.find_sessions(user.session, **selection.filters)


def session_page(user: UserPipeline, selection: Selection, newest_first: bool = False) -> tuple[pd.DataFrame, int]:
    """One page of the selected sessions as a :func:`~element_session.query.session_table`, and the total.

    In the order of ``element-session sessions`` (by primary key, as Python compares the values:
    the keys of every match are read and sorted here, since the database's collation may order
    text otherwise), or by start time, newest first (sorted by the database where the start time
    is part of the key). Only the page's sessions are read in full.
    """
    names = list(user.session.Session.primary_key)
    found = _found(user, selection)
    if newest_first and "session_datetime" in names:
        order = ["session_datetime DESC", *(f"{n} DESC" for n in names if n != "session_datetime")]
        keys = found.proj().to_dicts(order_by=order, limit=selection.limit, offset=selection.offset)
        page, total = [tuple(k[n] for n in names) for k in keys] if selection.limit else [], len(found)
    else:
        page, total = _sorted_page(found, names, selection, newest_first)
    keys = [dict(zip(names, ident, strict=True)) for ident in page]
    frame = query.session_table(found & keys, user.session)  # an empty list selects nothing
    if newest_first:  # session_table orders by key: put the page back in its own order
        position = {ident: i for i, ident in enumerate(page)}
        stored = [tuple(_naive(frame.iloc[i][n]) for n in names) for i in range(len(frame))]
        at = sorted(range(len(frame)), key=lambda i: position[stored[i]])
        frame = frame.iloc[at].reset_index(drop=True)
    return frame, total


def _sorted_page(found: Any, names: list[str], selection: Selection, newest_first: bool) -> tuple[list[tuple], int]:
    """The keys of one page of ``found`` sorted here, and the number of matches."""
    stamp = [] if "session_datetime" in names else ["session_datetime"]
    keys = found.proj(*stamp)
    columns = list(keys.heading.names)
    rows = [dict(zip(columns, row, strict=True)) for row in keys.cursor().fetchall()]  # plain rows: fast
    idents = [tuple(r[n] for n in names) for r in rows]
    if newest_first:
        when = [(r["session_datetime"] is not None, r["session_datetime"] or dt.datetime.min) for r in rows]
        order = sorted(range(len(rows)), key=lambda i: (*when[i], query.session_sort_key(idents[i])), reverse=True)
    else:
        order = sorted(range(len(rows)), key=lambda i: query.session_sort_key(idents[i]))
    return [idents[i] for i in order[selection.offset : selection.offset + selection.limit]], len(rows)


def _naive(value: Any) -> Any:
    """A key value as stored: session_table's aware UTC datetimes without their zone."""
    return value.replace(tzinfo=None) if isinstance(value, dt.datetime) else value


def session_records(user: UserPipeline, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The JSON objects of ``frame``'s sessions, as ``element-session sessions --format json`` prints them."""
    return formats.session_records(frame, user.session.Session)


def all_sessions(user: UserPipeline, selection: Selection) -> pd.DataFrame:
    """Every selected session (no paging), in the order of ``element-session sessions``."""
    return query.session_table(_found(user, selection), user.session)


# -- one session ----------------------------------------------------------------------------------
def parse_session_key(user: UserPipeline, params: Mapping[str, str]) -> dict[str, Any]:
    """The primary key of one session from text parameters (``session_datetime`` as ISO text with offset).

    Read by :func:`~element_session.ingest.validate.parse_session_key`; raises :class:`InputError`.
    """
    return validate.parse_session_key(user.session, params, subject=user.pipeline.Subject())


def key_params(user: UserPipeline, record: Mapping[str, Any]) -> dict[str, str]:
    """The text parameters naming a session, from its JSON object (inverse of :func:`parse_session_key`)."""
    params = {}
    for name in user.session.Session.primary_key:
        value = record[name]
        params[name] = value if isinstance(value, str) else str(value)
    return params


@dataclass
class SessionDetail:
    """Everything the session page shows."""

    record: dict[str, Any]  # the session's JSON object (formats.session_records)
    local_time: dt.datetime | None  # start in its own zone
    zone: str | None
    directory: str | None  # absolute directory found under the roots
    directory_problem: str | None  # why it was not found
    downstream: dict[str, int]  # Imported/Computed table label -> rows of this session
    jobs: list[JobRecord]  # reserved and failed jobs of this session


def _session_frame(user: UserPipeline, key: dict[str, Any]) -> pd.DataFrame:
    frame = query.session_table(user.session.Session & key, user.session)
    if not len(frame):
        raise SessionNotFoundError(f"no session {formats.key_text(key)}")
    return frame


def session_record(user: UserPipeline, key: dict[str, Any]) -> dict[str, Any]:
    """The JSON object of the session ``key``; :class:`SessionNotFoundError` if there is none."""
    (record,) = formats.session_records(_session_frame(user, key), user.session.Session)
    return record


def session_detail(user: UserPipeline, key: dict[str, Any]) -> SessionDetail:
    """The session ``key`` with its parts, directory, downstream rows and jobs; :class:`SessionNotFoundError`."""
    frame = _session_frame(user, key)
    (record,) = formats.session_records(frame, user.session.Session)
    row = frame.iloc[0]
    directory = problem = None
    if record["session_dir"] is not None:
        try:
            directory = str(paths.get_session_directory(key, user.session))
        except (SessionDirectoryError, SessionNotFoundError) as err:
            problem = str(err)
    counts = affected_rows(user, key)
    labels = _labels(user)
    downstream = {labels[name]: n for name, n in counts.items() if n and name in _computed_tables(user)}
    jobs = list_jobs(user.pipeline, restriction=key)
    return SessionDetail(
        record,
        local_time(row["session_datetime_local"]),
        text_or_none(row["session_timezone"]),
        directory,
        problem,
        downstream,
        jobs,
    )


def local_time(value: Any) -> dt.datetime | None:
    """A ``session_datetime_local`` cell of the table of sessions (ISO text with offset, or missing) as an
    aware datetime, or None."""
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else None


def text_or_none(value: Any) -> str | None:
    """A text cell of the table of sessions, None where missing (``<NA>``)."""
    return value if isinstance(value, str) else None


def _labelled_tables(user: UserPipeline) -> dict[str, tuple[str, type[dj.Table]]]:
    """Every table of the bound pipeline (parts included) by full name: its label and class
    (:func:`element_session.pipeline.tables`)."""
    return {t.full_table_name: (label, t) for label, t in pipelines.tables(user.pipeline).items()}


def _labels(user: UserPipeline) -> dict[str, str]:
    return {name: label for name, (label, _) in _labelled_tables(user).items()}


def _computed_tables(user: UserPipeline) -> set[str]:
    return {name for name, (_, t) in _labelled_tables(user).items() if issubclass(t, dj.Imported | dj.Computed)}


def affected_rows(user: UserPipeline, key: dict[str, Any]) -> dict[str, int]:
    """Rows per table (full table name) that deleting the session ``key`` would remove, the session included."""
    user.connection.dependencies.load()
    return dj.Diagram.cascade(user.session.Session & key).counts()


def delete_preview(user: UserPipeline, key: dict[str, Any]) -> dict[str, int]:
    """Rows per table (labelled ``module.Class``) that deleting the session ``key`` would remove."""
    labels = _labels(user)
    return {labels.get(name, name): n for name, n in affected_rows(user, key).items() if n}


def delete_session(user: UserPipeline, key: dict[str, Any]) -> int:
    """Delete the session ``key`` and everything downstream of it, in one transaction; rows of Session deleted."""
    if not len(user.session.Session & key):
        raise SessionNotFoundError(f"no session {formats.key_text(key)}")
    return (user.session.Session & key).delete(transaction=True, prompt=False)


def update_session(user: UserPipeline, key: dict[str, Any], note: str, attributes: Mapping[str, str]) -> None:
    """Set the session's note ('' removes it) and text attributes (those not given are removed), in one transaction.

    Checked as ingest checks them (the columns' widths, key text rules); raises :class:`InputError`
    with the field of each problem (:class:`~element_session.errors.SessionLockedError` for a
    ``qc_passed`` session), and nothing is changed.
    """
    m = user.session
    problems: list[InputProblem] = []
    note_check = column_checks(m.SessionNote())["session_note"]
    attribute_checks = column_checks(m.Session.Attribute())
    try:
        note_check(note)
    except ValueError as err:
        problems.append(InputProblem("form", None, "session_note", note, str(err)))
    for name, value in attributes.items():
        try:
            attribute_checks["attribute_name"](validate.check_attribute_name(name))
        except ValueError as err:
            problems.append(InputProblem("form", None, ATTRIBUTE_PREFIX + name, name, str(err)))
        try:
            attribute_checks["attribute_value"](value)
        except ValueError as err:
            problems.append(InputProblem("form", None, ATTRIBUTE_PREFIX + name, value, str(err)))
    if problems:
        raise InputError(problems)
    if not len(m.Session & key):
        raise SessionNotFoundError(f"no session {formats.key_text(key)}")
    with user.connection.transaction:
        check_editable(m, [key], source="form")  # a qc_passed session is reopened first
        (m.SessionNote & key).delete_quick()
        if note:
            m.SessionNote.insert1({**key, "session_note": note})
        stored = {r["attribute_name"]: r for r in (m.Session.Attribute & key).to_dicts()}
        for name in stored.keys() - attributes.keys():
            (m.Session.Attribute & {**key, "attribute_name": name}).delete_quick()
        for name, value in attributes.items():
            if name not in stored:
                m.Session.Attribute.insert1({**key, "attribute_name": name, "attribute_value": value})
            elif stored[name]["attribute_value"] != value:
                m.Session.Attribute.update1({**key, "attribute_name": name, "attribute_value": value})


def add_sessions(user: UserPipeline, rows: list[dict[str, Any]], timezone: str = "UTC") -> IngestReport:
    """Ingest session rows (ingest's JSON input form) as the account, in one transaction, as ``ingest`` does."""
    return ingest(
        "sessions", rows, linking_module=user.pipeline, session_module=user.session, timezone=timezone, progress=False
    )


def subject_sessions(user: UserPipeline, subject: Mapping[str, str]) -> pd.DataFrame:
    """Every session of one subject (its key attributes as text), in the order of ``sessions``."""
    names = formats.subject_attributes(user.session.Session)
    key = validate.parse_session_key(user.session, subject, subject=user.pipeline.Subject(), names=names)
    if not len(user.pipeline.Subject & key):
        raise SessionNotFoundError(f"no subject {formats.key_text(key)}")
    return query.session_table(user.session.Session & key, user.session)
