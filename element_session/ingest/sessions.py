"""The plan of sessions: each input row read into a session, its subject, experimenters and projects
found as stored, compared with the stored session, and turned into the rows of every session table."""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .. import paths, status, times
from ..columns import ATTRIBUTE_PREFIX, LIST_SEPARATOR, SESSION_FIELDS, STATUS_COLUMN
from ..errors import (
    ConflictError,
    InputError,
    InputProblem,
    SessionDirectoryError,
    SessionLockedError,
    one_problem,
    raise_if_problems,
    readable,
)
from . import keys
from .plan import Batch, IngestReport, note_match, restricted_rows, shown
from .readers import Record
from .validate import check_attribute_name, check_no_trailing_space, check_text, column_checks, parse_key_value

#: Columns that take several values (a list, or text separated by ``;``).
_LIST_COLUMNS = ("experimenter", "project")


def _tuple_getter(columns: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple]:
    """The function taking the values of ``columns`` from a row, as a tuple (also of one column)."""
    if len(columns) == 1:
        (column,) = columns
        return lambda row: (row[column],)
    return operator.itemgetter(*columns)


def _shown_value(value: Any) -> str:
    """A stored key value as a message shows it (a time as ISO text in UTC)."""
    return f"{value.isoformat()}+00:00" if isinstance(value, dt.datetime) else str(value)


def _literal(value: dt.datetime | int) -> str:
    """SQL text of a value that validation produced (a datetime or an int), never of input text."""
    return f"'{value:%Y-%m-%d %H:%M:%S}'" if isinstance(value, dt.datetime) else str(int(value))


@dataclass
class _Session:
    """One session of the input, validated."""

    record: Record
    key: dict[str, Any]
    fields: dict[str, Any]  # secondary attribute of Session given by the input
    zone: str | None = None
    experimenters: list[str] | None = None
    projects: list[str] | None = None
    session_dir: str | None = None
    note: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    status: str | None = None


