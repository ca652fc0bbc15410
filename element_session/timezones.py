"""Session start times: ISO 8601 text in, a UTC instant and the zone it was recorded in out.

Zones are kept as text: an IANA name (``Europe/Berlin``), ``UTC``, or a fixed offset (``+02:00``).
Text forms accepted (``T`` or a space between date and time):

- ``2024-03-10T14:30:00+01:00`` or ``...Z``: an instant with its offset; the offset is the zone;
- ``2024-03-10T14:30:00[Europe/Berlin]`` (RFC 9557): local time in that zone;
- ``2024-03-10T14:30:00+01:00[Europe/Berlin]``: both; the offset must be the zone's at that time;
- ``2024-03-10T14:30:00``: local time in the caller's default zone.

A local time that does not exist (skipped by a DST change) or exists twice (repeated by one) is an
error, as is a fraction of a second (the column holds whole seconds) or a year outside 1000-9999.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import TimeError

UTC = dt.UTC
_ZONE_SUFFIX = re.compile(r"^(?P<stamp>[^\[\]]+)\[(?P<zone>[^\[\]]+)\]$")
_ISO = re.compile(r"(?a)^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$")


def zone_info(name: str) -> dt.tzinfo:
    """The tzinfo of a zone text: an IANA name, ``UTC`` or a fixed ``+HH:MM`` offset."""
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", name)
    if match:
        sign = 1 if match[1] == "+" else -1
        return dt.timezone(sign * dt.timedelta(hours=int(match[2]), minutes=int(match[3])))
    if len(name) > 64:  # the width of SessionTimezone.session_timezone; no IANA name comes close
        raise TimeError(f"time zone name of {len(name)} characters: use an IANA name or an offset such as '+02:00'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name the zone files' paths cannot hold
        raise TimeError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin' or an offset such as '+02:00'"
        ) from None


def offset_text(offset: dt.timedelta) -> str:
    """``UTC`` for a zero offset, else ``+HH:MM`` (whole minutes only)."""
    if offset == dt.timedelta(0):
        return "UTC"
    if offset % dt.timedelta(minutes=1):
        raise TimeError(f"offset {offset} is not a whole number of minutes")
    sign = "+" if offset >= dt.timedelta(0) else "-"
    minutes = abs(offset) // dt.timedelta(minutes=1)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def localize(local: dt.datetime, zone: str) -> dt.datetime:
    """``local`` (naive) as an aware time in ``zone``; an error if it does not exist or is ambiguous."""
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


def parse_session_time(text: str, default_zone: str = "UTC") -> tuple[dt.datetime, str]:
    """The UTC instant (naive, as stored) and the zone text of an ISO 8601 session time.

    Raises :class:`~element_session.errors.TimeError` (a ``ValueError``) for text that is not such a
    time, an unknown zone, a local time skipped or repeated by a DST change, a fraction of a second,
    or a year outside 1000-9999.
    """
    try:
        return _parse_session_time(text, default_zone)
    except OverflowError:  # the instant in UTC (or in the named zone) falls outside years 1-9999
        raise TimeError("year outside 1000-9999") from None


def _parse_session_time(text: str, default_zone: str) -> tuple[dt.datetime, str]:
    text = text.strip()
    zone = None
    match = _ZONE_SUFFIX.match(text)
    if match:
        text, zone = match["stamp"], match["zone"]
    if not _ISO.match(text):
        raise TimeError("not an ISO 8601 date and time (e.g. 2024-03-10T14:30:00+01:00)")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as err:
        raise TimeError(f"impossible date or time: {err}") from None
    if parsed.microsecond:
        raise TimeError("has a fraction of a second; the session time is stored in whole seconds")
    if parsed.tzinfo is not None:
        offset = parsed.utcoffset()
        if zone is not None:
            in_zone = parsed.astimezone(zone_info(zone))
            if in_zone.replace(tzinfo=None) != parsed.replace(tzinfo=None) or in_zone.utcoffset() != offset:
                raise TimeError(f"offset {offset_text(offset)} is not the offset of {zone} at that time")
        else:
            zone = offset_text(offset)
        instant = parsed
    else:
        zone = zone or default_zone
        instant = localize(parsed, zone)
    zone_info(zone)  # an unknown zone is an error even where the offset decided the instant
    if zone.upper() in ("UTC", "ETC/UTC", "Z"):
        zone = "UTC"
    utc = instant.astimezone(UTC).replace(tzinfo=None)
    if not 1000 <= utc.year <= 9999 or not 1000 <= parsed.year <= 9999:
        raise TimeError("year outside 1000-9999")
    return utc, zone


def format_session_time(utc: dt.datetime, zone: str | None) -> str:
    """The ingest text of a stored session time: local time with offset, and the IANA zone if any.

    Parsing the result with :func:`parse_session_time` gives back ``(utc, zone)``.
    """
    zone = zone or "UTC"
    local = utc.replace(tzinfo=UTC).astimezone(zone_info(zone))
    text = local.isoformat()
    return text if zone == "UTC" or zone[0] in "+-" else f"{text}[{zone}]"


def local_time(utc: dt.datetime, zone: str | None) -> dt.datetime:
    """The session's start as an aware time in its own zone (UTC where no zone was recorded)."""
    return utc.replace(tzinfo=UTC).astimezone(zone_info(zone or "UTC"))
