"""Typed errors of element-session: each says what was wrong, where, and how to fix it.

Every error the package raises on purpose is defined here (older import paths re-export them)::

    ElementSessionError
    ├── UsageError                   a command-line or API argument that cannot be used
    │   ├── PipelineImportError      the pipeline module cannot be imported
    │   └── PopulateError            populate/jobs: a table name, restriction or worker option
    ├── LinkingModuleError           activate(): the linking module lacks an upstream table
    ├── ActivationError              activate() again under another name; a name or type the server cannot hold
    ├── LocalServerError             the private test/demo server cannot be set up or reached
    ├── SessionDirectoryError        a session directory that is not a valid relative path
    │   └── DirectoryNotFoundError   (also FileNotFoundError) found under no root directory
    ├── SessionNotFoundError         (also LookupError) no session matches a key or path
    ├── InvalidStatusTransitionError a session's status cannot move to the state asked for
    ├── InputError                   (also ValueError) invalid input data, with its InputProblems
    │   ├── ConflictError            an input key stored with different content
    │   │   └── BundleConflictError  a bundle's row stored in the target with different values
    │   │   └── SessionLockedError   an edit of a session that passed QC (reopen it first)
    │   └── DatabaseRefusedError     input the database refused although it passed the checks
    ├── TimeError                    (also ValueError) a time that cannot be read or stored exactly
    ├── FormatError                  a stored value that an output format cannot hold
    ├── MigrationError               a schema not migrated (missing, unrecognised, a step failed)
    ├── BundleError                  a transfer bundle that cannot be imported (unreadable, changed, newer)
    │   └── BundleMismatchError      a target table lacks a bundle's table or column, or types it differently
    ├── NwbUnavailableError          (also ImportError) pynwb is not installed
    ├── NwbExportError               a session that cannot be written as NWB
    ├── OutputExistsError            (also FileExistsError) an output file exists, --overwrite not given
    ├── LoginRequiredError           web interface: a request without a login (HTTP 401)
    │   └── LoginRefusedError        web interface: the database refused the account and password
    ├── CsrfError                    web interface: a form posted without its CSRF token (HTTP 403)
    ├── DatabaseUnreachableError     (also ConnectionError) the server cannot be reached
    ├── PermissionDeniedError        (also PermissionError) the account may not do what was asked
    └── DatabaseBusyError            a deadlock or lock timeout that persists after retries

    CollationWarning (a UserWarning) activate(): key columns compare text by a non-binary collation
    NativeTypeWarning (a UserWarning) activate_downstream(): definitions use MySQL-native types
    DandiWarning (a UserWarning)      write_nwb(): the file lacks what the DANDI archive requires
    HistoryOffWarning (a UserWarning) activate(): the account may not create triggers: no history
    Terminated (a KeyboardInterrupt)  SIGTERM, raised where it arrives so that clean-up runs as for Ctrl-C

The command line maps these classes to exit statuses in one place (``element_session.cli.exit_status``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os


class ElementSessionError(Exception):
    """Base class of every error this package raises on purpose."""


class UsageError(ElementSessionError):
    """Raised for an argument or option value that cannot be used (the message names it)."""


class PipelineImportError(UsageError, ImportError):
    """Raised when the pipeline module named by ``--pipeline`` (or ``pipeline=``) cannot be imported."""


class LinkingModuleError(ElementSessionError):
    """Raised by ``activate()`` when the linking module lacks an upstream table it must provide."""


class ActivationError(ElementSessionError):
    """Raised when a schema cannot be activated: again under another name, a name or a type the server cannot hold."""


class ElementSessionWarning(UserWarning):
    """Base of the product's warnings; the command line shows each as one line ``element-session: warning: ...``."""


class CollationWarning(ElementSessionWarning):
    """Warned once by ``activate()`` when key columns compare text by a collation that is not binary."""


class NativeTypeWarning(ElementSessionWarning):
    """Warned once by ``activate_downstream()`` when definitions use MySQL-native types the server holds."""


class DandiWarning(ElementSessionWarning):
    """Warned by ``write_nwb()`` (``export-nwb``) when the file lacks what the DANDI archive requires."""


class HistoryOffWarning(ElementSessionWarning):
    """Warned once by ``activate()`` when the account may not create the history's triggers: history is off."""


class LocalServerError(ElementSessionError):
    """Raised when a private local database server cannot be set up, started or reached."""