class SessionPlan:
    """Sessions and their satellite rows, checked against the reference tables and existing sessions."""

    def __init__(self, linking_module: ModuleType, module: ModuleType, zone: str, roots: Sequence | None) -> None:
        self.module = module
        self.zone = zone
        self.roots = roots
        self.subject = linking_module.Subject
        self.experimenter, self.project = linking_module.Experimenter, linking_module.Project
        for name, table in (("Experimenter", self.experimenter), ("Project", self.project)):
            if len(table.primary_key) != 1:
                raise one_problem("pipeline", name, table.primary_key, "a one-column primary key is needed")
        self.subject_key = list(self.subject.primary_key)
        self.subject_checks = column_checks(self.subject())
        self.subject_of = _tuple_getter(self.subject_key)  # a row's subject key, as a tuple
        self.experimenter_attr = self.experimenter.primary_key[0]
        self.project_attr = self.project.primary_key[0]
        self.by_datetime = "session_datetime" in module.Session.primary_key
        self.identity = "session_datetime" if self.by_datetime else "session_id"
        self.secondary = "session_id" if self.by_datetime else "session_datetime"
        self.columns = [*self.subject_key, *SESSION_FIELDS, STATUS_COLUMN]
        self.required = frozenset([*self.subject_key, self.identity])
        self.readers = self._readers()
        self.column_set = frozenset(self.columns)
        self.seen: dict[tuple, tuple[str, int]] = {}  # sessions of earlier chunks -> their source and row
        self.numbers: dict[tuple, _Session] = {}  # (subject..., session_id) of new sessions of earlier chunks
        self.attribute_names: set[str] = set()  # names of attribute columns found valid
        self.folders = {
            "subject": keys.KeyFolder(self.subject, self.subject_key),
            "experimenter": keys.KeyFolder(self.experimenter, [self.experimenter_attr]),
            "project": keys.KeyFolder(self.project, [self.project_attr]),
            "attribute": keys.KeyFolder(module.Session.Attribute, ["attribute_name"]),
        }
        # keys found to exist, folded -> the stored key
        self.known: dict[str, dict[tuple, tuple]] = {"subject": {}, "experimenter": {}, "project": {}}

    # -- reading one record ----------------------------------------------------------------------
    def _readers(self) -> dict[str, Callable[[_Session, str, Any], None]]:
        """Each column's reader, in the order a record's columns are checked: it puts the column's value
        (text; a list for experimenters and projects) into the session, or raises ``ValueError``."""
        return {
            **dict.fromkeys(self.subject_key, self._read_subject),
            "session_datetime": self._read_time,
            "session_id": self._read_number,
            "experimenter": self._read_names,
            "project": self._read_names,
            "session_dir": self._read_directory,
            "session_note": self._read_note,
            STATUS_COLUMN: self._read_status,
        }

    def _parse(self, record: Record, problems: list[InputProblem]) -> tuple[_Session, bool]:
        """The session of one record, and whether it is valid; its problems are added to ``problems``.

        An invalid record's session holds the values that were read (its subject and names are still
        looked up, so that one run lists every problem). An unknown column is a problem of the header
        (added once for the file) that leaves the record's session valid, so that its other checks
        (references, stored sessions) still run.
        """
        start = len(problems)

        def fail(column: str, value: object, reason: str) -> None:
            problems.append(record.problem(column, value, reason))

        for column, value in record.values.items():
            if column not in self.column_set and not column.startswith(ATTRIBUTE_PREFIX):
                problems.append(
                    record.column_problem(
                        column, f"unknown column: sessions have {readable(self.columns)} and attr.<name>"
                    )
                )
                start += 1
            elif isinstance(value, list) and column not in _LIST_COLUMNS:
                fail(column, value, "a list where one value is expected")
        session = _Session(record, {}, {})
        for column, read in self.readers.items():
            value = record.values.get(column)
            if value is None:
                if column in self.required:
                    fail(column, None, "required value not given")
            elif column in _LIST_COLUMNS or not isinstance(value, list):
                try:
                    read(session, column, value)
                except (ValueError, SessionDirectoryError) as err:
                    fail(column, value, str(err))
        for column, value in record.values.items():
            if column.startswith(ATTRIBUTE_PREFIX) and isinstance(value, str):
                try:
                    self._read_attribute(session, column[len(ATTRIBUTE_PREFIX) :], value)
                except ValueError as err:
                    fail(column, value, str(err))
        return session, len(problems) == start

    def _read_subject(self, session: _Session, column: str, value: str) -> None:
        key = parse_key_value(column, value, self.subject_checks)
        session.key[column] = check_no_trailing_space(key) if isinstance(key, str) else key

    def _read_time(self, session: _Session, column: str, value: str) -> None:
        utc, session.zone = times.parse_session_time(value, self.zone)
        (session.key if self.by_datetime else session.fields)[column] = utc

    def _read_number(self, session: _Session, column: str, value: str) -> None:
        (session.fields if self.by_datetime else session.key)[column] = parse_key_value(column, value, {})

    def _read_directory(self, session: _Session, column: str, value: str) -> None:
        session.session_dir = paths.normalize_session_dir(value, self.roots)

    def _read_note(self, session: _Session, column: str, value: str) -> None:
        session.note = check_text(value, 1024)

    def _read_status(self, session: _Session, column: str, value: str) -> None:
        if value.strip() not in status.STATES:
            raise ValueError(f"not a session status: one of {', '.join(status.STATES)}")
        session.status = value.strip()

    def _read_attribute(self, session: _Session, name: str, value: str) -> None:
        if name not in self.attribute_names:  # a column's name is checked once
            self.attribute_names.add(check_attribute_name(name, 32))
        session.attributes[name] = check_text(value, 2000)

    @staticmethod
    def _read_names(session: _Session, column: str, value: str | list[str]) -> None:
        """Experimenters or projects: a list, or text separated by ``;``; an empty list is none given."""
        if isinstance(value, str):
            names = [value.strip()] if LIST_SEPARATOR not in value else [n.strip() for n in value.split(LIST_SEPARATOR)]
            nul = "\x00" in value
        else:
            names = [name.strip() for name in value]
            nul = any("\x00" in name for name in names)
        if nul:
            raise ValueError("contains a NUL character")
        if not all(names):
            raise ValueError(f"an empty name in the list (separate names with '{LIST_SEPARATOR}')")
        if len(set(names)) != len(names):
            raise ValueError("a name listed twice")
        setattr(session, column + "s", names or None)

    # -- the whole input -----------------------------------------------------------------------
    def prepare(self, records: list[Record], report: IngestReport) -> list[Batch]:
        """The rows of one chunk of the input to insert (with their records); raises for its problems."""
        problems: list[InputProblem] = []
        parsed, partly = [], []
        for record in records:
            session, valid = self._parse(record, problems)
            if valid:
                parsed.append(session)
            elif all(k in session.key for k in self.subject_key):  # its subject read: look it up too
                partly.append(session)
        self._check_references([*parsed, *partly], problems, report)
        self._check_attribute_names(parsed, problems)
        sessions: dict[tuple, _Session] = {}
        for session in parsed:  # subjects are spelt as stored now: identities compare exactly
            record, identity = session.record, tuple(session.key.values())
            if identity in self.seen:
                reason = "duplicate session (also {} row {})".format(*self.seen[identity])
                problems.append(record.problem(self.identity, identity, reason))
            else:
                self.seen[identity] = (record.source, record.row)
                sessions[identity] = session
        invalid = bool(problems)  # the valid rows are still compared with the stored sessions: one run lists all
        existing = self._existing(list(sessions.values()))
        new: list[_Session] = []
        idents: list[Any] = self._idents([s.key for s in sessions.values()]) if existing else [None] * len(sessions)
        locked = False
        for session, ident in zip(sessions.values(), idents, strict=True):
            stored = existing.get(ident)
            if stored is None:
                new.append(session)
                continue
            state = stored.get("status", status.DEFAULT_STATUS)
            for column, (mine, theirs) in self._differences(session, stored, report).items():
                reason = f"conflict: the stored session has {'no value' if theirs is None else readable(theirs)}"
                if state in status.LOCKED and column != STATUS_COLUMN:
                    locked_why = status.locked_reason({**stored["key"], "session_status": state})
                    locked, reason = True, f"{reason}; {locked_why}; {status.NOT_BY_INGEST}"
                elif column == STATUS_COLUMN:
                    reason += " (ingest sets the status of new sessions only: use `element-session status set`)"
                problems.append(session.record.problem(column, mine, reason))
            report.present.append(f"{session.record.source} row {session.record.row}")
        if self.by_datetime:
            self._check_numbers(new, problems)
        raise_if_problems(problems, InputError if invalid else SessionLockedError if locked else ConflictError)
        return self._rows(new)

    def _check_numbers(self, sessions: list[_Session], problems: list[InputProblem]) -> None:
        """Refuse a session number that another session of the same subject has (stored, or earlier in the input).

        In the datetime variant ``session_id`` is a secondary attribute: nothing in the schema keeps a
        subject from having two "session 2". A new session that would be the second is a problem
        naming the session that has that number already.
        """
        numbered = [s for s in sessions if s.fields.get("session_id") is not None]
        if not numbered:
            return
        wanted = [{**dict(zip(self.subject_key, self.subject_of(s.key), strict=True)), "session_id": s.fields[
            "session_id"]} for s in numbered]  # fmt: skip
        stored: dict[tuple, dict[str, Any]] = {}
        for row in restricted_rows(self.module.Session.proj("session_id"), wanted):
            stored.setdefault((*self.subject_of(row), row["session_id"]), row)
        for s in numbered:
            number = (*self.subject_of(s.key), s.fields["session_id"])
            other = stored.get(number)
            if other is not None:
                where = "session " + ", ".join(f"{k}={_shown_value(other[k])}" for k in self.module.Session.primary_key)
            elif number in self.numbers:
                earlier = self.numbers[number].record
                where = f"{earlier.source} row {earlier.row}"
            else:
                self.numbers[number] = s
                continue
            reason = f"session number {number[-1]} of this subject is already taken by {where}"
            problems.append(s.record.problem("session_id", s.fields["session_id"], reason))

    def _check_references(self, sessions: list[_Session], problems: list[InputProblem], report: IngestReport) -> None:
        """Find each session's subject, experimenters and projects as stored, and spell them so.

        A name the database compares equal to a stored one is taken as that one (and reported);
        names of one list that are then the same are a problem, as are unknown ones.
        """
        tables = {
            "subject": (self.subject, self.subject_key),
            "experimenter": (self.experimenter, [self.experimenter_attr]),
            "project": (self.project, [self.project_attr]),
        }
        given = {
            "subject": [self.subject_of(s.key) for s in sessions],
            "experimenter": [(n,) for s in sessions for n in s.experimenters or ()],
            "project": [(n,) for s in sessions for n in s.projects or ()],
        }
        folded: dict[str, dict[tuple, tuple]] = {}
        for name, (table, columns) in tables.items():
            folder, known = self.folders[name], self.known[name]
            distinct = list(dict.fromkeys(given[name]))  # each value folded once
            folded[name] = dict(zip(distinct, folder.fold_all(distinct), strict=True))
            wanted = {key for key, f in folded[name].items() if f not in known}
            stored_keys = [tuple(r[k] for k in columns) for r in restricted_rows(
                table.proj(), [dict(zip(columns, key, strict=True)) for key in wanted]
            )]  # fmt: skip
            known.update(zip(folder.fold_all(stored_keys), stored_keys, strict=True))
        for s in sessions:
            subject = self.subject_of(s.key)
            stored = self.known["subject"].get(folded["subject"][subject])
            if stored is None:
                problems.append(
                    s.record.problem(
                        self.subject_key[0], shown(subject), "unknown subject: ingest it into Subject first"
                    )
                )
            else:
                note_match(report, s.record, self.subject_key, subject, stored, self.folders["subject"])
                s.key.update(zip(self.subject_key, stored, strict=True))
            for column in ("experimenter", "project"):
                names = getattr(s, column + "s")
                spelt = []
                for name in names or ():
                    stored = self.known[column].get(folded[column][(name,)])
                    if stored is None:
                        problems.append(s.record.problem(column, name, f"unknown {column}: ingest it first"))
                    else:
                        note_match(report, s.record, [column], (name,), stored, self.folders[column])
                        spelt.append(stored[0])
                if len(set(spelt)) != len(spelt):
                    reason = f"a name listed twice (the database compares names by {self.folders[column].describe()})"
                    problems.append(s.record.problem(column, names, reason))
                elif names is not None and len(spelt) == len(names):
                    setattr(s, column + "s", spelt)

    def _check_attribute_names(self, sessions: list[_Session], problems: list[InputProblem]) -> None:
        """Refuse two attribute columns of one row whose names the database compares as equal."""
        folder = self.folders["attribute"]
        if folder.exact:
            return
        names = list({name: None for s in sessions for name in s.attributes})
        folded = dict(zip(names, folder.fold_all((n,) for n in names), strict=True))
        for s in sessions:
            seen: dict[tuple, str] = {}
            for name in s.attributes:
                f = folded[name]
                if f in seen:
                    reason = (f"the same attribute as {ATTRIBUTE_PREFIX}{seen[f]} for the database "
                              f"({folder.describe()}): give it once")  # fmt: skip
                    problems.append(s.record.problem(ATTRIBUTE_PREFIX + name, s.attributes[name], reason))
                else:
                    seen[f] = name

    def _existing(self, sessions: list[_Session]) -> dict[tuple, dict[str, Any]]:
        """The stored state of those input sessions that exist already, by identity."""
        m = self.module
        if not sessions:
            return {}
        idents = self._idents

        # one cheap query for which input sessions exist: their subjects, within the span of their identities
        subjects = {self.subject_of(s.key) for s in sessions}
        values = [s.key[self.identity] for s in sessions]
        span = f"{self.identity} BETWEEN {_literal(min(values))} AND {_literal(max(values))}"
        candidates = (
            m.Session.proj() & [dict(zip(self.subject_key, v, strict=True)) for v in subjects] & span
        ).to_dicts()
        stored = set(idents(candidates))
        keys_given = [s.key for s in sessions]
        existing_keys = [key for key, i in zip(keys_given, idents(keys_given), strict=True) if i in stored]
        if not existing_keys:
            return {}

        def rows(table: Any) -> Iterator[tuple[tuple, dict]]:
            found = restricted_rows(table, existing_keys)
            return zip(idents(found), found, strict=True)

        primary = list(m.Session.primary_key)
        found: dict[tuple, dict[str, Any]] = {
            i: {"row": r, "key": {k: r[k] for k in primary}} for i, r in rows(m.Session)
        }
        for i, row in rows(m.SessionExperimenter):
            found[i].setdefault("experimenter", []).append(row[self.experimenter_attr])
        for i, row in rows(m.ProjectSession):
            found[i].setdefault("project", []).append(row[self.project_attr])
        for i, row in rows(m.SessionDirectory):
            found[i]["session_dir"] = row["session_dir"]
        for i, row in rows(m.SessionNote):
            found[i]["session_note"] = row["session_note"]
        for i, row in rows(m.SessionTimezone):
            found[i]["zone"] = row["session_timezone"]
        for i, row in rows(m.SessionStatus.proj("session_status")):
            found[i]["status"] = row["session_status"]
        for i, row in rows(m.Session.Attribute.proj("attribute_value")):
            found[i].setdefault("attributes", {})[row["attribute_name"]] = row["attribute_value"]
        return found

    def _idents(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple]:
        """Sessions' identities as the database compares them: the subject folded, the time or number."""
        subjects = self.folders["subject"].fold_all([*map(self.subject_of, rows)])
        return [(*subject, row[self.identity]) for subject, row in zip(subjects, rows, strict=True)]

    def _folded_names(self, kind: str, names: Sequence[str]) -> list[tuple]:
        return sorted(self.folders[kind].fold_all((n,) for n in names), key=repr)

    def _differences(self, session: _Session, stored: dict[str, Any], report: IngestReport) -> dict[str, tuple]:
        """Columns the input gives whose value differs from the stored session; names compare as stored."""
        differences: dict[str, tuple[Any, Any]] = {}
        row = stored["row"]
        for column, value in session.fields.items():
            if row[column] != value:
                differences[column] = (value, row[column])
        if session.zone is not None and session.zone != stored.get("zone", "UTC"):
            differences["session_datetime"] = (session.zone, f"zone {stored.get('zone', 'UTC')}")
        for column, mine in (("experimenter", session.experimenters), ("project", session.projects)):
            theirs = stored.get(column, [])
            if mine is not None and self._folded_names(column, mine) != self._folded_names(column, theirs):
                differences[column] = (mine, sorted(theirs))
        if session.status is not None and session.status != stored.get("status", status.DEFAULT_STATUS):
            differences[STATUS_COLUMN] = (session.status, stored.get("status", status.DEFAULT_STATUS))
        for column, text in (("session_dir", session.session_dir), ("session_note", session.note)):
            if text is not None and text != stored.get(column):
                differences[column] = (text, stored.get(column))
        folder = self.folders["attribute"]
        attributes = stored.get("attributes", {})
        by_fold = dict(zip(folder.fold_all((n,) for n in attributes), attributes, strict=True))
        for name, value in session.attributes.items():
            stored_name = by_fold.get(folder.fold((name,)))
            theirs = attributes.get(stored_name)
            if value != theirs:
                differences[ATTRIBUTE_PREFIX + name] = (value, theirs)
            elif stored_name is not None:
                note_match(report, session.record, [ATTRIBUTE_PREFIX + name], (name,), (stored_name,), folder)
        return differences

    def _rows(self, sessions: list[_Session]) -> list[Batch]:
        """The rows of every session table, as tuples: the session's key, then the table's own columns."""
        m = self.module
        key = (*self.subject_key, self.identity)

        def batch(table: Any, *own: str) -> Batch:
            return Batch(table, (*key, *own), [], [])

        session, zone, experimenter, project, directory, note, attribute, state = batches = [
            batch(m.Session, self.secondary),
            batch(m.SessionTimezone, "session_timezone"),
            batch(m.SessionExperimenter, self.experimenter_attr),
            batch(m.ProjectSession, self.project_attr),
            batch(m.SessionDirectory, "session_dir"),
            batch(m.SessionNote, "session_note"),
            batch(m.Session.Attribute, "attribute_name", "attribute_value"),
            batch(m.SessionStatus, "session_status", "status_set_time", "status_set_by", "status_reason"),
        ]
        stamp = status.server_stamp(m.Session.connection) if any(s.status for s in sessions) else None
        secondary, key_of = self.secondary, operator.itemgetter(*key)
        for s in sessions:
            k, record = key_of(s.key), s.record
            session.rows.append((*k, s.fields.get(secondary)))
            session.records.append(record)
            if s.zone is not None:
                zone.rows.append((*k, s.zone))
                zone.records.append(record)
            for name in s.experimenters or ():
                experimenter.rows.append((*k, name))
                experimenter.records.append(record)
            for name in s.projects or ():
                project.rows.append((*k, name))
                project.records.append(record)
            if s.session_dir is not None:
                directory.rows.append((*k, s.session_dir))
                directory.records.append(record)
            if s.note is not None:
                note.rows.append((*k, s.note))
                note.records.append(record)
            for name, value in s.attributes.items():
                attribute.rows.append((*k, name, value))
                attribute.records.append(record)
            if s.status is not None and stamp is not None:
                state.rows.append((*k, s.status, *stamp, ""))
                state.records.append(record)
        return batches if state.rows else batches[:-1]  # status rows only where the input has a status column
