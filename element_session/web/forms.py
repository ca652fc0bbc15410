"""The fields of the login, add and edit forms, turned into credentials or ingest's input row, and errors per field.

A form is Starlette's :class:`~starlette.datastructures.FormData`: a field given twice has two
values (``getlist``); a file upload is ignored (no form here takes one).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import FormData

from ..columns import ATTRIBUTE_PREFIX, LIST_SEPARATOR, SESSION_FIELDS
from ..errors import InputError, InputProblem
from ..times import needs_zone
from .accounts import Credentials
from .service import local_zone


def _values(form: FormData, name: str) -> list[str]:
    return [value for value in form.getlist(name) if isinstance(value, str)]


def _one(fields: FormData, name: str, problems: list[InputProblem]) -> str:
    values = _values(fields, name)
    if len(values) > 1:
        problems.append(InputProblem("form", None, name, values, "given more than once"))
    return values[0].strip() if values else ""


def _lines(text: str) -> str:
    """A textarea's text with the line breaks a browser sends (CRLF, or CR) read as one line break each."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _attributes(fields: FormData, problems: list[InputProblem], unnamed_removed: bool = False) -> dict[str, str]:
    """The form's attribute rows (``attr_name``/``attr_value`` pairs; an empty row is skipped).

    A row with a value but no name is a problem, unless ``unnamed_removed`` (the edit form, where
    emptying an attribute's name removes it, as that page says).
    """
    names, values = _values(fields, "attr_name"), _values(fields, "attr_value")
    if len(names) != len(values):
        problems.append(InputProblem("form", None, "attributes", names, "attribute names and values do not pair up"))
    attributes: dict[str, str] = {}
    for name, value in zip(names, values, strict=False):
        name = name.strip()
        if not name and (not value or unnamed_removed):
            continue
        if name in attributes:
            problems.append(InputProblem("form", None, ATTRIBUTE_PREFIX + name, name, "attribute given twice"))
        attributes[name] = value
    return attributes


def attribute_pairs(fields: FormData) -> dict[str, str]:
    """The attribute rows as given in a form (to show them again with its errors)."""
    return _attributes(fields, [])


def credentials(fields: FormData) -> Credentials | None:
    """The login form's account and password; None unless each is given once (the account not empty)."""
    users, passwords = _values(fields, "username"), _values(fields, "password")
    if len(users) != 1 or len(passwords) != 1 or not users[0]:
        return None
    return Credentials(users[0], passwords[0])


def session_row(fields: FormData, subject_keys: list[str], lab_zone: str | None = None) -> tuple[dict[str, str], str]:
    """Ingest's input row of the add form's fields, and the zone of a start time without an offset: the
    form's zone, else ``lab_zone`` (:func:`~.service.local_zone`).

    An empty field is "not given", as in ingest. Raises :class:`InputError` for a field given twice,
    and for a start time without an offset and no zone (a local time is never taken as UTC without a word).
    """
    problems: list[InputProblem] = []
    row: dict[str, str] = {}
    for name in (*subject_keys, *SESSION_FIELDS):
        value = _one(fields, name, problems)
        if value:
            row[name] = _lines(value) if name == "session_note" else value
    for name, value in _attributes(fields, problems).items():
        row[ATTRIBUTE_PREFIX + name] = value
    timezone = local_zone(_one(fields, "timezone", problems), lab_zone)
    if timezone is None and needs_zone(row.get("session_datetime")):  # never UTC by surprise
        reason = "required: the zone the start time was recorded in (e.g. Europe/Berlin, or UTC)"
        problems.append(InputProblem("form", None, "timezone", "", reason))
    if problems:
        raise InputError(problems)
    return row, timezone or "UTC"  # UTC: no time needs it


@dataclass(frozen=True)
class SessionEdit:
    """The edit form's content: every editable part of a session (the arguments of ``service.update_session``)."""

    note: str  # '' removes it; the lines as written (a browser's CRLF read as one line break)
    attributes: dict[str, str]
    experimenters: list[str]
    projects: list[str]
    directory: str  # '' removes it


def _names(fields: FormData, name: str, problems: list[InputProblem]) -> list[str]:
    """Names separated by ``;`` (an empty one skipped), as ingest reads experimenters and projects."""
    text = _one(fields, name, problems)
    names = [n.strip() for n in text.split(LIST_SEPARATOR) if n.strip()]
    if len(set(names)) != len(names):
        problems.append(InputProblem("form", None, name, text, "a name listed twice"))
    return names


def session_edit(fields: FormData, strict: bool = True) -> SessionEdit:
    """The edit form's fields; with ``strict``, :class:`InputError` for fields given twice or a name listed twice."""
    problems: list[InputProblem] = []
    notes = _values(fields, "session_note")
    attributes = _attributes(fields, problems, unnamed_removed=True)
    if len(notes) > 1:
        problems.append(InputProblem("form", None, "session_note", notes, "given more than once"))
    note = _lines(notes[0]) if notes else ""
    edit = SessionEdit(
        note,
        attributes,
        _names(fields, "experimenter", problems),
        _names(fields, "project", problems),
        _one(fields, "session_dir", problems),
    )
    if problems and strict:
        raise InputError(problems)
    return edit


def errors_by_field(err: InputError) -> dict[str, list[str]]:
    """The reasons of ``err``'s problems by form field (``attr.<name>`` for an attribute)."""
    errors: dict[str, list[str]] = {}
    for problem in err.problems:
        errors.setdefault(problem.column or "", []).append(problem.reason)
    return errors