class SessionDirectoryError(ElementSessionError):
    """Raised for a session directory that is not a valid path relative to a root data directory."""


class DirectoryNotFoundError(SessionDirectoryError, FileNotFoundError):
    """Raised when a session's directory exists under none of the root data directories."""


class SessionNotFoundError(ElementSessionError, LookupError):
    """Raised when no session matches a key or a path."""


class InvalidStatusTransitionError(ElementSessionError):
    """Raised when a session's status cannot move to the state asked for; nothing was changed.

    ``session`` (the key), ``current``, ``asked`` and ``allowed`` (the states reachable from ``current``)
    say which; the message names them all.
    """

    def __init__(self, session: dict, current: str, asked: str, allowed: tuple[str, ...]) -> None:
        self.session, self.current, self.asked, self.allowed = session, current, asked, allowed
        shown = ", ".join(f"{k}={v if isinstance(v, str) else readable(v)}" for k, v in session.items())
        reachable = ", ".join(allowed) or "none: it is final"
        super().__init__(
            f"session {shown} is {current!r}: it cannot become {asked!r} (from {current!r} it can become: {reachable})"
        )


#: Sources of problems in what was asked for rather than in data written, as a message names them:
#: a function's arguments, a populate/jobs restriction, a command's options (the column is the
#: option as typed, ``--status``), a web request's query string.
_REQUEST_SOURCES = {
    "arguments": "the arguments",
    "restriction": "the restriction",
    "options": "the options",
    "query": "the query",
}
#: The sources of :attr:`InputError.in_arguments`: what a command line's options gave.
_ARGUMENT_SOURCES = ("arguments", "restriction", "options")


class InputError(ElementSessionError, ValueError):
    """Raised for invalid input data; names the source, row, column, value and the reason.

    ``problems`` lists every problem found, each an :class:`InputProblem`.
    """

    def __init__(self, problems: list[InputProblem]) -> None:
        self.problems = problems
        lines = [str(p) for p in problems[:50]]
        if len(problems) > 50:
            lines.append(f"... and {len(problems) - 50} more problems")
        sources = {p.source for p in problems}
        if len(sources) == 1 and (source := sources.pop()) in _REQUEST_SOURCES:  # what was asked for, not data
            head = f"{len(problems)} problem(s) in {_REQUEST_SOURCES[source]}"
        else:
            head = f"{len(problems)} problem(s) in the input, nothing was written"
        super().__init__(f"{head}:\n  " + "\n  ".join(lines))

    @property
    def in_arguments(self) -> bool:
        """Whether every problem is in the arguments of a call (a populate restriction included), none in data.

        The command line exits with status 2 (``USAGE``) for such an error, 1 for bad data.
        """
        return bool(self.problems) and all(p.source in _ARGUMENT_SOURCES for p in self.problems)


class ConflictError(InputError):
    """Raised when an input row's key exists in the database with different content."""


class SessionLockedError(ConflictError):
    """Raised for an edit (note, attributes, directory, experimenters, projects) of a ``qc_passed`` session.

    Reopen the session first (``element-session status set ... acquired --reason ...``); nothing was changed.
    """


class DatabaseRefusedError(InputError):
    """Raised when the database refuses input that passed the checks; nothing was written.

    For example a character the column's character set cannot hold, a value too long or out of
    range, a duplicate key, a missing parent row. ``code`` is the server's error (a MySQL error
    number or a PostgreSQL SQLSTATE); ``transient`` says whether a concurrent writer may have caused
    it, so that checking and writing again may succeed.
    """

    def __init__(self, problems: list[InputProblem], code: int | str | None = None, transient: bool = False) -> None:
        super().__init__(problems)
        self.code, self.transient = code, transient


class InputProblem:
    """One problem of the input: where (source, row, column), the value, and why it is wrong."""

    __slots__ = ("column", "reason", "row", "source", "value")

    def __init__(self, source: str, row: int | None, column: str | None, value: object, reason: str) -> None:
        self.source, self.row, self.column, self.value, self.reason = source, row, column, value, reason

    def __str__(self) -> str:
        if self.source == "options":  # the column is the option as typed: --status
            where = self.column or "options"
        else:
            where = self.source + (f", row {self.row}" if self.row is not None else "")
            where += f", column {self.column!r}" if self.column else ""
        if self.value is None:  # nothing given, or no single value to show
            return f"{where}: {self.reason}"
        shown = readable(self.value)
        if len(shown) > 80:  # the message shows the start of a long value; the value itself is kept
            shown = f"{shown[:60]}... ({len(str(self.value))} characters)"
        return f"{where}: {self.reason} (value: {shown})"

    def __repr__(self) -> str:
        return f"InputProblem({self})"


