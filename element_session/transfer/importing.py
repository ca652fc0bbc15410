"""Import: a bundle checked against the target's tables, then written in one transaction, or not at all.

Before anything is written: the bundle's checksums and format version (:class:`~.bundle.Bundle`),
and each target table's heading against the bundle's columns. Then, in one transaction, each
table's rows in the bundle's (dependency) order: a row whose key is stored with the same values is
counted and left alone; one stored with other values is a conflict, and the transaction is rolled
back; the others are inserted as stored in the bundle (blobs as bytes, not encoded again).
Downstream (Imported/Computed) rows are inserted directly, never recomputed.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from tqdm import tqdm

from .. import status
from .._datajoint_compat import statement_text
from ..database import database_errors, refused
from ..errors import BundleConflictError, BundleMismatchError, Conflict, PermissionDeniedError, UsageError
from ..pipeline import linking_module_of, load, session_module_of
from ..privileges import may
from ..progress import progress_bar
from .bundle import Bundle, Column, TableEntry
from .rows import columns_of, stored_value, tables_by_role

VALUES_PER_QUERY = 1_000  # values of the first key column looked up in the target at a time
ROWS_PER_INSERT = 10_000  # rows of one INSERT statement at most
BYTES_PER_INSERT = 2_000_000  # about this much of values in one INSERT statement (within max_allowed_packet)


@dataclass
class TableCount:
    """One table of an import: rows in the bundle, already present (identical), written."""

    rows: int = 0
    present: int = 0
    written: int = 0


@dataclass
class ImportReport:
    """What an import found and wrote, per table (by role); ``dry_run``: what it would write."""

    path: str
    dry_run: bool = False
    tables: dict[str, TableCount] = field(default_factory=dict)

    @property
    def written(self) -> int:
        """Rows written (with ``dry_run``: that would be written)."""
        return sum(t.written for t in self.tables.values())

    @property
    def present(self) -> int:
        """Rows found already present and identical."""
        return sum(t.present for t in self.tables.values())

    def __str__(self) -> str:
        verb = "would write" if self.dry_run else "wrote"
        lines = [f"{role}: {t.rows} row(s), {t.present} present, {verb} {t.written}" for role, t in self.tables.items()]
        lines.append(f"{verb} {self.written} row(s), {self.present} already present, from {self.path}")
        return "\n".join(lines)


def check_heading(entry: TableEntry, target: Any) -> None:
    """Refuse a target table that lacks a bundle column, types it differently, or needs one the bundle lacks.

    Raises
    ------
    BundleMismatchError
        Naming the table and the column.
    """
    theirs: dict[str, Column] = {c.name: c for c in columns_of(target)}
    where = f"table {entry.role} ({target.full_table_name})"
    for column in entry.columns:
        found = theirs.get(column.name)
        if found is None:
            raise BundleMismatchError(f"{where} has no column {column.name!r} ({column.type})", entry.role, column.name)
        if found.type != column.type or found.in_key != column.in_key:
            raise BundleMismatchError(
                f"{where}: column {column.name!r} is {_described(found)} in the target, {_described(column)} in "
                "the bundle",
                entry.role,
                column.name,
            )
    given = {c.name for c in entry.columns}
    for name, attribute in target.heading.attributes.items():
        if name not in given and not attribute.nullable and attribute.default is None and not attribute.autoincrement:
            raise BundleMismatchError(f"{where} requires column {name!r}, which the bundle lacks", entry.role, name)


def _described(column: Column) -> str:
    return f"{column.type}{' (primary key)' if column.in_key else ''}"


def _same(stored: Any, bundled: Any) -> bool:
    """Whether a stored value equals the bundle's (a number stored as Decimal equals the same int or float)."""
    return stored_value(stored) == bundled


Row = tuple[Any, ...]  # one row's values, in the order of the bundle's columns


def _new_rows(
    entry: TableEntry, target: Any, rows: list[Row], count: TableCount, conflicts: list[Conflict]
) -> list[Row]:
    """The bundle rows not yet in the target; identical ones counted as present; a row whose key is stored
    with other values is added to ``conflicts`` (once per column that differs)."""
    names = [c.name for c in entry.columns]
    at = [names.index(name) for name in entry.primary_key]
    stored = _stored_rows(target, names, at, {row[at[0]] for row in rows})
    if not stored:  # nothing of this table stored yet: every row is new
        return rows
    fresh = []
    for row in rows:
        found = stored.get(tuple(row[i] for i in at))
        if found is None:
            fresh.append(row)
            continue
        differ = [
            (name, mine, theirs)
            for name, mine, theirs in zip(names, found, row, strict=True)
            if not _same(mine, theirs)
        ]
        key = {name: row[i] for name, i in zip(entry.primary_key, at, strict=True)}
        conflicts.extend((entry.role, key, name, mine, theirs) for name, mine, theirs in differ)
        count.present += not differ
    return fresh


