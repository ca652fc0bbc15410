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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datajoint as dj
import pandas as pd

from .. import blob_json, formats, paths, privileges, query, times
from .. import pipeline as pipelines
from .._datajoint_compat import cascade_counts, declare_jobs_table
from ..attribute_blobs import read_attribute_blobs
from ..columns import ATTRIBUTE_PREFIX
from ..errors import InputError, InputProblem, SessionDirectoryError, SessionNotFoundError, one_problem
from ..ingest import IngestReport, ingest, validate
from ..ingest.validate import check_integer, check_text, column_checks
from ..jobs import JobRecord, autopopulated, clear_jobs, read_jobs, select_tables
from ..session_frame import AGGREGATED_KEYS, key_condition, session_rows
from ..status import check_editable, check_status
from ..tables import other_key
from . import paging
from .accounts import Accounts, Credentials, UserPipeline

#: Query parameters of a selection of sessions, with ``find_sessions``' meaning (``subject`` and ``status``
#: repeatable).
FILTERS = (
    "search", "subject", "project", "experimenter", "since", "until", "timezone", "attribute", "value", "status"
)  # fmt: skip
REPEATABLE = ("subject", "status")
PAGING = ("limit", "offset", "page", "after")  # query parameters of a page of a selection
MAX_LIMIT = 10_000  # sessions in one answer


@dataclass(frozen=True)
class Selection:
    """A validated selection of sessions: ``find_sessions`` arguments and a page of its result."""

    filters: dict[str, Any]  # keyword arguments of find_sessions (only those given)
    limit: int
    offset: int
    after: str | None = None  # a cursor (paging.cursor): the page starts after that session


def _text(name: str, value: str) -> str:
    try:
        return check_text(value)
    except ValueError as err:
        raise one_problem("query", name, value, str(err)) from None


def _count(name: str, value: str | None, default: int, high: int, low: int = 0) -> int:
    if value is None or value == "":
        return default
    try:
        return check_integer(value, low, high)
    except ValueError:
        digits = value.strip()
        if high > MAX_LIMIT and digits.isascii() and digits.isdigit() and int(digits) > high:  # no list reaches it
            raise one_problem("query", name, value, f"{name} must be at most {high:,}") from None
        allowed = f"from {low} to {high:,}" if high <= MAX_LIMIT else f"{low} or more"
        raise one_problem("query", name, value, f"{name} must be a whole number {allowed}") from None


def parse_selection(
    params: Sequence[tuple[str, str]], default_limit: int, lab_zone: str | None = None, paged: bool = True
) -> Selection:
    """The selection of query parameters ``params`` (name, value pairs, in order).

    Empty values mean "not given"; unknown names are refused, and so are the paging parameters
    (:data:`PAGING`) unless ``paged``. ``page`` and ``offset`` together are refused, naming both.
    ``since`` and ``until`` without an offset are read in :func:`local_zone` (``timezone``, else
    ``lab_zone``, else UTC). Raises :class:`InputError` naming every bad parameter.
    """
    problems: list[InputProblem] = []
    filters: dict[str, Any] = {}
    counts: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    known = ", ".join(FILTERS + PAGING) if paged else f"{', '.join(FILTERS)} (every selected session, not a page)"
    for name, value in params:
        try:
            if name in PAGING and paged:
                if name in counts:
                    raise one_problem("query", name, value, "given twice")
                counts[name] = value
            elif name not in FILTERS:
                raise one_problem("query", name, value, f"unknown parameter: use {known}")
            elif value == "":
                continue
            elif name == "status":
                repeated.setdefault(name, []).append(check_status(value, source="query", column=name))
            elif name in REPEATABLE:
                repeated.setdefault(name, []).append(_text(name, value))
            elif name in filters:
                raise one_problem("query", name, value, "given twice")
            else:
                filters[name] = _text(name, value)
        except InputError as err:
            problems.extend(err.problems)
    filters.update(repeated)
    zone = local_zone(filters.get("timezone"), lab_zone)
    if zone:  # else UTC, as find_sessions reads it
        filters["timezone"] = zone
    if "timezone" in filters:
        try:
            times.zone_info(filters["timezone"])
        except times.TimeError as err:
            problems.append(InputProblem("query", None, "timezone", filters["timezone"], str(err)))
    for name in ("since", "until"):  # read here too, so that each reason is named before any query
        if name in filters:
            try:
                zone = filters.get("timezone", "UTC")
                times.time_argument(name, filters[name], zone, bound=True, day_end=name == "until", source="query")
            except InputError as err:
                problems.extend(p for p in err.problems if p.column == name)
            except times.TimeError:
                pass  # a bad zone: named above
    limit = offset = 0
    try:
        limit = _count("limit", counts.get("limit"), default_limit, MAX_LIMIT)
        offset = _count("offset", counts.get("offset"), 0, 2**62)
        if "page" in counts:
            offset = (_count("page", counts["page"], 1, 2**40, low=1) - 1) * limit
    except InputError as err:
        problems.extend(err.problems)
    if counts.get("page") and counts.get("offset"):  # a conflict: named both
        reason = "page and offset both say where the page starts: give one of them"
        problems.extend(InputProblem("query", None, n, counts[n], reason) for n in ("page", "offset"))
    if problems:
        raise InputError(problems)
    return Selection(filters, limit, offset, counts.get("after") or None)