def readable(value: object) -> str:
    """``value`` as a message shows it: text quoted (so that spaces show), times as every output shows
    them (``times.format_time``: a naive datetime here is a stored time, which is UTC), keys as tuples,
    a list as its items joined by commas (``'ada', 'bob'``; ``(none)`` when empty), bytes (a blob) as
    their size and the start of their sha256.
    """
    if isinstance(value, bytes | bytearray | memoryview):  # a blob: its size and a digest, not its bytes
        data = bytes(value)
        return f"{len(data)} bytes (sha256 {hashlib.sha256(data).hexdigest()[:12]})"
    if isinstance(value, dt.datetime):  # with its offset; naive: a stored time, UTC (as times.format_time)
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return "(" + ", ".join(readable(v) for v in value) + ")"
    if isinstance(value, list):
        return ", ".join(readable(v) for v in value) or "(none)"
    if isinstance(value, dict):  # a key: name=value, as formats.key_text shows it, never a datetime's repr
        return "{" + ", ".join(f"{k}={readable(v)}" for k, v in value.items()) + "}"
    return repr(value)


_JSON_WORDS = {"Expecting value": "expecting a value", "Extra data": "more text after the JSON value"}


def not_json(err: json.JSONDecodeError) -> str:
    """Why text is not JSON, and where: ``not JSON: expecting a value at line 1, column 1``."""
    words = _JSON_WORDS.get(err.msg, err.msg[:1].lower() + err.msg[1:])
    return f"not JSON: {words} at line {err.lineno}, column {err.colno}"


def one_problem(source: str, column: str | None, value: object, reason: str, row: int | None = None) -> InputError:
    """An :class:`InputError` of a single problem."""
    return InputError([InputProblem(source, row, column, value, reason)])


#: Reasons that, down a file, come from its header (a misspelt or missing column), not from its rows.
_HEADER_REASONS = ("unknown column", "required value not given")


def raise_if_problems(problems: list[InputProblem], error: type[InputError] = InputError) -> None:
    """Raise ``error`` listing ``problems`` by source and row; a header's problem once per column.

    A column that is unknown, or whose value is missing, in several rows of one source is one
    problem at its first row, whose reason names the other rows (``also rows 3-51``), so that a
    misspelt header does not hide the other problems behind one line per row. Nothing is raised
    when ``problems`` is empty; ``problems`` is sorted in place.

    Raises
    ------
    InputError
        ``error`` (an :class:`InputError` or a subclass), if there is any problem.
    """
    if not problems:
        return
    problems.sort(key=lambda p: (p.source, p.row or 0))
    rows: dict[tuple, list[int]] = {}  # the other rows of a header's problem
    kept_rows: dict[tuple, int] = {}  # its first row
    kept: list[InputProblem] = []
    for problem in problems:
        if problem.row is not None and problem.reason.startswith(_HEADER_REASONS):
            where = (problem.source, problem.column, problem.reason)
            if where in rows:  # the same row again: a problem named at the header (Record.column_problem)
                if problem.row != (rows[where][-1] if rows[where] else kept_rows[where]):  # sorted by row
                    rows[where].append(problem.row)
                continue
            rows[where], kept_rows[where] = [], problem.row
        kept.append(problem)
    for index, problem in enumerate(kept):
        others = rows.get((problem.source, problem.column, problem.reason))
        if others:
            reason = f"{problem.reason} (also row{'s' * (len(others) > 1)} {row_ranges(others)})"
            kept[index] = InputProblem(problem.source, problem.row, problem.column, problem.value, reason)
    raise error(kept)


def row_ranges(rows: list[int], shown: int = 5) -> str:
    """Sorted row numbers as ranges: ``[3, 4, 5, 9]`` -> ``3-5, 9``; after ``shown`` ranges, how many more rows."""
    ranges: list[list[int]] = []
    for row in sorted(rows):
        if ranges and row == ranges[-1][1] + 1:
            ranges[-1][1] = row
        else:
            ranges.append([row, row])
    text = ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in ranges[:shown])
    rest = sum(b - a + 1 for a, b in ranges[shown:])
    return text + (f" and {rest} more" if rest else "")