def _stored_rows(target: Any, names: list[str], at: list[int], values: set[Any]) -> dict[Row, Row]:
    """The target's rows whose first key column (``names[at[0]]``) has one of ``values``, by key, as stored.

    Rows are tuples of the columns ``names`` (blobs undecoded); keys tuples of the columns at the
    positions ``at``. One query per ``VALUES_PER_QUERY`` values, the values as parameters: a few
    queries where an expression of every key would be long to build and to run.
    """
    connection = target.connection
    quote, mark = connection.adapter.quote_identifier, connection.adapter.parameter_placeholder
    columns = ", ".join(quote(n) for n in names)
    first = quote(names[at[0]])
    found: dict[Row, Row] = {}
    ordered = sorted(values, key=lambda v: (v is None, v))
    for start in range(0, len(ordered), VALUES_PER_QUERY):
        chunk = ordered[start : start + VALUES_PER_QUERY]
        sql = f"SELECT {columns} FROM {target.full_table_name} WHERE {first} IN ({', '.join([mark] * len(chunk))})"
        for row in connection.query(sql, args=chunk).fetchall():
            stored = tuple(stored_value(v) for v in row)
            found[tuple(stored[i] for i in at)] = stored
    return found


def _insert(target: Any, names: list[str], rows: list[Row], per_insert: int, bar: tqdm) -> None:
    """Insert rows as stored values with the connection's own SQL (blobs as their bytes, not encoded again).

    ``per_insert`` rows in each INSERT statement, their values as parameters. MySQL/MariaDB: each
    statement's text is escaped on a second thread while the server works on the one before (the
    driver's escaping is pure Python and costs about as much as a fifth of the server's work;
    socket waits release the GIL), then sent without parameters.
    """
    connection = target.connection
    quote, mark = connection.adapter.quote_identifier, connection.adapter.parameter_placeholder
    columns = ", ".join(quote(n) for n in names)
    one = "(" + ", ".join([mark] * len(names)) + ")"
    chunks = [rows[start : start + per_insert] for start in range(0, len(rows), per_insert)]

    def statement(chunk: list[Row]) -> tuple[str, list[Any]]:
        sql = f"INSERT INTO {target.full_table_name} ({columns}) VALUES " + ", ".join([one] * len(chunk))
        return sql, [value for row in chunk for value in row]

    if connection.adapter.backend != "mysql" or len(chunks) < 2:
        for chunk in chunks:
            sql, args = statement(chunk)
            connection.query(sql, args=args)
            bar.update(len(chunk))
        return

    def text(chunk: list[Row]) -> str:
        return statement_text(connection, *statement(chunk))

    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(text, chunks[0])
        for number, chunk in enumerate(chunks):
            sql = ahead.result()
            if number + 1 < len(chunks):
                ahead = pool.submit(text, chunks[number + 1])
            connection.query(sql.replace("%", "%%"))
            bar.update(len(chunk))