def _found(user: UserPipeline, selection: Selection) -> Any:
    """``find_sessions`` of the selection; its refusal (e.g. ``until`` not after ``since``) names the query's
    parameters, as :func:`parse_selection` does (:class:`InputError`)."""
    try:
        return query.find_sessions(user.session, **selection.filters)
    except InputError as err:
        raise InputError([InputProblem("query", p.row, p.column, p.value, p.reason) for p in err.problems]) from None


@dataclass(frozen=True)
class SessionPage:
    """One page of selected sessions: their rows, the number of matches, and the page's keys."""

    rows: list[dict[str, Any]]  # the page's sessions (session_frame.SessionRows.records), in the page's order
    total: int  # the number of matches, or paging.COUNT_CAP where there are more (then exact is False)
    keys: list[tuple]  # the page's keys (Session's primary-key values, session_datetime naive UTC), in its order
    exact: bool = True  # whether total is the number of matches (False: more than total)
    next_after: str | None = None  # the cursor (paging.cursor) of the next page; None on the last page
    unknown: tuple[str, ...] = ()  # query.unknown_names: subjects, projects, experimenters named that do not exist


#: The orders the list of sessions can be sorted in (a column header's link): start time or subject,
#: either way; ``-start`` (newest first) is the default. Each is an ``ORDER BY`` of the database.
SORTS = ("-start", "start", "subject", "-subject")


def parse_sort(values: Sequence[str]) -> str:
    """The order of the ``sort`` parameter's ``values`` (the last one; none: ``-start``), one of :data:`SORTS`.

    Raises :class:`InputError` naming ``sort``, each value that is not one of :data:`SORTS` and the allowed ones.
    """
    reason = f"sort must be one of {', '.join(SORTS)}"
    bad = [InputProblem("query", None, "sort", v, reason) for v in values if v not in SORTS]
    if bad:
        raise InputError(bad)
    return values[-1] if values else "-start"


def _sort_order(sort: str, names: list[str]) -> list[str]:
    """The ORDER BY of ``sort`` (one of :data:`SORTS`) over the key ``names`` (by start: the datetime variant)."""
    column = "session_datetime" if sort.lstrip("-") == "start" else names[0]
    direction = " DESC" if sort.startswith("-") else ""
    return [f"{column}{direction}", *(f"{n}{direction}" for n in names if n != column)]


def session_page(
    user: UserPipeline, selection: Selection, newest_first: bool = False, sort: str = "-start"
) -> SessionPage:
    """One page of the selected sessions as rows of :func:`~element_session.query.session_table`'s columns
    (:func:`~element_session.session_frame.session_rows`), and the total.

    In the order of ``element-session sessions`` (by primary key, as Python compares the values), or
    by start time, newest first (with ``newest_first``; ``sort``, one of :data:`SORTS`, chooses
    another order of the list). The database orders and pages
    (:func:`~element_session.web.paging.page_keys`: ``ORDER BY ... LIMIT``, along the primary key
    or the start-time index) wherever its order is that order: by start time where it is part of
    the key, by key where the key's text is ordered by code point
    (:func:`~element_session.query.database_orders_keys`); otherwise the keys of the matches are read
    and sorted here. ``selection.after`` (a cursor of an earlier page's ``next_after``) starts the
    page after that session. The matches are counted up to :data:`~.paging.COUNT_CAP` (``exact``
    is False beyond it); only the page's sessions are read in full, by their keys (one ``IN`` condition
    with the keys as parameters).

    Raises :class:`InputError` naming ``after`` for a cursor that is not a key of this list.
    """
    names = list(user.session.Session.primary_key)
    found = _found(user, selection)
    after = _after_key(user, selection, names)
    counted = query.count_sessions(found, cap=paging.COUNT_CAP)
    total, exact = min(counted, paging.COUNT_CAP), counted <= paging.COUNT_CAP
    by_key = sort.lstrip("-") == "subject"
    if not selection.limit or (exact and after is None and selection.offset >= total):
        page: list[tuple] = []
    elif newest_first and ("session_datetime" in names or (by_key and _database_orders_keys(user))):
        page = _keys(found, names, _sort_order(sort, names), selection, after)  # by start in the key, or by the key
    elif newest_first and sort == "-start" and _database_orders_keys(user):
        page = _timed_first_keys(user, found, names, selection, after)
    elif not newest_first and _database_orders_keys(user):
        page = _keys(found, names, names, selection, after)
    else:
        page = _sorted_page(found, names, selection, sort if newest_first else None, after)
    more = len(page) > selection.limit
    page = page[: selection.limit]
    rows = session_rows(None, user.session, keys=page).records()  # these keys match the selection
    if newest_first:  # the rows come in key order: put the page back in its own order
        position = {ident: i for i, ident in enumerate(page)}
        rows.sort(key=lambda row: position[_ident(row, names)])
    unknown = tuple(query.unknown_names(user.session, selection.filters, user.pipeline))
    return SessionPage(rows, total, page, exact, paging.cursor(page[-1]) if more else None, unknown)


