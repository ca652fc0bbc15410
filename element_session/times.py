"""Times from people: one reader for every entry point, and the zone a session was recorded in.

:func:`read_time` is the one way a time given by a person (ingest, the ``find_sessions`` window,
populate/jobs restrictions, the NWB export's lookup, and their commands) becomes an instant; the
rules are in ``docs/times.md``. In short: an aware datetime is that instant; a naive datetime, or
ISO 8601 text without an offset, is local time in the caller's zone; text may carry an offset
(``+01:00``, ``Z``) and/or an RFC 9557 zone suffix (``[Europe/Berlin]``); a local time that a
daylight-saving change skips or repeats is an error. Where a date alone is allowed (window ends),
it means its midnight. :func:`parse_session_time` adds the rules of a stored session time (whole
seconds, years 1000-9999) on top.

Zones are kept as text: an IANA name (``Europe/Berlin``), ``UTC``, or a fixed offset (``+02:00``).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import TimeError, one_problem

UTC = dt.UTC
#: What a person may give as a time: see :func:`read_time`.
TimeInput = dt.datetime | dt.date | str
_ZONE_SUFFIX = re.compile(r"^(?P<stamp>[^\[\]]+)\[(?P<zone>[^\[\]]+)\]$")
_ISO = re.compile(r"(?a)^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(?P<offset>Z|[+-]\d{2}:?\d{2})?$")
_DATE = re.compile(r"(?a)^\d{4}-\d{2}-\d{2}$")
_OFFSET = re.compile(r"(?a)([+-])(\d{2}):(\d{2})")
_UTC_NAMES = ("UTC", "ETC/UTC", "Z")
_MINUTE, _NO_OFFSET = dt.timedelta(minutes=1), dt.timedelta(0)


class Instant(NamedTuple):
    """A time read from a person: the instant, and the zone it was given in."""

    utc: dt.datetime  # the instant as a naive UTC datetime (the stored form), microseconds kept
    zone: str  # the zone it was written in: 'UTC', an IANA name, or a fixed offset '+HH:MM'


def zone_info(name: str) -> dt.tzinfo:
    """The tzinfo of a zone text: an IANA name, ``UTC`` or a fixed offset ``+HH:MM`` (``-23:59`` to ``+23:59``).

    Raises :class:`TimeError` for an unknown name or an offset out of range. IANA zones come from
    ``zoneinfo``'s own cache, so a lookup per value costs little. A zone that is not text (a NaN
    from an empty spreadsheet cell, bytes, a number) is a :class:`TimeError` too.
    """
    if not isinstance(name, str):
        raise TimeError(f"a time zone is text (an IANA name or an offset such as '+02:00'), not {type(name).__name__}")
    match = _OFFSET.fullmatch(name) if name[:1] in ("+", "-") else None
    if match:
        hours, minutes = int(match[2]), int(match[3])
        if hours > 23 or minutes > 59:
            raise TimeError(f"offset {name!r} out of range: hours 00-23 and minutes 00-59")
        sign = 1 if match[1] == "+" else -1
        return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    if len(name) > 64:  # the width of SessionTimezone.session_timezone; no IANA name comes close
        raise TimeError(f"time zone name of {len(name)} characters: use an IANA name or an offset such as '+02:00'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name the zone files' paths cannot hold
        raise TimeError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin' or an offset such as '+02:00'"
        ) from None


def offset_text(offset: dt.timedelta) -> str:
    """``UTC`` for a zero offset, else ``+HH:MM`` (whole minutes only; :class:`TimeError` otherwise)."""
    if not offset:
        return "UTC"
    if offset % _MINUTE:
        raise TimeError(f"offset {offset} is not a whole number of minutes")
    sign = "-" if offset < _NO_OFFSET else "+"
    minutes = abs(offset) // _MINUTE
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def localize(local: dt.datetime, zone: str) -> dt.datetime:
    """``local`` (naive) as an aware time in ``zone``; :class:`TimeError` if it does not exist or is ambiguous."""
    tz = zone_info(zone)
    first, second = local.replace(tzinfo=tz, fold=0), local.replace(tzinfo=tz, fold=1)
    if first.utcoffset() != second.utcoffset():
        back = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        if back != local:
            raise TimeError(f"{local.isoformat()} does not exist in {zone} (skipped by a daylight-saving change)")
        raise TimeError(
            f"{local.isoformat()} is ambiguous in {zone} (repeated by a daylight-saving change): add its UTC offset"
        )
    return first


def read_time(value: TimeInput, timezone: str = "UTC", *, dates: bool = False, day_end: bool = False) -> Instant:
    """The instant a person means by ``value``, and the zone it was given in.

    ``value`` is one of:

    - an aware ``datetime``: that instant, as Python defines it (``fold`` picks one of a repeated
      hour); a wall time that a daylight-saving change skips is an error;
    - a naive ``datetime``: local time in ``timezone``;
    - a ``date`` or date text (``2024-03-10``), only if ``dates``: its midnight in ``timezone``
      (with ``day_end``, the midnight that ends it: the next day's, so that an exclusive ``until``
      date includes that whole day);
    - ISO 8601 text, ``T`` or a space between date and time, fractions of a second allowed:
      ``...+01:00`` or ``...Z`` is that instant; ``...[Europe/Berlin]`` (RFC 9557) is local time in
      that zone; ``...+01:00[Europe/Berlin]`` is both, and the offset must be the zone's at that time;
      without either it is local time in ``timezone``.

    ``timezone`` is an IANA name, ``UTC`` or a fixed offset (``+02:00``); it is checked even where the
    value does not need it. A local time that does not exist or exists twice in its zone is an error.

    Returns an :class:`Instant`: ``utc`` a naive UTC datetime (microseconds kept), ``zone`` the zone
    text (``UTC`` for ``Z``, ``+00:00`` and ``Etc/UTC``). Raises :class:`TimeError` for anything else,
    with the reason (not the value: callers name it).
    """
    try:
        zone_info(timezone)
        if isinstance(value, dt.date) and value != value:  # pandas.NaT: a datetime equal to nothing
            raise TimeError("a missing time (NaT, as pandas gives for an empty cell): give a time, or leave it out")
        if isinstance(value, str):
            aware, zone = _read_text(value, timezone, dates, day_end)
        elif isinstance(value, dt.datetime):
            aware, zone = _read_datetime(value, timezone)
        elif isinstance(value, dt.date):
            if not dates:
                raise TimeError("a date without a time of day: give a date and time")
            aware, zone = localize(_midnight(value, day_end), timezone), timezone
        else:
            raise TimeError(f"expected a datetime or ISO 8601 text, not {type(value).__name__}")
        utc = aware.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # the instant in UTC falls outside the years 1-9999 that datetime holds
        raise TimeError("outside the years 1-9999 once converted to UTC") from None
    return Instant(utc, "UTC" if zone.upper() in _UTC_NAMES else zone)


def needs_zone(value: object) -> bool:
    """Whether :func:`read_time` reads ``value`` in the caller's zone: text (or a naive datetime) without
    an offset or a zone suffix, a date alone included. False for an aware datetime, text with an offset
    or ``[zone]``, and anything :func:`read_time` cannot read (it says why)."""
    if isinstance(value, dt.datetime):
        return value.utcoffset() is None
    if not isinstance(value, str):
        return isinstance(value, dt.date)
    text = value.strip()
    if _ZONE_SUFFIX.match(text):
        return False
    iso = _ISO.match(text)
    return bool(_DATE.match(text)) or (iso is not None and not iso["offset"])


def _midnight(day: dt.date, day_end: bool) -> dt.datetime:
    """The midnight that starts ``day``, or with ``day_end`` the one that ends it (the next day's)."""
    start = dt.datetime(day.year, day.month, day.day)
    return start + dt.timedelta(days=1) if day_end else start


def _read_text(text: str, timezone: str, dates: bool, day_end: bool = False) -> tuple[dt.datetime, str]:
    """An aware datetime and its zone text, from ISO 8601 text (a date alone if ``dates``)."""
    text = text.strip()
    zone = None
    match = _ZONE_SUFFIX.match(text)
    if match:
        text, zone = match["stamp"], match["zone"]
        zone_info(zone)  # an unknown zone is an error even where the offset decides the instant
    if dates and _DATE.match(text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError as err:
            raise TimeError(f"impossible date: {err}") from None
        return localize(_midnight(day, day_end), zone or timezone), zone or timezone
    iso = _ISO.match(text)
    if not iso:
        example = "2024-03-10T14:30:00+01:00" + (", or a date such as 2024-03-10" if dates else "")
        raise TimeError(f"not an ISO 8601 date and time (e.g. {example})")
    written = iso["offset"]
    if written and written != "Z":  # checked as a zone: fromisoformat reads '+05:60' as +06:00 and '+24:00' with a repr
        zone_info(written if ":" in written else f"{written[:3]}:{written[3:]}")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as err:
        raise TimeError(f"impossible date or time: {err}") from None
    if parsed.tzinfo is None:
        return localize(parsed, zone or timezone), zone or timezone
    offset = parsed.utcoffset()
    assert offset is not None  # an aware datetime from fromisoformat has a fixed offset
    if zone is None:
        return parsed, offset_text(offset)
    in_zone = parsed.astimezone(zone_info(zone))
    if in_zone.replace(tzinfo=None) != parsed.replace(tzinfo=None) or in_zone.utcoffset() != offset:
        raise TimeError(f"offset {offset_text(offset)} is not the offset of {zone} at that time")
    return parsed, zone


def _read_datetime(value: dt.datetime, timezone: str) -> tuple[dt.datetime, str]:
    """An aware datetime and its zone text, from a datetime (naive: local time in ``timezone``)."""
    offset = value.utcoffset()
    if offset is None:
        return localize(value, timezone), timezone
    tz = value.tzinfo
    if value.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != value.replace(tzinfo=None):
        wall = value.replace(tzinfo=None).isoformat()
        raise TimeError(f"{wall} does not exist in {tz} (skipped by a daylight-saving change)")
    return value, tz.key if isinstance(tz, ZoneInfo) else offset_text(offset)


def parse_session_time(value: TimeInput, default_zone: str = "UTC") -> Instant:
    """A session start time as stored: :func:`read_time` (no date alone) plus the column's rules.

    The column holds whole seconds, in the years 1000-9999 (in UTC and in the local zone): a
    fraction or another year is a :class:`TimeError`, never a rounding. Returns the
    :class:`Instant` (``utc`` naive, as stored; ``zone`` for ``SessionTimezone``).
    """
    instant = read_time(value, default_zone)
    if instant.utc.microsecond:
        raise TimeError("has a fraction of a second; the session time is stored in whole seconds")
    year = instant.utc.year
    if year in (1000, 9999):  # an offset (under a day) moves the local year by one at most: only here can it leave
        try:
            year = local_time(instant.utc, instant.zone).year
        except OverflowError:
            year = 0
    if not 1000 <= year <= 9999 or not 1000 <= instant.utc.year <= 9999:
        raise TimeError("year outside 1000-9999")
    return instant


def time_argument(
    name: str,
    value: TimeInput,
    timezone: str = "UTC",
    *,
    bound: bool = False,
    day_end: bool = False,
    source: str = "arguments",
) -> dt.datetime:
    """The stored (naive UTC) form of the time ``name`` given to a lookup, a restriction or a window.

    With ``bound`` (a window end), the value is read by :func:`read_time` with dates allowed and
    fractions kept (``day_end``: a date alone means the midnight that ends it, for ``until``);
    otherwise it must be a storable session time (:func:`parse_session_time`).
    Raises :class:`~element_session.errors.InputError` naming ``source``, ``name``, the value and why.
    """
    try:
        if bound:
            return read_time(value, timezone, dates=True, day_end=day_end).utc
        return parse_session_time(value, timezone).utc
    except TimeError as err:
        raise one_problem(source, name, value, str(err)) from None


def zone_argument(timezone: str, source: str = "arguments") -> str:
    """``timezone``, checked: :class:`~element_session.errors.InputError` naming it if it is no zone.

    Every entry point that takes a zone checks it, whether or not a value needs it.
    """
    try:
        zone_info(timezone)
    except TimeError as err:
        raise one_problem(source, "timezone", timezone, str(err)) from None
    return timezone


def format_time(utc: dt.datetime, zone: str | None = None) -> str:
    """A time as every output shows it (the one rule, docs/times.md): ISO 8601 with its offset, never naive.

    ``utc`` is a stored time (naive, UTC; an aware one is converted); it is shown in ``zone``: a
    session's start in its own zone, with the IANA name where there is one
    (``2024-03-10T14:30:00+01:00[Europe/Berlin]``), every other time in UTC, marked ``+00:00``
    (``2026-12-06T23:44:40.567642+00:00``). Fractions of a second are shown where the value has
    them. Parsing the text with :func:`parse_session_time` (or :func:`read_time`) gives back
    ``(utc, zone)``.
    """
    zone = zone or "UTC"
    if utc.tzinfo is not None:
        utc = utc.astimezone(UTC).replace(tzinfo=None)
    local = utc.replace(tzinfo=UTC).astimezone(zone_info(zone))
    text = local.isoformat()
    return text if zone == "UTC" or zone[0] in "+-" else f"{text}[{zone}]"


#: The ingest text of a stored session time: :func:`format_time` (its older name).
format_session_time = format_time


def local_time(utc: dt.datetime, zone: str | None) -> dt.datetime:
    """The session's start as an aware time in its own zone (UTC where no zone was recorded)."""
    return utc.replace(tzinfo=UTC).astimezone(zone_info(zone or "UTC"))
