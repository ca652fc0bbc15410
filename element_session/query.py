"""Finding sessions, and a table of sessions as a pandas DataFrame.

:func:`find_sessions` returns a DataJoint query expression of ``Session`` that composes with
ordinary joins and restrictions. Names and values from the caller reach SQL only through DataJoint
dict restrictions; the time window's ends are parsed into datetimes first, and only their
digits, formatted here, appear in the condition.

The time window is half-open: ``since <= session_datetime < until``, compared at full precision.
Its ends are read as every time from a person is (``docs/times.md``): a date means its midnight
(``since``) or the whole day (``until``: the midnight that ends it), a
datetime or ISO text without an offset is read in ``timezone`` (default UTC), one with an offset or
a ``[Zone]`` is converted. Sessions without a start time (possible in the id variant) never match a window.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import datajoint as dj
import pandas as pd

from . import times
from .database import database_errors
from .errors import PermissionDeniedError, SessionNotFoundError, one_problem
from .formats import key_text, subject_attributes
from .ingest.keys import column_collations
from .ingest.validate import parse_session_key
from .lookups import attribute_value, check_lookups
from .pipeline import linking_module_of, session_module_of
from .search import search_condition
from .session_frame import key_frame, session_frame
from .status import DEFAULT_STATUS, check_status, in_status
from .tables import other_key
from .times import TimeInput


def _window(since: TimeInput | None, until: TimeInput | None, timezone: str, column_type: str) -> list[str]:
    """The SQL conditions of the half-open window ``since <= session_datetime < until``, exact.

    Raises :class:`~element_session.errors.InputError` naming ``until`` where ``until`` is not after
    ``since`` (a window that selects nothing by its own ends).

    Each end is read by :func:`times.time_argument` (dates allowed, fractions kept), then written
    with no more fractional digits than the column holds (``column_type``: MySQL's ``datetime``
    holds whole seconds, PostgreSQL's ``timestamp`` microseconds), so that no server rounds or cuts
    the literal on its way in. For a column value ``s`` and an end ``b`` cut to ``c < b``,
    ``s >= b`` is ``s > c`` and ``s < b`` is ``s <= c``: the same sessions as at full precision
    (``until=10:00:00.5`` includes 10:00:00, ``since=09:59:59.5`` excludes 09:59:59). Only digits
    formatted here from datetimes reach the SQL, never the caller's text.
    """
    match = re.search(r"\((\d)\)", column_type)
    digits = int(match[1]) if match else 6 if column_type.startswith("timestamp") else 0
    step = 10 ** (6 - digits)
    times.zone_argument(timezone)
    conditions, ends = [], {}
    for name, value, exact, cut in (("since", since, ">=", ">"), ("until", until, "<", "<=")):
        if value is None:
            continue
        end = ends[name] = times.time_argument(name, value, timezone, bound=True, day_end=name == "until")
        kept = end.replace(microsecond=end.microsecond - end.microsecond % step)
        literal = kept.isoformat(sep=" ", timespec="microseconds" if digits else "seconds")
        conditions.append(f"session_datetime {exact if kept == end else cut} '{literal}'")
    if len(ends) == 2 and ends["since"] >= ends["until"]:  # a window backwards selects nothing: say so
        reason = f"until is not after since ({since} to {until}): no start time is in such a window"
        raise one_problem("arguments", "until", until, reason)
    return conditions


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple | set | frozenset) else [value]


def find_sessions(
    session_module: ModuleType,
    *,
    subject: str | Iterable[str] | None = None,
    project: str | None = None,
    experimenter: str | None = None,
    since: TimeInput | None = None,
    until: TimeInput | None = None,
    attribute: str | None = None,
    value: str | None = None,
    timezone: str = "UTC",
    status: str | Iterable[str] | None = None,
    search: str | None = None,
) -> Any:
    """Sessions of ``session_module`` restricted by every criterion given.

    ``subject`` is one subject or several (any of them); ``project`` and ``experimenter`` restrict to
    sessions linked to them; ``since``/``until`` bound the start time (``since`` included, ``until``
    excluded, at full precision: a datetime, a date or ISO 8601 text, read in ``timezone`` where it
    has no offset; see ``docs/times.md``); ``attribute`` keeps sessions having that attribute, with
    ``value`` if given. A date alone as ``until`` includes that whole day (``until="2024-04-03"``
    keeps sessions of 3 April); a time as ``until`` stays exclusive. ``status`` keeps sessions in that
    state or any of several (a session without a status row is ``acquired``,
    :func:`element_session.status.in_status`). ``search`` keeps sessions whose subject, note, an
    experimenter, a project or an attribute's text value contains that text, letter case ignored
    (``%``, ``_`` and ``\\`` match themselves: :mod:`element_session.search`).

    A subject, project or experimenter that does not exist selects nothing: :func:`unknown_names` says
    which.

    None means "not given". A value that cannot be looked up (:mod:`element_session.lookups`: a
    float NaN or another missing value of pandas, a list where one value is expected, text with a
    NUL character) is refused before any SQL.

    Raises :class:`~element_session.errors.InputError` (source ``arguments``) for a subject, time,
    zone or value that cannot be used, naming the argument and the value (e.g. a NaN project, a
    number for a text subject, a window end that is not a time, or a local time skipped by a DST change).
    """
    m = session_module
    lookups = {"subject": subject, "project": project, "experimenter": experimenter, "attribute": attribute}
    check_lookups("arguments", lookups | {"value": value, "search": search}, several=frozenset({"subject"}))
    conditions: list[Any] = []  # applied at once: each `&` would copy the expression
    subject_attrs = subject_attributes(m.Session)
    if subject is not None:
        subjects = _as_list(subject)
        if len(subject_attrs) != 1 and not all(isinstance(s, dict) for s in subjects):
            raise one_problem("arguments", "subject", subject, f"give subjects as dicts of {subject_attrs}")
        for given in subjects:  # a dict of other attributes would restrict nothing: every session
            if isinstance(given, dict) and (not given or set(given) - set(subject_attrs)):
                raise one_problem("arguments", "subject", given, f"give subjects as dicts of {subject_attrs}")
        keys = [s if isinstance(s, dict) else {subject_attrs[0]: s} for s in subjects]
        heading = m.Session.heading  # each value as its attribute holds it (lookups.attribute_value)
        keys = [{k: attribute_value("subject", v, heading[k], "arguments") for k, v in key.items()} for key in keys]
        conditions.append(keys[0] if len(keys) == 1 else keys)
    parts = {"project": (project, m.ProjectSession), "experimenter": (experimenter, m.SessionExperimenter)}
    for name, (given, part) in parts.items():
        if given is not None:
            column = other_key(part, m.Session)
            conditions.append(part & {column: attribute_value(name, given, part.heading[column], "arguments")})
    window = _window(since, until, timezone, m.Session.heading["session_datetime"].type)
    if window:
        conditions.append(" AND ".join(window))
    if attribute is not None:
        condition = {"attribute_name": attribute} | ({} if value is None else {"attribute_value": value})
        conditions.append(m.Session.Attribute & condition)
    elif value is not None:
        raise one_problem("arguments", "value", value, "an attribute value needs its attribute name")
    if status is not None:
        states = [check_status(state) for state in _as_list(status)]  # named as this function's argument
        if not states:  # in_status() would name its own argument
            raise one_problem("arguments", "status", status, "give one or more states, or None for any")
        conditions.append(in_status(*states, session_module=m))
    if search is not None:
        if not isinstance(search, str):
            raise one_problem("arguments", "search", search, "give the text to search for")
        conditions.append(search_condition(m, search))  # a list: any of the places searched
    return m.Session() & dj.AndList(conditions) if conditions else m.Session()


def unknown_names(
    session_module: ModuleType, filters: Mapping[str, Any], linking_module: ModuleType | None = None
) -> list[str]:
    """Why a selection names nothing: each subject, project or experimenter in it that does not exist.

    ``filters`` are :func:`find_sessions`' keyword arguments (only ``subject``, ``project`` and
    ``experimenter`` are read), so that the command line (on standard error), the web pages (on the
    page) and the JSON API (its ``warnings`` field) say "no such subject" from this one check instead
    of an empty list without a word. Each value is looked up in ``linking_module``'s ``Subject``,
    ``Project`` or ``Experimenter`` (default: the module ``session_module`` was activated with; one
    indexed query per value named); none is checked where there is no linking module.

    Returns
    -------
    list of str
        One sentence per name that does not exist, e.g. ``subject 'M9': no such subject exists``;
        empty when every name exists.
    """
    subject, project, experimenter = (filters.get(name) for name in ("subject", "project", "experimenter"))
    linking = linking_module or (linking_module_of(session_module) if hasattr(session_module, "schema") else None)
    if linking is None:
        return []
    found: list[str] = []
    named = (
        ("subject", "Subject", None if subject is None else _as_list(subject)),
        ("project", "Project", None if project is None else [project]),
        ("experimenter", "Experimenter", None if experimenter is None else [experimenter]),
    )
    for what, table_name, values in named:
        table = getattr(linking, table_name, None)
        if not values or table is None:
            continue
        (attribute, *more) = table.primary_key
        for value in values:
            restriction = value if isinstance(value, dict) else {attribute: value}
            if not isinstance(value, dict) and more:
                continue  # one text cannot name a row of a table with a key of several attributes
            try:
                with database_errors(table.connection):
                    exists = len(table & restriction) > 0
            except PermissionDeniedError:
                continue  # an account that may not read the table: nothing to say about its names
            if not exists:
                shown = key_text(value) if isinstance(value, dict) else f"'{value}'"
                found.append(f"{what} {shown}: no such {what} exists")
    return found


def session_key_of_subject(
    session_module: ModuleType,
    subject: str,
    *,
    session_datetime: TimeInput | None = None,
    session_id: int | str | None = None,
    timezone: str = "UTC",
) -> dict[str, Any]:
    """The key of the one session of ``subject`` with this start time or this session number.

    Either variant can be searched by either attribute. ``session_datetime`` is a datetime or ISO
    8601 text, read as every time from a person is (``docs/times.md``): in ``timezone`` where it has
    no offset (a naive datetime too); it must be a storable session time (whole seconds).
    ``session_id`` as text must be a whole number. (Was ``export.nwb.find_session_key``, still
    importable there; :func:`element_session.paths.find_session_key` finds a session from a path.)

    Raises
    ------
    InputError
        For an argument it cannot use, naming it and its value (a NaN subject too:
        :mod:`element_session.lookups`).
    SessionNotFoundError
        When no session matches.
    """
    session = session_module.Session
    check_lookups("arguments", {"subject": subject}, required=True)
    if (session_datetime is None) == (session_id is None):
        raise one_problem("arguments", "session_datetime", session_datetime, "give either a start time or a session id")
    subject_attrs = subject_attributes(session)
    if len(subject_attrs) != 1:
        raise one_problem("arguments", "subject", subject, f"the subject key has several attributes {subject_attrs}")
    given = {subject_attrs[0]: subject, "session_datetime": session_datetime, "session_id": session_id}
    restriction = parse_session_key(session_module, given, names=subject_attrs, source="arguments")
    times.zone_argument(timezone)
    when = ["session_id" if session_datetime is None else "session_datetime"]
    restriction |= parse_session_key(session_module, given, names=when, source="arguments", timezone=timezone)
    keys = (session & restriction).keys()
    if not keys:
        hint = _zone_hint(session_datetime, timezone)
        raise SessionNotFoundError(f"no session with {key_text(restriction)} in schema {session.database}{hint}")
    if len(keys) > 1:
        matches = "; ".join(map(key_text, keys))
        raise one_problem("arguments", "session", restriction, f"{len(keys)} sessions match: {matches}")
    return keys[0]


def _zone_hint(session_datetime: TimeInput | None, timezone: str) -> str:
    """A hint for a start time that was read in ``timezone`` because it named no zone ('' otherwise)."""
    if session_datetime is None:
        return ""
    other = "+01:00" if timezone != "+01:00" else "+02:00"
    if times.read_time(session_datetime, timezone).utc == times.read_time(session_datetime, other).utc:
        return ""  # the time carries its own offset or zone
    return (
        f" (the start time names no zone and was read in {timezone}: for a local time give its zone, "
        "e.g. --timezone Europe/Berlin, timezone=..., or ...[Europe/Berlin] after the time)"
    )


def count_sessions(sessions: Any, cap: int | None = None) -> int:
    """The number of sessions of ``sessions``, a :func:`find_sessions` result (``Session`` and restrictions).

    One ``SELECT count(*)`` over the restricted table: ``len()`` of a DataJoint expression with a
    multi-column key counts ``DISTINCT`` keys through a derived table, which at 10^6 sessions costs
    seconds; the rows of one table restricted are distinct already. With ``cap``, at most ``cap`` + 1
    rows are read (``SELECT count(*) FROM (SELECT 1 ... LIMIT cap + 1)``): a result above ``cap``
    means "more than ``cap``", at the cost of ``cap`` index entries whatever the table's size.
    """
    selected = f"{sessions.from_clause()}{sessions.where_clause()}"
    if cap is None:
        sql = f"SELECT count(*) FROM {selected}"
    else:
        sql = f"SELECT count(*) FROM (SELECT 1 AS one FROM {selected} LIMIT {int(cap) + 1}) AS counted"
    return int(sessions.connection.query(sql).fetchone()[0])


#: PostgreSQL collations that order text by code point, as Python compares ``str``.
_CODE_POINT_COLLATIONS = {"c", "posix", "c.utf-8", "c.utf8", "ucs_basic", "pg_c_utf8"}


def database_orders_keys(session_module: ModuleType) -> bool:
    """Whether the database's ``ORDER BY`` of ``Session``'s primary key is :func:`session_sort_key`'s order.

    True when every text column of the key is ordered by code point: a binary collation on
    MySQL/MariaDB (``utf8mb4_bin``, the private servers' default), ``C``/``C.UTF-8``/``ucs_basic``
    on PostgreSQL. Then a page of sessions in key order is one indexed ``ORDER BY ... LIMIT`` of the
    server; otherwise the keys must be sorted here. (A binary PAD SPACE collation orders a value
    ending in a character below the space before the same value without it; key values never end
    in a space or a control character.)
    """
    session = session_module.Session
    names = list(session.primary_key)
    connection = session.connection
    if connection.adapter.backend != "postgresql":
        found = column_collations(session(), names)
        return all(c is None or c.binary for c in found.values())
    rows = connection.query(
        "SELECT COALESCE(NULLIF(c.collname, 'default'), (SELECT datcollate FROM pg_database "
        "WHERE datname = current_database())) FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY(%s)",
        args=(session.full_table_name, names),
    ).fetchall()
    return all(str(collation).lower() in _CODE_POINT_COLLATIONS for (collation,) in rows)


def session_sort_key(key: tuple) -> tuple:
    """The order of sessions in :func:`session_table`: by primary-key values, a missing value last."""
    return tuple((v is None, v) for v in key)


def session_table(sessions: Any, session_module: ModuleType | None = None) -> pd.DataFrame:
    """One row per session, sorted by key, read with a fixed number of SQL statements whatever the number of sessions.

    ``sessions`` is a session module (all its sessions) or a query expression of ``Session``, such as
    :func:`find_sessions` returns (then ``session_module`` is the module whose tables it restricts; by
    default found from the query).

    Columns, in this order, and their dtypes:

    - the subject key attributes: pandas ``string`` for text, ``Int64`` for integers;
    - ``session_datetime``: ``datetime64[us, UTC]`` (microseconds, which hold the years 1000-9999;
      ``NaT`` where the id variant has no start time);
    - ``session_id``: nullable ``Int64`` (``<NA>`` where not given);
    - ``session_timezone``: ``string``, the zone the session was recorded in (IANA name such as
      ``Europe/Berlin``, a fixed offset such as ``+02:00``, or ``UTC``);
    - ``session_datetime_local``: ``string``, the start in that zone as ISO 8601 text with its offset
      (``2024-03-11T09:00:00+01:00``; one dtype cannot hold a different zone per row), ``<NA>``
      where there is no start time;
    - ``experimenters``, ``projects``: ``object``, each cell a sorted ``list`` of names (``[]`` if none);
    - ``session_dir``, ``session_note``: ``string``, ``<NA>`` where not stored;
    - ``status``: ``string``, the session's status (``acquired`` where none is stored; ``docs/status.md``);
    - ``attr.<name>``, one column per attribute name present, sorted: ``string``, the attribute's
      text value (``attribute_value``), ``<NA>`` where the session lacks the attribute. The
      attribute's object value is not in the table: fetch it with
      ``(session_module.Session.Attribute & key).to_dicts()`` (field ``attribute_blob``).

    ``df.session_datetime.dt.month``, sorting, grouping by month and plotting work without
    conversion.

    Raises :class:`~element_session.errors.UsageError` for a query expression whose module cannot be
    found (pass ``session_module``), and DataJoint's errors for an expression that is not of ``Session``.
    """
    if isinstance(sessions, ModuleType):
        session_module, sessions = sessions, sessions.Session()
    return session_frame(sessions, session_module or session_module_of(sessions))


def status_table(sessions: Any, session_module: ModuleType | None = None) -> pd.DataFrame:
    """The status of each session of ``sessions`` (a session module or a query of ``Session``), sorted by key.

    Columns: the session's key (the dtypes of :func:`session_table`), ``status`` (``string``;
    ``acquired`` where none is stored), ``set_time`` (``datetime64[us, UTC]``, ``NaT`` where none is
    stored), ``set_by`` (the database account) and ``reason`` (``string``, ``<NA>`` where none is stored).
    """
    if isinstance(sessions, ModuleType):
        session_module, sessions = sessions, sessions.Session()
    m = session_module or session_module_of(sessions)
    primary = list(m.Session.primary_key)
    keys = sessions.proj()  # the key alone: Session's secondary attributes have no lineage to join on
    rows = keys.to_dicts()
    stored = {tuple(r[k] for k in primary): r for r in (m.SessionStatus & keys).to_dicts()}
    found = [stored.get(tuple(row[k] for k in primary), {}) for row in rows]
    frame = key_frame(rows, m)
    frame["status"] = pd.Series([r.get("session_status", DEFAULT_STATUS) for r in found], dtype=pd.StringDtype())
    times_set = pd.Series([r.get("status_set_time") for r in found], dtype="datetime64[us]")
    frame["set_time"] = times_set.dt.tz_localize("UTC")
    for column, name in (("set_by", "status_set_by"), ("reason", "status_reason")):
        frame[column] = pd.Series([r.get(name) for r in found], dtype=pd.StringDtype())
    return frame.sort_values(primary, na_position="last", kind="stable", ignore_index=True)