def _after_key(user: UserPipeline, selection: Selection, names: list[str]) -> dict[str, Any] | None:
    """The key of ``selection.after`` (checked as a session key from a query is), or None."""
    if selection.after is None:
        return None
    text = paging.read_cursor(selection.after, names)
    try:
        return validate.parse_session_key(user.session, text, subject=user.pipeline.Subject())
    except InputError:
        raise one_problem("query", "after", selection.after, "not a key of a session of this list") from None


def _keys(found: Any, names: list[str], order: list[str], selection: Selection, after: dict | None) -> list[tuple]:
    """The keys of one page of ``found`` in ``order`` (and one more, if any), ordered and paged by the database."""
    return paging.page_keys(found, names, order, selection.limit, selection.offset, after)


def _timed_first_keys(
    user: UserPipeline, found: Any, names: list[str], selection: Selection, after: dict | None
) -> list[tuple]:
    """The id variant's newest first, ordered and paged by the database: the keys of one page (and one more).

    The order of :func:`_sorted_page`: sessions with a start time, newest first (ties by key, descending),
    then those without one, by key descending. Each part is one ``ORDER BY ... LIMIT`` along an index
    (``index(session_datetime)``, which ends with the key; the primary key); a page that spans both
    parts reads the second part from its start (or, where ``offset`` skips past the first part, from
    the number of timed sessions ``offset`` passes, counted up to ``offset``).
    """
    timed, untimed = found & "session_datetime IS NOT NULL", found & "session_datetime IS NULL"
    by_time = ["session_datetime DESC", *(f"{n} DESC" for n in names)]
    by_key = [f"{n} DESC" for n in names]
    offset, limit = selection.offset, selection.limit
    if after is not None:
        stored = (user.session.Session & after).to_dicts()
        if not stored:  # a session deleted meanwhile: its place is unknown (as in _sorted_page)
            return []
        when = stored[0]["session_datetime"]
        if when is None:  # after a session without a start time: in the second part
            return paging.page_keys(untimed, names, by_key, limit, offset, after)
        after = {**after, "session_datetime": when}
    first = paging.page_keys(timed, names, by_time, limit, offset, after)
    if len(first) > limit:
        return first
    passed = paging.count_after(timed, by_time, after, offset) if offset and not first else offset
    rest = paging.page_keys(untimed, names, by_key, limit - len(first), max(0, offset - passed), None)
    return first + rest


def _database_orders_keys(user: UserPipeline) -> bool:
    """:func:`~element_session.query.database_orders_keys`, asked once per connection."""
    if "orders_keys" not in user.memo:
        user.memo["orders_keys"] = query.database_orders_keys(user.session)
    return user.memo["orders_keys"]


def _sorted_page(
    found: Any, names: list[str], selection: Selection, sort: str | None, after: dict | None = None
) -> list[tuple]:
    """The keys of one page of ``found`` (and one more, if any) sorted here, where the database's order is not
    the page's: the list's ``sort`` (one of :data:`SORTS`), or None for the order of ``sessions``."""
    stamp = [] if "session_datetime" in names else ["session_datetime"]
    keys = found.proj(*stamp)
    columns = list(keys.heading.names)
    rows = [dict(zip(columns, row, strict=True)) for row in keys.cursor().fetchall()]  # plain rows: fast
    idents = [tuple(r[n] for n in names) for r in rows]
    if sort is not None and sort.lstrip("-") == "start":  # sessions without a start: last newest first, so first here
        when = [(r["session_datetime"] is not None, r["session_datetime"] or dt.datetime.min) for r in rows]
        order = sorted(range(len(rows)), key=lambda i: (*when[i], query.session_sort_key(idents[i])))
    else:
        order = sorted(range(len(rows)), key=lambda i: query.session_sort_key(idents[i]))
    if sort is not None and sort.startswith("-"):
        order.reverse()
    start = selection.offset
    if after is not None:  # the page starts after that key's place in this order
        ident = tuple(after[n] for n in names)
        start += next((p + 1 for p, i in enumerate(order) if idents[i] == ident), len(order))
    return [idents[i] for i in order[start : start + selection.limit + 1]]


def _ident(row: Mapping[str, Any], names: list[str]) -> tuple:
    """The key of a session's row as stored: its values, ``session_datetime`` naive UTC."""
    return tuple(v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v for v in (row[n] for n in names))