class DatabaseUnreachableError(ElementSessionError, ConnectionError):
    """Raised when the database server cannot be reached; names host and port, never the password."""


class PermissionDeniedError(ElementSessionError, PermissionError):
    """Raised when the database account may not do what was asked (e.g. a read-only account writing)."""


class DatabaseBusyError(ElementSessionError):
    """Raised when a deadlock or a lock wait timeout persists after retries; nothing was written, try again."""

    transient = True


class TimeError(ElementSessionError, ValueError):
    """Raised for a time that cannot be read (``times.read_time``) or stored exactly; the message says why."""


class FormatError(ElementSessionError):
    """Raised when a stored value cannot be written in the output format asked for (the message says which)."""


class PopulateError(UsageError):
    """Raised for a pipeline module, table name or worker option that populate cannot use."""


class MigrationError(ElementSessionError):
    """Raised when a schema is not migrated: missing, unrecognised, or a step failed (see ``report``)."""

    def __init__(self, message: str, report: object | None = None) -> None:
        super().__init__(message)
        self.report = report  # the MigrationReport so far, where there is one


class NwbUnavailableError(ElementSessionError, ImportError):
    """Raised by the NWB export when pynwb is not installed."""


class NwbExportError(ElementSessionError):
    """Raised when a session cannot be written as NWB (no start time, a path that cannot be written, bad arguments)."""


class LoginRequiredError(ElementSessionError):
    """Raised by the web interface for a request without a login (HTTP 401, or the login page for a browser)."""


class LoginRefusedError(LoginRequiredError):
    """Raised by the web interface when the database refuses a login's account name and password (HTTP 401)."""


class CsrfError(ElementSessionError):
    """Raised by the web interface for a form posted without the session's CSRF token (HTTP 403)."""


class OutputExistsError(ElementSessionError, FileExistsError):
    """Raised when an output file (``path``) exists and replacing it was not asked for (``--overwrite``)."""

    def __init__(self, path: os.PathLike | str) -> None:
        super().__init__(
            f"{path} exists and was left as it is: give --overwrite to replace it (overwrite=True in Python)"
        )
        self.path = path


class BundleError(ElementSessionError):
    """Raised when a transfer bundle cannot be imported: unreadable or truncated, changed after export, or
    of a newer format version; ``table`` names the table concerned where there is one."""

    def __init__(self, message: str, table: str | None = None) -> None:
        super().__init__(message)
        self.table = table


class BundleMismatchError(BundleError):
    """Raised when a target table is missing, or lacks or types differently a column of the bundle's table."""

    def __init__(self, message: str, table: str, column: str | None = None) -> None:
        super().__init__(message, table)
        self.column = column


#: One conflict of a bundle's row with the target: table (the bundle's role), key, column, stored and bundled value.
Conflict = tuple[str, dict, str, object, object]


class BundleConflictError(ConflictError):
    """Raised when a bundle's rows are stored in the target with other values: every conflict found, each naming
    table, key, column and both values (``conflicts``; the attributes ``table``, ``key``, ``column``,
    ``stored`` and ``bundled`` are the first one's)."""

    def __init__(self, conflicts: list[Conflict]) -> None:
        super().__init__([
            InputProblem(table, None, column, None,
                         f"key {readable(key)} stored with {column} = {_shortened(stored)}, the bundle has "
                         f"{_shortened(bundled)}")
            for table, key, column, stored, bundled in conflicts
        ])  # fmt: skip
        self.conflicts = conflicts
        self.table, self.key, self.column, self.stored, self.bundled = conflicts[0]


def _shortened(value: object, width: int = 80) -> str:
    """``value`` as a message shows it, cut to about ``width`` characters (a blob's bytes can be long)."""
    shown = readable(value)
    return shown if len(shown) <= width else f"{shown[: width - 20]}... ({len(shown)} characters)"


#: The ``SystemExit`` code of a populate worker process stopped by SIGTERM: its own handler's, and DataJoint's
#: during a key (the same words).
WORKER_TERMINATED = "SIGTERM received"


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM, so that it stops as for Ctrl-C.

    A KeyboardInterrupt (not an ``Exception``), so that ``except Exception`` blocks do not swallow it
    and every clean-up written for Ctrl-C runs; the command line exits with 143 (128 + SIGTERM).
    """
