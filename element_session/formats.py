"""The text forms of a table of sessions: the JSON objects and CSV rows that every interface prints.

``element-session sessions --format json/csv`` and the web API write exactly these, so that a
session reads the same whichever way it was asked for.

- JSON object (one per session): the subject key attributes, ``session_datetime`` (ISO 8601 text
  in UTC with ``+00:00``, or None), ``session_id`` (int or None), ``experimenters`` and
  ``projects`` (lists of text), ``session_dir``, ``session_note`` (text or None),
  ``attributes`` (name -> text value, only the attributes the session has), ``attribute_blobs``
  (name -> the object value in the JSON form of :mod:`element_session.blob_json`, only the
  attributes that have one) and, only where something of the session cannot be shown,
  ``problems`` (list of text, each naming the attribute and the reason).
- CSV (RFC 4180, ``\\r\\n`` line ends): ingest's column layout, so that the output can be ingested
  again: ``session_datetime`` as local time with offset and ``[Zone]``, several experimenters or
  projects joined by ``;``, one ``attr.<name>`` column per attribute (its text value). Ingest's
  layout has no column for object values: they are not in the CSV (use JSON). A session whose
  stored zone cannot be used is left out of the CSV (its time could not be written as it was
  stored) and named by :func:`session_problems`.
- The text table shows a session whose zone cannot be used with its time in UTC and the reason.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import numpy as np
import pandas as pd

from . import blob_json, times
from .attribute_blobs import Unreadable
from .columns import ATTRIBUTE_PREFIX, LIST_SEPARATOR, SESSION_FIELDS, STATUS_COLUMN
from .errors import FormatError, readable


def subject_attributes(session: Any) -> list[str]:
    """The primary-key attributes of ``Session`` that come from its subject (all but the session's own)."""
    return [k for k in session.primary_key if k not in ("session_datetime", "session_id")]


def key_text(key: Mapping[str, Any]) -> str:
    """A key as people read it: ``subject=m1, session_datetime=2024-03-10T13:30:00+00:00``.

    Times are stored UTC and shown so, with the offset (:func:`element_session.times.format_time`).
    """
    return ", ".join(f"{name}={value_text(value)}" for name, value in key.items())


def key_words(key: Mapping[str, Any]) -> str:
    """A key named in a sentence: the value alone for a key of one attribute (``no subject M999``, as a subject's
    page is titled), else :func:`key_text` (``no session subject=m1, session_datetime=...``)."""
    return value_text(next(iter(key.values()))) if len(key) == 1 else key_text(key)


def value_text(value: Any) -> str:
    """A stored value as people read it: text as it is, times by :func:`~element_session.times.format_time`
    (a naive one is UTC), dates in ISO 8601, a missing value as ``(none)``, empty text as ``(empty)``."""
    if value is None or value is pd.NA or value is pd.NaT:
        return "(none)"
    if value == "":
        return "(empty)"
    if isinstance(value, dt.datetime):
        return times.format_time(value)
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def attribute_columns(frame: pd.DataFrame) -> list[str]:
    """The ``attr.<name>`` columns of a table of sessions, sorted."""
    return sorted(c for c in frame.columns if c.startswith(ATTRIBUTE_PREFIX))


def _native(value: Any) -> Any:
    """A cell of the typed table as a plain Python value: ``<NA>``/``NaT`` -> None, Timestamp -> datetime."""
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.integer):
        return int(value)
    return value


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a :func:`~element_session.query.session_table` with plain Python values."""
    return [{k: _native(v) for k, v in row.items()} for row in frame.to_dict("records")]


def session_records(
    sessions: pd.DataFrame | Sequence[Mapping[str, Any]],
    session: Any,
    blobs: Mapping[tuple, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The JSON objects of ``sessions``: a :func:`~element_session.query.session_table`, or the same columns as
    plain rows (:meth:`~element_session.session_frame.SessionRows.records`).

    ``blobs`` are the object values of the sessions' attributes, as
    :func:`~element_session.attribute_blobs.read_attribute_blobs` returns them; without them,
    ``attribute_blobs`` is empty. A value that cannot be read or written losslessly is left out of
    ``attribute_blobs`` and named in the session's ``problems``.
    """
    rows = _rows(sessions) if isinstance(sessions, pd.DataFrame) else sessions
    keys, names = subject_attributes(session), list(session.primary_key)
    attributes = sorted(c for c in (rows[0] if rows else ()) if c.startswith(ATTRIBUTE_PREFIX))
    by_key = {_ident(key): values for key, values in (blobs or {}).items()}
    return [_record(row, keys, attributes, by_key.get(_ident(row[n] for n in names), {})) for row in rows]