def session_records(
    user: UserPipeline, rows: Sequence[Mapping[str, Any]], keys: Sequence[tuple] | None = None
) -> list[dict[str, Any]]:
    """The JSON objects of the sessions of ``rows`` (:attr:`SessionPage.rows`), as ``element-session sessions
    --format json`` prints them.

    With ``keys`` (the same sessions' keys, :attr:`SessionPage.keys`), their attributes' object values are
    read too (``attribute_blobs``); without, ``attribute_blobs`` is empty.
    """
    blobs = None if keys is None else _attribute_blobs(user, keys)
    return formats.session_records(rows, user.session.Session, blobs)


def _attribute_blobs(user: UserPipeline, keys: Sequence[tuple]) -> dict[tuple, dict[str, Any]]:
    """:func:`~element_session.attribute_blobs.read_attribute_blobs` of the sessions of ``keys``.

    One statement with the keys as its parameters finds the sessions that have an object value; only
    those are read as ``read_attribute_blobs`` reads them (none: no further statement).
    """
    if not keys:
        return {}
    session = user.session.Session
    names = list(session.primary_key)
    quote = user.connection.adapter.quote_identifier
    condition, args = key_condition(user.connection, names, keys)
    sql = (
        f"SELECT DISTINCT {', '.join(quote(n) for n in names)} FROM {session.Attribute.full_table_name} "
        f"WHERE {quote('attribute_blob')} IS NOT NULL AND {condition}"
    )
    having = [dict(zip(names, found, strict=True)) for found in user.connection.query(sql, args=args).fetchall()]
    return read_attribute_blobs(session & having, user.session) if having else {}


def all_sessions(user: UserPipeline, selection: Selection) -> pd.DataFrame:
    """Every selected session (no paging), in the order of ``element-session sessions``."""
    return query.session_table(_found(user, selection), user.session)


CHOICES = 1000  # names of each kind offered in a pick-list at most


def choices(user: UserPipeline) -> dict[str, list[str]]:
    """The known subjects, projects and experimenters, for pick-lists (at most :data:`CHOICES` of each, sorted).

    Subjects only where the subject's key is one attribute. Kept a minute per connection.
    """
    kept = user.memo.get("choices")
    if kept is not None and time.monotonic() - kept[0] < RIGHTS_SECONDS:
        return kept[1]
    found: dict[str, list[str]] = {}
    subject_keys = formats.subject_attributes(user.session.Session)
    tables = {"experimenter": user.pipeline.Experimenter, "project": user.pipeline.Project}
    if len(subject_keys) == 1:
        tables["subject"] = user.pipeline.Subject
    for name, table in tables.items():
        (attribute,) = table.primary_key[:1]
        rows = table.proj().to_dicts(order_by=[attribute], limit=CHOICES)
        found[name] = [str(row[attribute]) for row in rows]
    user.memo["choices"] = (time.monotonic(), found)
    return found


@dataclass(frozen=True)
class Rights:
    """What the account may change, as the database answers (:mod:`element_session.privileges`)."""

    add: bool  # insert sessions
    edit: bool  # replace a session's note, attributes, experimenters, projects and directory
    delete: bool  # delete sessions


RIGHTS_SECONDS = 60.0  # how long an account's rights are kept before the database is asked again


def rights(user: UserPipeline) -> Rights:
    """What ``user`` may change: asked of the database, kept for :data:`RIGHTS_SECONDS` per connection."""
    kept = user.memo.get("rights")
    if kept is not None and time.monotonic() - kept[0] < RIGHTS_SECONDS:
        return kept[1]
    m, connection = user.session, user.connection
    note, attribute = m.SessionNote, m.Session.Attribute
    found = Rights(
        add=privileges.may(connection, m.Session, "INSERT"),
        edit=privileges.may_all(
            connection,
            [
                (t, p)
                for t in (note, m.SessionExperimenter, m.ProjectSession, m.SessionDirectory)
                for p in ("INSERT", "DELETE")
            ]
            + [(attribute, p) for p in ("INSERT", "DELETE", "UPDATE")],
        ),
        delete=privileges.may(connection, m.Session, "DELETE"),
    )
    user.memo["rights"] = (time.monotonic(), found)
    return found


def kept_rights(accounts: Accounts, credentials: Credentials) -> Rights | None:
    """The rights :func:`rights` last found for the account, however old, without asking the database; None if
    none are kept. For the navigation of a page that does not ask (an error page): the pages that act ask again."""
    kept = accounts.kept(credentials, "rights")
    return None if kept is None else kept[1]