def _rows_per_insert(rows: int, size: int) -> int:
    """Rows in one INSERT of ``rows`` rows of ``size`` bytes of values: about ``BYTES_PER_INSERT`` bytes of them."""
    per_row = max(1, size // max(1, rows))
    return max(1, min(ROWS_PER_INSERT, BYTES_PER_INSERT // per_row))


def _pipeline_of(pipeline: ModuleType | str | None) -> tuple[ModuleType, ModuleType]:
    """The target pipeline module and its session module."""
    if pipeline is None:
        session_module = session_module_of()
        found = linking_module_of(session_module)
        if found is None:
            raise UsageError("the session module is not activated with a linking module: pass pipeline=")
        return found, session_module
    module = load(pipeline)
    candidates = [m for m in vars(module).values() if isinstance(m, ModuleType) and hasattr(m, "Session")]
    session_module = next((m for m in candidates if linking_module_of(m) is module), None) or session_module_of()
    return module, session_module


def import_sessions(
    path: str | os.PathLike | Bundle,
    pipeline: ModuleType | str | None = None,
    *,
    dry_run: bool = False,
    progress: bool | None = False,
) -> ImportReport:
    """Import a bundle into the tables of ``pipeline``: all its rows, or (on any error) none.

    Parameters
    ----------
    path : the bundle (written by :func:`element_session.transfer.export_sessions`), or the
        :class:`~.bundle.Bundle` opened from it (the command opens and checks it before activating
        the pipeline, so that a file that is no bundle creates no schema).
    pipeline : the target pipeline module (or its import path), activated on the target server
        under the target's schema prefix; default: the linking module of the activated session module.
    dry_run : check everything and report what would be written; write no row: the rows are written as
        an import writes them, so that the server checks each (a value it cannot store, a missing
        reference), and rolled back. (The schemas and empty tables of a pipeline activated on a new
        target exist already: activating creates them.)
    progress : show a progress bar on standard error (None: only where it is a terminal).

    Returns
    -------
    ImportReport
        Per table: rows in the bundle, already present, written.

    Raises
    ------
    BundleError
        The bundle is unreadable or truncated, was changed after export (naming the table), or has
        a newer format version.
    BundleMismatchError
        A target table is missing, lacks a column or types it differently (naming table and column).
    BundleConflictError
        A row is stored in the target with other values (naming table, key, column, both values).
    SessionLockedError
        The bundle adds a part (note, attribute, directory, ...) to a session the target holds as
        ``qc_passed`` (naming the session and how to reopen it). Checked by ``dry_run`` too.
    DatabaseUnreachableError, PermissionDeniedError, DatabaseRefusedError
        The target cannot be reached, refuses the account, or refuses a row (``dry_run`` too). Nothing is
        written.
    """
    bundle = path if isinstance(path, Bundle) else Bundle(path)
    module, session_module = _pipeline_of(pipeline)
    report = ImportReport(str(bundle.path), dry_run=dry_run)
    with database_errors():
        targets = tables_by_role(module, session_module)
        work = []
        for entry in bundle.manifest.tables:
            target = targets.get(entry.role)
            if target is None:
                raise BundleMismatchError(
                    f"the target pipeline {module.__name__} has no activated table {entry.role}", entry.role
                )
            check_heading(entry, target)
            rows, size = bundle.rows(entry)
            work.append((entry, target, rows, _rows_per_insert(len(rows), size)))
        connection = session_module.Session.connection
        total = sum(len(rows) for _, _, rows, _ in work)
        with progress_bar(shown=progress, total=total, desc="import", unit="row") as bar:
            try:
                with connection.transaction:  # compared, then written, in one transaction
                    for (entry, target, _, per_insert), fresh in zip(
                        work, _fresh_rows(work, report, session_module, str(bundle.path)), strict=True
                    ):
                        try:
                            _insert(target, [c.name for c in entry.columns], fresh, per_insert, bar)
                        except Exception as err:  # named by the bundle's table, not the target's schema
                            typed = refused(err, source=str(bundle.path), table=entry.role)
                            if typed is None:
                                raise
                            raise typed from None
                        bar.update(report.tables[entry.role].present)
                    if dry_run:  # written as the import writes them, so that the server checks every row
                        raise _DryRun
            except _DryRun:
                pass  # rolled back: no row (and no history row) stays
    return report


class _DryRun(Exception):
    """Raised at the end of a dry run's writes, so that its transaction is rolled back."""


def _fresh_rows(work: list[tuple[TableEntry, Any, list[Row], int]], report: ImportReport, m: ModuleType,
                source: str) -> list[list[Row]]:  # fmt: skip
    """Each table's rows not yet in the target (counted in ``report``), once no part of a locked session is among them.

    Raises
    ------
    BundleConflictError
        Rows stored with other values: every one of the bundle (each table, key and column); a status other
        than ``acquired`` for a session the target holds without a status row (it is ``acquired`` there, and
        a stored session's status is changed by ``status set`` only, as ingest says).
    SessionLockedError
        A new row of a session's part (note, attribute, directory, ...) for a session the target holds
        as ``qc_passed``: as every other path, an import does not edit a session that passed QC.
    PermissionDeniedError
        The account may not insert into a table that has rows to write (the database asked,
        :func:`element_session.privileges.may`).
    """
    found, conflicts = [], list[Conflict]()
    for entry, target, rows, _ in work:
        count = report.tables[entry.role] = TableCount(rows=len(rows))
        fresh = _new_rows(entry, target, rows, count, conflicts)
        count.written = len(fresh)
        found.append(fresh)
    key = m.Session.primary_key
    fresh_of = {entry.role: (entry, fresh) for (entry, *_), fresh in zip(work, found, strict=True)}
    new = set()
    if "session.Session" in fresh_of:
        entry, fresh = fresh_of["session.Session"]
        new = {tuple(row[entry.column_names.index(k)] for k in key) for row in fresh}
    if "session.SessionStatus" in fresh_of:  # a stored session without a status row is acquired (as ingest sees it)
        entry, fresh = fresh_of["session.SessionStatus"]
        at, state = [entry.column_names.index(k) for k in key], entry.column_names.index("session_status")
        conflicts += [
            ("session.SessionStatus", dict(zip(key, session, strict=True)), "session_status", status.DEFAULT_STATUS,
             row[state])
            for row in fresh
            if (session := tuple(row[i] for i in at)) not in new and row[state] != status.DEFAULT_STATUS
        ]  # fmt: skip
    if conflicts:  # every table compared first: one run names them all
        raise BundleConflictError(conflicts)
    edited = set()  # sessions already in the target that the bundle adds parts to
    for role, (entry, fresh) in fresh_of.items():
        if role.startswith("session.") and role not in ("session.Session", "session.SessionStatus"):
            at = [entry.column_names.index(k) for k in key]
            edited |= {session for row in fresh if (session := tuple(row[i] for i in at)) not in new}
    status.check_editable(m, [dict(zip(key, session, strict=True)) for session in sorted(edited)], source)
    for (entry, target, *_), fresh in zip(work, found, strict=True):
        if fresh and not may(target.connection, target, "INSERT"):  # said by the dry run too, before any write
            raise PermissionDeniedError(
                f"the account {target.connection.get_user()} may not insert into {entry.role} "
                f"({target.full_table_name}): {len(fresh)} row(s) of the bundle would be refused"
            )
    return found
