"""A session's history (:func:`element_session.history.history`) as the session page shows it, in people's words.

Each recorded change becomes one :class:`Change`: when (UTC, as the pages write times), the database
account, what was done (added, changed, removed) to which part of the session (named as the page
names it: "Note", "Attributes", ...), the values as ``old → new`` (an object value as "(object
value)", a time as the pages write it), and the reason given. Newest first.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import history
from ..errors import ElementSessionError
from .accounts import UserPipeline
from .service import page_names

#: What each action did, in words.
ACTIONS = {"insert": "added", "update": "changed", "delete": "removed"}
#: Columns as the pages name them (others: the column's name with spaces).
COLUMNS = {
    "session_note": "note",
    "session_dir": "directory",
    "session_timezone": "zone",
    "attribute_name": "attribute",
    "attribute_value": "value",
    "attribute_blob": "object value",
    "session_status": "status",
    "status_set_time": "set at",
    "status_set_by": "set by",
    "status_reason": "reason",
}
NONE = "(none)"  # a value not given, as the change shows it


@dataclass(frozen=True)
class Value:
    """One column of a change: its name in words and its values before and after (None: none)."""

    column: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class Change:
    """One recorded change of a row of the session, in words."""

    when: str  # "2024-05-01 07:00:00 UTC"
    account: str
    action: str  # added, changed, removed
    part: str  # "Note", "Attributes", ...
    values: list[Value]
    reason: str


@dataclass(frozen=True)
class SessionHistory:
    """What the session page shows under "History": the changes, newest first, or why there are none to show."""

    changes: list[Change]
    unavailable: str | None  # why the history cannot be shown (off for this schema, not readable), or None


def stamp(value: dt.datetime) -> str:
    """A stored UTC time as the pages write it: ``2024-05-01 07:00:00 UTC``."""
    return value.strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def _text(column: str, value: Any) -> str | None:
    """A value of the history's JSON in words (None stays None: no value)."""
    if value is None or value == "":
        return None
    if column.endswith("_blob"):
        return "(object value)"
    if isinstance(value, dt.datetime):  # a time column's value (history.history); text that looks like one is text
        return stamp(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value if isinstance(value, str) else str(value)


def _column(name: str) -> str:
    return COLUMNS.get(name, name.replace("_", " "))


def change(entry: Mapping[str, Any], parts: Mapping[str, str], key_columns: set[str]) -> Change:
    """One entry of :func:`~element_session.history.history` in words; ``parts``: table name -> its name on the page."""
    old, new = entry["old_values"] or {}, entry["new_values"] or {}
    order = list(COLUMNS)  # the same order on every backend (PostgreSQL's JSONB reorders a row's columns)
    columns = sorted(
        (c for c in (new or old) if c not in key_columns),
        key=lambda c: (order.index(c) if c in COLUMNS else len(order), c),
    )
    if old and new:  # an update: only what changed, a missing value as "(none)"
        columns = [c for c in columns if old.get(c) != new.get(c)]
        values = [Value(_column(c), _text(c, old.get(c)) or NONE, _text(c, new.get(c)) or NONE) for c in columns]
    else:  # an insert or a delete: the values the row holds
        values = [Value(_column(c), _text(c, old.get(c)), _text(c, new.get(c))) for c in columns]
        values = [v for v in values if v.old or v.new]
    return Change(
        stamp(entry["changed_at"]),
        str(entry["account"]),
        ACTIONS.get(entry["action"], str(entry["action"])),
        parts.get(entry["table_name"], entry["table_name"]),
        values,
        entry["reason"] or "",
    )


def session_history(user: UserPipeline, key: Mapping[str, Any]) -> SessionHistory:
    """The recorded changes of the session ``key`` (any of its rows), newest first, in words.

    When the schema has no history table (the history is off) or the account may not read it, no
    change and the reason, in words.
    """
    m = user.session
    if not history.has_table(user.connection, m.Session.database):
        return SessionHistory([], "The history of changes is off for this schema (docs/status.md, 'History').")
    try:
        entries = history.history(dict(key), session_module=m)
    except ElementSessionError as err:  # e.g. the account may not read the history table
        return SessionHistory([], f"The history cannot be shown: {err}")
    connection = user.connection
    parts = {connection.adapter.split_full_table_name(name)[1]: words for name, words in page_names(user).items()}
    key_columns = set(m.Session.primary_key)
    return SessionHistory([change(e, parts, key_columns) for e in reversed(entries)], None)