# -- one session ----------------------------------------------------------------------------------
def parse_session_key(user: UserPipeline, params: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The primary key of one session from a query's text parameters (name, value pairs; ``session_datetime`` as
    ISO text with offset).

    Read by :func:`~element_session.ingest.validate.parse_session_key`; raises :class:`InputError`, also naming
    a parameter given twice or one that is no attribute of the key (:func:`_key_params`).
    """
    given = _key_params(params, list(user.session.Session.primary_key))
    return validate.parse_session_key(user.session, given, subject=user.pipeline.Subject())


def _key_params(params: Sequence[tuple[str, str]], names: Sequence[str]) -> dict[str, str]:
    """``params`` by name; :class:`InputError` naming each one given twice or that is none of ``names``."""
    found: dict[str, str] = {}
    problems = []
    for name, value in params:
        if name not in names:
            problems.append(InputProblem("query", None, name, value, f"unknown parameter: use {', '.join(names)}"))
        elif name in found:
            problems.append(InputProblem("query", None, name, value, "given twice"))
        found.setdefault(name, value)
    if problems:
        raise InputError(problems)
    return found


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

    record: dict[str, Any]  # the session's JSON object (formats.session_records), its attributes' object values too
    local_time: dt.datetime | None  # start in its own zone
    zone: str | None
    objects: dict[str, str]  # attribute name -> its object value as JSON text (blob_json: as the API gives it)
    directory: str | None  # absolute directory found under the roots
    directory_problem: str | None  # why it was not found
    downstream: dict[str, int]  # Imported/Computed table label -> rows of this session
    jobs: list[JobRecord]  # reserved and failed jobs of this session
    job_errors: list[JobError | None]  # the error of each job (None for a reservation)


def _session_row(user: UserPipeline, key: dict[str, Any]) -> dict[str, Any]:
    """The row of the session ``key`` (:func:`~element_session.session_frame.session_rows`); SessionNotFoundError."""
    m = user.session
    found = session_rows(None, m, keys=[tuple(key[n] for n in m.Session.primary_key)]).records()
    if not found:
        raise SessionNotFoundError(f"no session {formats.key_words(key)}")
    return found[0]


def session_record(user: UserPipeline, key: dict[str, Any]) -> dict[str, Any]:
    """The JSON object of the session ``key``; :class:`SessionNotFoundError` if there is none."""
    (record,) = formats.session_records([_session_row(user, key)], user.session.Session)
    return record


def session_detail(user: UserPipeline, key: dict[str, Any]) -> SessionDetail:
    """The session ``key`` with its parts, directory, downstream rows and jobs; :class:`SessionNotFoundError`."""
    row = _session_row(user, key)
    (record,) = session_records(user, [row], [_ident(row, list(user.session.Session.primary_key))])
    directory = problem = None
    if record["session_dir"] is not None:
        try:
            directory = str(paths.get_session_directory(key, user.session))
        except (SessionDirectoryError, SessionNotFoundError) as err:
            problem = str(err)
    downstream = downstream_rows(user, key)
    jobs = read_jobs(*_jobs_tables(user), restriction=key)
    errors = [job_error(user, job) if job.status == "error" else None for job in jobs]
    return SessionDetail(
        record,
        local_time(row["session_datetime_local"]),
        text_or_none(row["session_timezone"]),
        {name: blob_json.text(value) for name, value in record["attribute_blobs"].items()},
        directory,
        problem,
        downstream,
        jobs,
        errors,
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


def downstream_rows(user: UserPipeline, key: dict[str, Any]) -> dict[str, int]:
    """Rows of the session ``key`` in each Imported and Computed table that has any, by label.

    One indexed count a table (the session's key leads each such table's primary key), on the bound
    tables whose headings are already read: no dependency graph is loaded for a page view.
    """
    counts = {}
    for label, table in pipelines.tables(user.pipeline, kinds=(dj.Imported, dj.Computed)).items():
        n = len(table & key)
        if n:
            counts[label] = n
    return counts


def failed_sessions(user: UserPipeline, rows: Sequence[Mapping[str, Any]]) -> list[bool]:
    """Whether each session of ``rows`` (a page of sessions, :attr:`SessionPage.rows`) has a failed job downstream.

    One statement (a ``UNION`` of the declared jobs tables of the Imported and Computed tables), the
    page's keys as its parameters (never one query per session or table, no restriction built per
    key); a table whose jobs table is not declared yet has no failed job. The list page and a subject's page
    mark the same sessions.
    """
    names = list(user.session.Session.primary_key)
    keys = [_ident(row, names) for row in rows]
    if not keys:
        return []
    quote = user.connection.adapter.quote_identifier
    columns = ", ".join(quote(n) for n in names)
    condition, args = key_condition(user.connection, names, keys)
    where = f" WHERE {quote('status')} = 'error' AND {condition}"
    tables = _declared_jobs_tables(user)
    if not tables:
        return [False] * len(keys)
    sql = " UNION ".join(f"SELECT {columns} FROM {jobs.full_table_name}{where}" for jobs in tables)
    args = args * len(tables)
    failed = {tuple(found) for found in user.connection.query(sql, args=args).fetchall()}
    return [key in failed for key in keys]


def _declared_jobs_tables(user: UserPipeline) -> list[dj.Table]:
    """The jobs tables of the bound pipeline's Imported and Computed tables that exist, asked once a minute per
    connection (a page view declares none: a read-only account could not)."""
    kept = user.memo.get("declared_jobs_tables")
    if kept is not None and time.monotonic() - kept[0] < RIGHTS_SECONDS:
        return kept[1]
    from datajoint.jobs import Job

    found = []
    for table in pipelines.tables(user.pipeline, kinds=(dj.Imported, dj.Computed)).values():
        jobs = Job(table())
        if jobs.is_declared:
            found.append(jobs)
    user.memo["declared_jobs_tables"] = (time.monotonic(), found)
    return found


def _labels(user: UserPipeline) -> dict[str, str]:
    return {name: label for name, (label, _) in _labelled_tables(user).items()}


def affected_rows(user: UserPipeline, key: dict[str, Any]) -> dict[str, int]:
    """Rows per table (full table name) that deleting the session ``key`` would remove, the session included."""
    user.connection.dependencies.load()
    return cascade_counts(user.session.Session & key)


def page_names(user: UserPipeline) -> dict[str, str]:
    """The session module's tables (full names) as the session page names what they hold."""
    m = user.session
    return {
        m.Session.full_table_name: "The session",
        m.SessionTimezone.full_table_name: "Zone of its start time",
        m.SessionExperimenter.full_table_name: "Experimenters",
        m.ProjectSession.full_table_name: "Projects",
        m.SessionDirectory.full_table_name: "Directory",
        m.SessionNote.full_table_name: "Note",
        m.Session.Attribute.full_table_name: "Attributes",
        m.SessionStatus.full_table_name: "Status",
    }