def _ident(values: Any) -> tuple:
    """A session key's values comparable whatever their source: times naive UTC, numpy numbers as Python's."""
    ident = []
    for value in values:
        if hasattr(value, "to_pydatetime"):  # a pandas Timestamp
            value = value.to_pydatetime()
        if isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo is not None else value
        elif hasattr(value, "item"):
            value = value.item()
        ident.append(value)
    return tuple(ident)


def _record(row: Mapping[str, Any], keys: list[str], attributes: list[str], blobs: Mapping[str, Any]) -> dict[str, Any]:
    stamp = row["session_datetime"]
    encoded, problems = {}, []
    for name, value in sorted(blobs.items()):
        try:
            if isinstance(value, Unreadable):
                raise FormatError(value.reason)
            encoded[name] = blob_json.encode(value)
        except FormatError as err:
            problems.append(f"attribute {name!r}: its object value cannot be shown: {err}")
    record = {
        **{k: row[k] for k in keys},
        "session_datetime": stamp.isoformat() if stamp is not None else None,
        "session_id": row["session_id"],
        "experimenters": row["experimenters"],
        "projects": row["projects"],
        "session_dir": row["session_dir"],
        "session_note": row["session_note"],
        "status": row["status"],
        "attributes": {a[len(ATTRIBUTE_PREFIX) :]: row[a] for a in attributes if row[a] is not None},
        "attribute_blobs": encoded,
    }
    return record | ({"problems": problems} if problems else {})


def zone_problem(zone: str | None) -> str | None:
    """Why a stored session zone cannot be used to show local times (None where it can)."""
    try:
        times.zone_info(zone or "UTC")
    except times.TimeError as err:
        return f"its stored time zone cannot be used ({err}); shown in UTC"
    return None


def session_problems(frame: pd.DataFrame, session: Any) -> list[str]:
    """One line per session of ``frame`` that the text table and CSV cannot show as stored, with the reason."""
    names = list(session.primary_key)
    return [
        f"session {key_text({n: row[n] for n in names})}: {problem}"
        for row in frame.to_dict("records")
        if (problem := zone_problem(row["session_timezone"])) is not None
    ]


def record_problems(records: list[dict[str, Any]], session: Any) -> list[str]:
    """One line per problem in the ``problems`` of JSON objects from :func:`session_records`, naming the session."""
    names = list(session.primary_key)
    return [
        f"session {key_text({n: r[n] for n in names if n in r})}: {problem}"
        for r in records
        for problem in r.get("problems", ())
    ]


def write_sessions_csv(frame: pd.DataFrame, session: Any, stream: TextIO) -> None:
    """Write the sessions of ``frame`` to ``stream`` as CSV in ingest's layout, the status included.

    The ``status`` column holds each session's status (``acquired`` where none is stored), so that
    ingesting the file elsewhere keeps it (ingest sets the status of new sessions; an existing
    session with the same status is "already present").

    Raises :class:`~element_session.errors.FormatError` for a name holding ``;``, which the
    CSV layout cannot carry (JSON can). A session whose zone cannot be used is left out (see
    :func:`session_problems`).
    """
    columns = [*subject_attributes(session), *SESSION_FIELDS, STATUS_COLUMN, *attribute_columns(frame)]
    writer = csv.writer(stream, lineterminator="\r\n")  # RFC 4180; quotes fields holding \r or \n
    writer.writerow(columns)
    for row in _rows(frame):
        if zone_problem(row["session_timezone"]) is not None:
            continue  # named by session_problems(): its time cannot be written as stored
        writer.writerow([_csv_cell(column, row) for column in columns])


