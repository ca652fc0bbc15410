"""The text forms of a table of sessions: the JSON objects and CSV rows that every interface prints.

``element-session sessions --format json/csv`` and the web API write exactly these, so that a
session reads the same whichever way it was asked for.

- JSON object (one per session): the subject key attributes, ``session_datetime`` (ISO 8601 text
  in UTC with ``+00:00``, or None), ``session_id`` (int or None), ``experimenters`` and
  ``projects`` (lists of text), ``session_dir``, ``session_note`` (text or None) and
  ``attributes`` (name -> text value, only the attributes the session has).
- CSV (RFC 4180, ``\\r\\n`` line ends): ingest's column layout, so that the output can be ingested
  again: ``session_datetime`` as local time with offset and ``[Zone]``, several experimenters or
  projects joined by ``;``, one ``attr.<name>`` column per attribute.
"""

from __future__ import annotations

import csv
from typing import Any, TextIO

import pandas as pd

from . import timezones
from .errors import FormatError

ATTRIBUTE_PREFIX = "attr."
LIST_SEPARATOR = ";"
#: Session columns of ingest's input and of the CSV output, after the subject key.
SESSION_FIELDS = ("session_datetime", "session_id", "experimenter", "project", "session_dir", "session_note")


def subject_attributes(session: Any) -> list[str]:
    """The primary-key attributes of ``Session`` that come from its subject (all but the session's own)."""
    return [k for k in session.primary_key if k not in ("session_datetime", "session_id")]


def attribute_columns(frame: pd.DataFrame) -> list[str]:
    """The ``attr.<name>`` columns of a table of sessions, sorted."""
    return sorted(c for c in frame.columns if c.startswith(ATTRIBUTE_PREFIX))


def session_records(frame: pd.DataFrame, session: Any) -> list[dict[str, Any]]:
    """The JSON objects of the sessions of ``frame`` (a :func:`~element_session.query.session_table`)."""
    keys, attributes = subject_attributes(session), attribute_columns(frame)
    return [_record(row, keys, attributes) for row in frame.to_dict("records")]


def _record(row: dict[str, Any], keys: list[str], attributes: list[str]) -> dict[str, Any]:
    stamp = row["session_datetime"]
    return {
        **{k: row[k] for k in keys},
        "session_datetime": stamp.isoformat() if stamp is not None else None,
        "session_id": row["session_id"],
        "experimenters": row["experimenters"],
        "projects": row["projects"],
        "session_dir": row["session_dir"],
        "session_note": row["session_note"],
        "attributes": {a[len(ATTRIBUTE_PREFIX) :]: row[a] for a in attributes if row[a] is not None},
    }


def write_sessions_csv(frame: pd.DataFrame, session: Any, stream: TextIO) -> None:
    """Write the sessions of ``frame`` to ``stream`` as CSV in ingest's layout.

    Raises :class:`~element_session.errors.FormatError` for a name holding ``;``, which the
    CSV layout cannot carry (JSON can).
    """
    columns = [*subject_attributes(session), *SESSION_FIELDS, *attribute_columns(frame)]
    writer = csv.writer(stream, lineterminator="\r\n")  # RFC 4180; quotes fields holding \r or \n
    writer.writerow(columns)
    for row in frame.to_dict("records"):
        writer.writerow([_csv_cell(column, row) for column in columns])


def _csv_cell(column: str, row: dict[str, Any]) -> str:
    if column == "session_datetime":
        stamp = row["session_datetime"]
        return timezones.format_session_time(stamp.replace(tzinfo=None), row["session_timezone"]) if stamp else ""
    if column in ("experimenter", "project"):
        names = row[column + "s"]
        if any(LIST_SEPARATOR in name for name in names):
            raise FormatError(f"{column} name in {names} contains ';' and cannot be written as CSV: use --format json")
        return LIST_SEPARATOR.join(names)
    value = row.get(column)
    return "" if value is None else str(value)


def sessions_text(frame: pd.DataFrame) -> str:
    """The sessions of ``frame`` as a plain-text table for a terminal ("no sessions" when empty)."""
    if not len(frame):
        return "no sessions"
    shown = frame.drop(columns=["session_datetime_local"]).copy()
    shown["session_datetime"] = [
        timezones.format_session_time(t.replace(tzinfo=None), z) if t is not None else ""
        for t, z in zip(frame["session_datetime"], frame["session_timezone"], strict=True)
    ]
    for column in ("experimenters", "projects"):
        shown[column] = [", ".join(names) for names in shown[column]]
    return shown.drop(columns=["session_timezone"]).fillna("").to_string(index=False)


def text_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a plain-text table for a terminal: a header line, then one line per row, cells left-aligned.

    Missing values (None, NaN, ``<NA>``) are shown empty; trailing spaces are dropped.
    """
    cells = frame.astype(object).where(frame.notna(), "").astype(str)
    widths = {c: max([len(str(c)), *map(len, cells[c])]) for c in cells.columns}
    text = cells.to_string(
        index=False, justify="left", formatters={c: lambda v, w=w: v.ljust(w) for c, w in widths.items()}
    )
    return "\n".join(line.rstrip() for line in text.split("\n"))


def directories_text(frame: pd.DataFrame) -> str:
    """A table of :func:`~element_session.paths.session_directories` for a terminal.

    ``directory`` shows the absolute directory, ``MISSING`` or ``UNRESOLVED``; a ``reason`` column
    follows where a row is unresolved.
    """
    shown = frame.drop(columns=["status", "reason"]).copy()
    shown["directory"] = [
        d if s == "found" else s.upper() for d, s in zip(frame["directory"], frame["status"], strict=True)
    ]
    if (frame["status"] == "unresolved").any():
        shown["reason"] = [
            r if s == "unresolved" else "" for r, s in zip(frame["reason"], frame["status"], strict=True)
        ]
    return text_table(shown)