def delete_preview(user: UserPipeline, key: dict[str, Any]) -> dict[str, int]:
    """Rows per table that deleting the session ``key`` would remove, named as the session page names them.

    The session's own parts by what they hold (``Note``, ``Attributes``, ...); a downstream table
    ``Downstream: module.Class``, as under the session page's "Downstream" heading.
    """
    labels, names = _labels(user), page_names(user)
    shown = {}
    for name, n in affected_rows(user, key).items():
        if n:
            shown[names.get(name) or f"Downstream: {labels.get(name, name)}"] = n
    return shown


@dataclass(frozen=True)
class JobError:
    """A failed job's error as people read it: the error's type, its message, and the traceback (or '')."""

    kind: str
    message: str
    traceback: str


def job_error(user: UserPipeline, job: JobRecord) -> JobError:
    """The error of a failed job (``job.error_message`` is DataJoint's ``Type: message``), its traceback read
    from the jobs table."""
    words = _error_words(job)
    stack = ""
    for row in (_jobs_tables(user)[1][job.table] & job.key).proj("error_stack").to_dicts():
        stack = row["error_stack"] if isinstance(row["error_stack"], str) else ""
    return JobError(words.kind, words.message, stack)


def delete_session(user: UserPipeline, key: dict[str, Any]) -> int:
    """Delete the session ``key`` and everything downstream of it, in one transaction; rows of Session deleted.

    Raises :class:`SessionNotFoundError` for no such session and
    :class:`~element_session.errors.SessionLockedError` for a ``qc_passed`` one (reopen it first); nothing is deleted.
    """
    m = user.session
    if not len(m.Session & key):
        raise SessionNotFoundError(f"no session {formats.key_words(key)}")
    with user.connection.transaction:
        check_editable(m, [key], source="form", change="deleted")  # a qc_passed session is reopened first
        return (m.Session & key).delete(transaction=False, prompt=False)


def update_session(
    user: UserPipeline,
    key: dict[str, Any],
    note: str,
    attributes: Mapping[str, str],
    *,
    experimenters: Sequence[str] | None = None,
    projects: Sequence[str] | None = None,
    directory: str | None = None,
) -> bool:
    """Set the session's note ('' removes it) and text attributes (those not given are removed), and, where
    given, its experimenters and projects (names; those not given are unlinked) and raw-data directory
    ('' removes it), in one transaction. None leaves that part as stored.

    Returns whether anything changed.

    Checked as ingest checks them (the columns' widths, key text rules, known experimenters and
    projects, a directory relative to a root: :func:`~element_session.paths.normalize_session_dir`);
    raises :class:`InputError` with the field of each problem
    (:class:`~element_session.errors.SessionLockedError` for a ``qc_passed`` session), and nothing is changed.
    """
    m = user.session
    problems = _edit_problems(user, note, attributes, experimenters, projects)
    if directory:
        try:
            directory = paths.normalize_session_dir(directory)
        except SessionDirectoryError as err:
            problems.append(InputProblem("form", None, "session_dir", directory, str(err)))
    if problems:
        raise InputError(problems)
    if not len(m.Session & key):
        raise SessionNotFoundError(f"no session {formats.key_words(key)}")
    with user.connection.transaction:
        check_editable(m, [key], source="form")  # a qc_passed session is reopened first
        changed = _replace_one(m.SessionNote, key, "session_note", note)
        stored = {r["attribute_name"]: r for r in (m.Session.Attribute & key).to_dicts()}
        changed = changed or stored.keys() != attributes.keys()
        for name in stored.keys() - attributes.keys():
            (m.Session.Attribute & {**key, "attribute_name": name}).delete_quick()
        for name, value in attributes.items():
            if name not in stored:
                m.Session.Attribute.insert1({**key, "attribute_name": name, "attribute_value": value})
            elif stored[name]["attribute_value"] != value:
                m.Session.Attribute.update1({**key, "attribute_name": name, "attribute_value": value})
                changed = True
        for table, names in ((m.SessionExperimenter, experimenters), (m.ProjectSession, projects)):
            if names is not None:
                changed = _relink(table, key, other_key(table, m.Session), names) or changed
        if directory is not None:
            changed = _replace_one(m.SessionDirectory, key, "session_dir", directory) or changed
    return changed