def _csv_cell(column: str, row: dict[str, Any]) -> str:
    if column == "session_datetime":
        stamp = row["session_datetime"]
        return times.format_time(stamp.replace(tzinfo=None), row["session_timezone"]) if stamp else ""
    if column in ("experimenter", "project"):
        names = row[column + "s"]
        if any(LIST_SEPARATOR in name for name in names):
            raise FormatError(
                f"{column} name in {readable(names)} contains ';' and cannot be written as CSV: use --format json"
            )
        return LIST_SEPARATOR.join(names)
    value = row.get(column)
    return "" if value is None else str(value)


def sessions_text(frame: pd.DataFrame) -> str:
    """The sessions of ``frame`` as a plain-text table for a terminal ("no sessions" when empty)."""
    if not len(frame):
        return "no sessions"
    shown = frame.drop(columns=["session_datetime_local"]).astype(object)
    shown["session_datetime"] = [
        _shown_time(_native(t), _native(z))
        for t, z in zip(frame["session_datetime"], frame["session_timezone"], strict=True)
    ]
    for column in ("experimenters", "projects"):
        shown[column] = [", ".join(names) for names in shown[column]]
    return text_table(shown.drop(columns=["session_timezone"]))


def _shown_time(stamp: dt.datetime | None, zone: str | None) -> str:
    if stamp is None:
        return ""
    problem = zone_problem(zone)
    if problem is not None:
        return f"{times.format_time(stamp)} ({problem})"
    return times.format_time(stamp.replace(tzinfo=None), zone)


def times_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each datetime column as text, as every output shows times (:func:`times.format_time`: UTC
    marked ``+00:00``); a missing time as None."""
    shown = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            shown[column] = [None if pd.isna(t) else times.format_time(t.to_pydatetime()) for t in frame[column]]
    return shown


_ESCAPED = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


def text_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a plain-text table for a terminal: a header line, then one line per row, cells left-aligned.

    Missing values (None, NaN, ``<NA>``) are shown empty; a line break or tab in a value as ``\\n``,
    ``\\r``, ``\\t`` (one line per row); trailing spaces are dropped.
    """
    cells = frame.astype(object).where(frame.notna(), "").astype(str).map(lambda v: v.translate(_ESCAPED))
    widths = {c: max([len(str(c)), *map(len, cells[c])]) for c in cells.columns}
    text = cells.to_string(
        index=False, justify="left", formatters={c: lambda v, w=w: v.ljust(w) for c, w in widths.items()}
    )
    return "\n".join(line.rstrip() for line in text.split("\n"))


def directories_text(frame: pd.DataFrame) -> str:
    """A table of :func:`~element_session.paths.session_directories` for a terminal.

    ``directory`` shows the absolute directory, ``MISSING``, ``UNRESOLVED`` or ``NOT STORED``; a ``reason`` column
    follows where a row is unresolved. Times as every output shows them (:func:`times_as_text`).
    """
    shown = frame.drop(columns=["status", "reason"]).copy()
    shown["directory"] = [
        d if s == "found" else s.upper() for d, s in zip(frame["directory"], frame["status"], strict=True)
    ]
    if (frame["status"] == "unresolved").any():
        shown["reason"] = [
            r if s == "unresolved" else "" for r, s in zip(frame["reason"], frame["status"], strict=True)
        ]
    return text_table(times_as_text(shown))