def _edit_problems(
    user: UserPipeline,
    note: str,
    attributes: Mapping[str, str],
    experimenters: Sequence[str] | None,
    projects: Sequence[str] | None,
) -> list[InputProblem]:
    """The problems of an edit's note, attributes and names (fields named as the edit form names them)."""
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
    for field, table, names in (("experimenter", user.pipeline.Experimenter, experimenters),
                                ("project", user.pipeline.Project, projects)):  # fmt: skip
        if names:
            (attribute,) = table.primary_key[:1]
            known = {str(r[attribute]) for r in (table & [{attribute: n} for n in names]).proj().to_dicts()}
            unknown = [n for n in names if n not in known]
            if unknown:
                reason = f"not known: {', '.join(unknown)} (add it to the lab's {table.__name__} table first)"
                problems.append(InputProblem("form", None, field, "; ".join(names), reason))
    return problems


def _replace_one(table: Any, key: Mapping[str, Any], column: str, value: str) -> bool:
    """Set the one ``column`` of ``table``'s row of the session ``key`` to ``value`` ('' removes the row); changed?"""
    old = [r[column] for r in (table & key).to_dicts()]
    if old == ([value] if value else []):
        return False
    (table & key).delete_quick()
    if value:
        table.insert1({**key, column: value})
    return True


def _relink(table: Any, key: Mapping[str, Any], attribute: str, names: Sequence[str]) -> bool:
    """Link the session ``key`` to exactly ``names`` in the link ``table`` (by its ``attribute``); changed?"""
    stored = {str(r[attribute]) for r in (table & key).proj().to_dicts()}
    for name in stored - set(names):
        (table & {**key, attribute: name}).delete_quick()
    for name in [n for n in names if n not in stored]:
        table.insert1({**key, attribute: name})
    return stored != set(names)


#: Why a time without an offset is refused where no zone is given and the server has no lab zone.
NEEDS_ZONE = (
    "a time without an offset needs a zone: give an offset, ?timezone=ZONE, or start the server with --timezone"
)


def local_zone(given: str | None, lab_zone: str | None) -> str | None:
    """The zone a time without an offset is read in, by one rule for the add form, the API and the filters:
    ``given`` (``?timezone=``, the form's zone field) if not empty, else the lab's zone (``serve --timezone``),
    else None: a write refuses such a time (:func:`add_sessions`), a filter reads it in UTC, as the page says.
    """
    return given or lab_zone or None


def add_sessions(
    user: UserPipeline, rows: list[dict[str, Any]], timezone: str | None = "UTC", source: str = "input"
) -> IngestReport:
    """Ingest session rows (ingest's JSON input form) as the account, in one transaction, as ``ingest`` does.

    ``timezone`` is the zone of a ``session_datetime`` without an offset (:func:`local_zone`); with None,
    such a time is refused. Raises :class:`InputError` naming each row (numbered from 1, from ``source``)
    and ``session_datetime`` with :data:`NEEDS_ZONE`, before anything is written, and what ``ingest`` raises.
    """
    if timezone is None:
        problems = [
            InputProblem(source, i, "session_datetime", row["session_datetime"], NEEDS_ZONE)
            for i, row in enumerate(rows, start=1)
            if times.needs_zone(row.get("session_datetime"))
        ]
        if problems:
            raise InputError(problems)
    return ingest(
        "sessions",
        rows,
        linking_module=user.pipeline,
        session_module=user.session,
        timezone=timezone or "UTC",  # no row needs it
        progress=False,
    )


def added_session(user: UserPipeline, row: Mapping[str, str], timezone: str) -> tuple[str, dict[str, str]]:
    """What the add form stored, in words (the start as stored, in UTC and in its zone), and its key as text parameters.

    ``row`` and ``timezone`` are what :func:`add_sessions` was given (and accepted).
    """
    m = user.session
    key = validate.parse_session_key(m, row, subject=user.pipeline.Subject(), timezone=timezone)
    stored = _session_row(user, key)  # as stored: a session already present may have a start the row did not give
    (record,) = formats.session_records([stored], m.Session)
    params = key_params(user, record)
    local, zone = local_time(stored["session_datetime_local"]), text_or_none(stored["session_timezone"]) or "UTC"
    if local is None:
        return f"{session_name(user, record)}.", params
    return f"{session_name(user, record)} (UTC), {local.isoformat()} {zone}.", params


def session_name(user: UserPipeline, record: Mapping[str, Any]) -> str:
    """A session in words, from its JSON object, as the pages and their messages name it: its subject and its
    start (``the session of M001 starting 2024-10-01T08:00:00+00:00``) or, without a start, its number
    (``the session 3 of M001``)."""
    subject = ", ".join(str(record[k]) for k in formats.subject_attributes(user.session.Session))
    if record["session_datetime"] is None:
        return f"the session {record['session_id']} of {subject}"
    return f"the session of {subject} starting {record['session_datetime']}"


def subject_sessions(user: UserPipeline, subject: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every session of one subject (its key attributes as text: a query's name, value pairs) as rows of
    ``session_table``'s columns (:func:`~element_session.session_frame.session_rows`), in the order of ``sessions``.

    Raises :class:`InputError` naming a missing or bad attribute, one given twice or unknown, and
    :class:`SessionNotFoundError` for no such subject."""
    names = formats.subject_attributes(user.session.Session)
    given = _key_params(subject, names)
    key = validate.parse_session_key(user.session, given, subject=user.pipeline.Subject(), names=names)
    if not len(user.pipeline.Subject & key):
        raise SessionNotFoundError(f"no subject {formats.key_words(key)}")
    sessions = user.session.Session & key
    names = list(user.session.Session.primary_key)
    keys = paging.page_keys(sessions, names, names, AGGREGATED_KEYS)  # along the primary key: few, as a page's
    if len(keys) <= AGGREGATED_KEYS:  # read by keys, as a page is (one statement on either server)
        return session_rows(None, user.session, keys=keys).records()
    return session_rows(sessions, user.session).records()


# -- jobs -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobsView:
    """The jobs page: reserved and failed keys of the downstream tables, and what the account may clear."""

    tables: list[str]  # every Imported/Computed table's label
    jobs: list[JobRecord]
    errors: list[JobError | None]  # each job's error (type first), None for a reservation
    clearable: set[str]  # labels of the tables whose failed keys the account may clear


def jobs_view(user: UserPipeline, table: str | None) -> JobsView:
    """The reserved and failed keys of ``table`` (a label) or of every downstream table.

    A failed key's error is split into its type and message; its traceback is not read here (the
    session page shows it). Raises :class:`~element_session.errors.PopulateError` for an unknown table.
    """
    every, jobs_tables = _jobs_tables(user)
    selected = select_tables(user.pipeline, [table] if table else None, among=every)
    jobs = read_jobs(selected, jobs_tables)
    errors = [_error_words(job) if job.status == "error" else None for job in jobs]
    kept = user.memo.get("clearable")
    if kept is None or time.monotonic() - kept[0] >= RIGHTS_SECONDS:
        may = {label: privileges.may(user.connection, t, "DELETE") for label, t in jobs_tables.items()}
        kept = user.memo["clearable"] = (time.monotonic(), may)
    return JobsView(list(every), jobs, errors, {label for label in selected if kept[1][label]})


def _jobs_tables(user: UserPipeline) -> tuple[dict[str, type[dj.Table]], dict[str, dj.Table]]:
    """The pipeline's Imported and Computed tables by label (upstream first) and their jobs tables.

    Read (and the jobs tables declared where missing) once per connection: the served pipeline's
    tables do not change while it is served.
    """
    if "jobs_tables" not in user.memo:
        tables = autopopulated(user.pipeline)
        user.memo["jobs_tables"] = (tables, {label: declare_jobs_table(t) for label, t in tables.items()})
    return user.memo["jobs_tables"]


def _error_words(job: JobRecord) -> JobError:
    kind, sep, message = job.error_message.partition(": ")
    if not sep or " " in kind:
        kind, message = "Error", job.error_message
    return JobError(kind, message, "")


def clear_errors(user: UserPipeline, table: str, key: Mapping[str, str] | None) -> int:
    """Clear the failed key ``key`` (text values, times in UTC) of ``table``, or every failed key of it; how many.

    Raises :class:`~element_session.errors.PopulateError` for an unknown table and
    :class:`~element_session.errors.InputError` for a key it cannot read.
    """
    return len(clear_jobs(user.pipeline, errors=True, stale=False, tables=[table], restriction=dict(key or {}) or None))
