"""Upgrade, in place, a session schema that the published element-session declared on DataJoint 0.14.

The published element (0.1.x and 0.2.0) ran on DataJoint 0.14, which wrote plain MySQL types:
its ``attribute_blob`` is a ``longblob`` holding DataJoint-serialised objects but carries no
``:<blob>:`` marker, so DataJoint 2.x would hand back raw bytes. :func:`migrate` recognises such a
schema (either variant, with or without the ``session_id`` that releases before 0.2.0 lacked),
plans what it must change, and applies the plan one atomic statement at a time:

0. tables of the session schema and its upstream schemas that are not ``utf8mb4`` converted to
   ``utf8mb4_bin``, each decoded value kept (:mod:`element_session.charsets`);
1. type markers in column comments: ``:<blob>:`` on ``attribute_blob`` (found with
   ``datajoint.migrate.analyze_blob_columns``), ``:int32:`` on ``session_id``;
2. the layout of the current release: ``session_id`` added to the datetime variant where it is
   missing, ``session_datetime`` made nullable in the id variant where it is not;
3. the ``~lineage`` table DataJoint 2.x uses for semantic joins, traced through the foreign keys
   to the lab's own upstream tables (legacy ones included);
4. the index leading with ``session_datetime`` of the datetime variant's ``session``
   (:mod:`element_session.upgrade.indexes`), which schemas declared before it lack: on
   PostgreSQL too, the one step there.

With ``dependents=True`` the schemas that depend on the session schema get the metadata-only
fixes after these: ``:<blob>:`` markers, ``~lineage`` and (in step 0) the character set.

No statement deletes a stored value or changes a decoded one. MySQL DDL is not transactional, so the steps are
ordered instead: each is atomic, each leaves a schema this module recognises and the element
reads, and every run plans from the state it finds, so running again after a failure finishes the
job and running again after success changes nothing. The ``session_timezone`` table of this
project is not created here: the first ``activate()`` of the element creates it, empty.

See ``docs/upgrade.md`` for what a lab runs, in order, and what to back up first.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass, field

import datajoint as dj

from ..database import translate
from ..errors import MigrationError
from . import charsets, indexes, steps
from .catalog import Column, Table, dependent_schemas, read_tables, upstream_schemas
from .lineage import lineage_changes, recorded_lineage
from .steps import Change
from .steps import quote as _quote
from .steps import statement as _statement

__all__ = ["Change", "MigrationError", "MigrationReport", "migrate"]


@dataclass
class MigrationReport:
    """What :func:`migrate` found in a schema, what it changes there, and how far it got."""

    schema: str
    backend: str
    variant: str | None = None  # "session_with_datetime" or "session_with_id"
    found: str = ""  # the layout recognised, in words
    changes: list[Change] = field(default_factory=list)
    applied: int = 0  # how many of ``changes`` were applied, in order
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        """Whether the schema needed no change."""
        return not self.changes

    def __str__(self) -> str:
        if self.backend != "mysql" and self.up_to_date:
            return (
                f"Nothing to migrate on {self.backend}: schema `{self.schema}` was not written by the published "
                "element, which ran only on MySQL/MariaDB servers; DataJoint 2.x declared it in this project's layout."
            )
        lines = [f"Schema `{self.schema}`: {self.found}."]
        numbered = [f"  {number}. {change}" for number, change in enumerate(self.changes, 1)]
        if self.up_to_date:
            lines.append(f"It is already in the current layout of {self.variant}: nothing to change.")
        elif self.dry_run:
            lines += [f"Would change ({len(self.changes)}):", *numbered, "Dry run: nothing was changed."]
        else:
            lines += [f"Changed ({self.applied} of {len(self.changes)}):", *numbered[: self.applied]]
            if self.applied < len(self.changes):
                lines += ["Not applied:", *numbered[self.applied :]]
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)


# -- Recognising the published layout ------------------------------------------------------------

#: Tables of the published element and what each holds beyond the session's key: where an upstream
#: table's key goes ("before"/"after" the session's key, or None), own key columns, and secondary
#: columns, each as (type, nullable).
_CHILDREN: dict[str, tuple[str | None, dict[str, str], dict[str, tuple[str, bool]]]] = {
    "session__attribute": (
        None,
        {"attribute_name": "varchar(32)"},
        {"attribute_value": ("varchar(2000)", False), "attribute_blob": ("longblob", True)},
    ),
    "session_directory": (None, {}, {"session_dir": ("varchar(256)", False)}),
    "session_experimenter": ("after", {}, {}),
    "session_note": (None, {}, {"session_note": ("varchar(1024)", False)}),
    "project_session": ("before", {}, {}),
}
#: Tables of this project that the published layout lacks; the element's activation creates them.
_NEW_TABLES: dict[str, tuple[str | None, dict[str, str], dict[str, tuple[str, bool]]]] = {
    "session_timezone": (None, {}, {"session_timezone": ("varchar(64)", False)}),
    "session_status": (
        None,
        {},
        {
            "session_status": ("varchar(16)", False),
            "status_set_time": ("datetime(6)", False),
            "status_set_by": ("varchar(255)", False),
            "status_reason": ("varchar(1024)", False),
        },
    ),
}
_VARIANT_KEY = {"session_datetime": "session_with_datetime", "session_id": "session_with_id"}


@dataclass
class _Recognised:
    variant: str
    key: tuple[str, ...]  # the primary key of ``session``
    tables: dict[str, Table]  # the element's tables
    hidden: set[str]  # tables whose names start with ~
    found: str


def _recognise(schema: str, all_tables: dict[str, Table]) -> _Recognised:
    """The variant and tables of a session schema of the published element; MigrationError otherwise."""
    hidden = {name for name in all_tables if name.startswith("~")}
    tables = {name: table for name, table in all_tables.items() if name not in hidden}
    problems: list[str] = []
    unknown = sorted(set(tables) - {"session", *_CHILDREN, *_NEW_TABLES})
    if unknown:
        problems.append("tables the published element does not declare: " + ", ".join(f"`{t}`" for t in unknown))
    missing = sorted({"session", *_CHILDREN} - set(tables))
    if missing:
        problems.append("missing tables of the published element: " + ", ".join(f"`{t}`" for t in missing))
    if "session" not in tables:
        raise _unrecognised(schema, problems)
    session = tables["session"]
    key, variant, found = _check_session(session, problems)
    if key:
        for name, spec in {**_CHILDREN, **_NEW_TABLES}.items():
            if name in tables:
                _check_child(schema, tables[name], session, key, spec, problems)
    if problems:
        raise _unrecognised(schema, problems)
    return _Recognised(variant, key, tables, hidden, found)


def _unrecognised(schema: str, problems: list[str]) -> MigrationError:
    return MigrationError(
        f"schema `{schema}` is not a session schema of the published element-session that this command "
        "recognises, so nothing was changed:\n  - "
        + "\n  - ".join(problems)
        + "\nThe command migrates only the layout of element-session 0.1.x/0.2.0 (docs/upgrade.md lists it)."
    )


def _check_session(session: Table, problems: list[str]) -> tuple[tuple[str, ...], str, str]:
    """The session key, variant and a description of what was found; problems appended."""
    if len(session.foreign_keys) != 1:
        problems.append(f"`session` has {len(session.foreign_keys)} foreign keys, expected one (to Subject)")
        return (), "", ""
    subject_key = session.foreign_keys[0].columns
    key = session.primary_key
    if key[: len(subject_key)] != subject_key or len(key) != len(subject_key) + 1 or key[-1] not in _VARIANT_KEY:
        problems.append(
            f"`session` has primary key ({', '.join(key)}), expected Subject's key "
            f"({', '.join(subject_key)}) followed by session_datetime or session_id"
        )
        return (), "", ""
    variant = _VARIANT_KEY[key[-1]]
    own = {name: column for name, column in session.columns.items() if name not in subject_key}
    if variant == "session_with_datetime":
        _check_column(session, "session_datetime", "datetime", False, problems)
        if "session_id" in own:
            _check_column(session, "session_id", "int", True, problems)
            found = "a session schema in the layout of the published element (session_with_datetime)"
        else:
            found = "a session schema of a release before 0.2.0 (session_with_datetime, without session_id)"
        allowed = {"session_datetime", "session_id"}
    else:
        _check_column(session, "session_id", "int", False, problems)
        if "session_datetime" not in own:
            problems.append("`session` lacks the column session_datetime of the id variant")
        else:
            _check_column(session, "session_datetime", "datetime", None, problems)
        found = "a session schema in the layout of the published element (session_with_id)"
        allowed = {"session_datetime", "session_id"}
    extra = sorted(set(own) - allowed)
    if extra:
        problems.append("`session` has columns the published element does not declare: " + ", ".join(extra))
    return key, variant, found


def _check_column(table: Table, name: str, column_type: str, nullable: bool | None, problems: list[str]) -> None:
    column = table.columns.get(name)
    if column is None:
        problems.append(f"`{table.name}` lacks the column {name} ({column_type})")
        return
    if column.column_type != column_type:
        problems.append(f"`{table.name}`.{name} is {column.column_type}, expected {column_type}")
    if nullable is not None and column.nullable != nullable:
        problems.append(f"`{table.name}`.{name} is {'' if column.nullable else 'not '}nullable, expected the opposite")


def _check_child(
    schema: str,
    table: Table,
    session: Table,
    key: tuple[str, ...],
    spec: tuple[str | None, dict[str, str], dict[str, tuple[str, bool]]],
    problems: list[str],
) -> None:
    upstream_side, own_key, secondary = spec
    to_session = [fk for fk in table.foreign_keys if fk.parent_schema == schema and fk.parent_table == "session"]
    others = [fk for fk in table.foreign_keys if fk not in to_session]
    if len(to_session) != 1 or to_session[0].columns != key or to_session[0].parent_columns != key:
        problems.append(f"`{table.name}` does not refer to `session` by its key ({', '.join(key)})")
        return
    upstream: tuple[str, ...] = ()
    if upstream_side:
        if len(others) != 1:
            problems.append(f"`{table.name}` has {len(others)} foreign keys besides `session`, expected one")
            return
        upstream = others[0].columns
    elif others:
        problems.append(f"`{table.name}` has foreign keys the published element does not declare")
        return
    expected_key = upstream + key if upstream_side == "before" else key + upstream + tuple(own_key)
    if table.primary_key != expected_key:
        problems.append(
            f"`{table.name}` has primary key ({', '.join(table.primary_key)}), expected ({', '.join(expected_key)})"
        )
    for name in key:
        column = table.columns.get(name)
        if column is None or column.column_type != session.columns[name].column_type:
            problems.append(f"`{table.name}`.{name} does not match `session`.{name}")
    for name, column_type in own_key.items():
        _check_column(table, name, column_type, False, problems)
    for name, (column_type, nullable) in secondary.items():
        _check_column(table, name, column_type, nullable, problems)
    extra = sorted(set(table.columns) - set(expected_key) - set(own_key) - set(secondary))
    if extra:
        problems.append(f"`{table.name}` has columns the published element does not declare: " + ", ".join(extra))


# -- Planning the changes ----------------------------------------------------------------------------

_BLOB_HEADERS = (b"mYm\0", b"dj0\0", b"ZL123\0")


def _modify(schema: str, table: str, column: Column, *, nullable: bool, comment: str, what: str) -> Change:
    """Restate ``column`` with a new comment (and nullability): its type and data are unchanged."""
    if column.has_default:
        raise MigrationError(
            f"`{schema}`.`{table}`.{column.name} has a default value, which the published element never declared "
            "and this command does not restate; nothing was changed"
        )
    null = "NULL DEFAULT NULL" if nullable else "NOT NULL"
    sql = f"ALTER TABLE {_quote(schema)}.{_quote(table)} MODIFY COLUMN {_quote(column.name)} {column.column_type} "
    return Change(table, what, sql + f"{null} COMMENT '{comment}'", _statement(sql + f"{null} COMMENT %s", (comment,)))


def _has_marker(comment: str) -> bool:
    return re.match(r":[^:]+:", comment) is not None


def _plan(connection: dj.Connection, schema: str, found: _Recognised) -> list[Change]:
    """The changes that bring the recognised schema to the current layout, in the order to apply them."""
    session = found.tables["session"]
    # 1. type markers: blob columns as DataJoint's own analysis finds them, then native integers
    changes = _blob_markers(connection, schema, found.tables)
    for table in found.tables.values():
        for column in table.columns.values():
            native_int = column.column_type == "int" and column.name not in table.fk_columns
            if native_int and not _has_marker(column.comment):
                changes.append(
                    _modify(
                        schema,
                        table.name,
                        column,
                        nullable=column.nullable,
                        comment=":int32:" + column.comment,
                        what=f"mark {column.name} as int32, data unchanged",
                    )
                )
    # 2. the current layout
    if found.variant == "session_with_datetime" and "session_id" not in session.columns:
        sql = f"ALTER TABLE {_quote(schema)}.`session` ADD COLUMN `session_id` int NULL DEFAULT NULL COMMENT "
        changes.append(
            Change(
                "session",
                "add column session_id (int32, nullable; existing sessions get NULL)",
                sql + "':int32:optional session number'",
                _statement(sql + "%s", (":int32:optional session number",)),
            )
        )
    if found.variant == "session_with_id" and not session.columns["session_datetime"].nullable:
        column = session.columns["session_datetime"]
        changes.append(
            _modify(
                schema,
                "session",
                column,
                nullable=True,
                comment=column.comment,
                what="make session_datetime nullable, data unchanged",
            )
        )
    # 3. lineage for DataJoint 2.x's semantic joins
    changes += _plan_lineage(connection, schema, found)
    # 4. the start-time index of the current release
    return changes + indexes.changes(connection, schema)


def _blob_markers(connection: dj.Connection, schema: str, tables: dict[str, Table]) -> list[Change]:
    """A ``:<blob>:`` marker for each blob column of ``tables`` that lacks one, its values checked first."""
    from datajoint import migrate as dj_migrate

    changes = []
    for blob in dj_migrate.analyze_blob_columns(types.SimpleNamespace(connection=connection, database=schema)):
        table = blob["table_name"].split(".", 1)[1].strip("`")
        if table in tables and blob["needs_migration"]:
            _check_blob_headers(connection, schema, table, blob["column_name"])
            column = tables[table].columns[blob["column_name"]]
            changes.append(
                _modify(
                    schema,
                    table,
                    column,
                    nullable=column.nullable,
                    comment=":<blob>:" + column.comment,
                    what=f"mark {column.name} as <blob> (DataJoint-serialised objects), data unchanged",
                )
            )
    return changes


def _check_blob_headers(connection: dj.Connection, schema: str, table: str, column: str) -> None:
    """Refuse to mark a blob column whose values are not all in DataJoint's serialisation format."""
    name = _quote(column)
    bad = connection.query(
        f"SELECT COUNT(*) FROM {_quote(schema)}.{_quote(table)} WHERE {name} IS NOT NULL "
        f"AND LEFT({name}, 4) NOT IN (%s, %s) AND LEFT({name}, 6) <> %s",
        args=_BLOB_HEADERS,
    ).fetchone()[0]
    if bad:
        raise MigrationError(
            f"`{schema}`.`{table}`.{column} holds {bad} value(s) not serialised by DataJoint (no mYm, dj0 or ZL123 "
            "header); nothing was changed. Find them with "
            f"SELECT * FROM `{schema}`.`{table}` WHERE LEFT({column}, 3) NOT IN ('mYm', 'dj0', 'ZL1')"
        )


def _plan_lineage(connection: dj.Connection, schema: str, found: _Recognised) -> list[Change]:
    """Lineage of the upstream schemas that have none (parents first), then of the session schema."""
    changes: list[Change] = []
    for upstream in upstream_schemas(connection, schema):
        all_tables = read_tables(connection, upstream)
        if "~lineage" not in all_tables or not recorded_lineage(connection, upstream):
            visible = {name: table for name, table in all_tables.items() if not name.startswith("~")}
            changes += lineage_changes(connection, upstream, visible, exists="~lineage" in all_tables, own=False)
    return changes + lineage_changes(connection, schema, found.tables, exists="~lineage" in found.hidden, own=True)


# -- Running it ----------------------------------------------------------------------------------------


def _plan_dependent(connection: dj.Connection, schema: str, planned: set[str]) -> list[Change]:
    """Blob markers and lineage for a schema that depends on the session schema; MigrationError if unsafe.

    ``planned`` names the schemas whose lineage is already planned; upstream schemas of ``schema``
    not among them get theirs here. Its text must also convert to utf8mb4 without loss.
    """
    problems = charsets.check(connection, charsets.tables_to_convert(connection, schema))
    if problems:
        raise MigrationError(
            "its text cannot be converted to utf8mb4 without loss:\n    - " + "\n    - ".join(problems)
        )
    changes = []
    for db in [*upstream_schemas(connection, schema), schema]:
        if db in planned:
            continue
        planned.add(db)
        all_tables = read_tables(connection, db)
        visible = {name: table for name, table in all_tables.items() if not name.startswith("~")}
        if db == schema:
            changes += _blob_markers(connection, db, visible)
        exists = "~lineage" in all_tables
        if not exists or not recorded_lineage(connection, db):
            scope = " (metadata only: no other table of this schema changes)"
            changes += lineage_changes(connection, db, visible, exists=exists, own=False, scope=scope)
    return changes


def migrate(
    schema_name: str, *, dry_run: bool = False, dependents: bool = False, connection: dj.Connection | None = None
) -> MigrationReport:
    """Upgrade the session schema ``schema_name`` written by the published element, in place.

    Recognises either variant of element-session 0.1.x/0.2.0 (with or without ``session_id``),
    plans the changes listed in the module docstring, and applies them unless ``dry_run``. Tables
    of the session schema and its upstream schemas that are not utf8mb4 are converted to
    ``utf8mb4_bin`` first (:mod:`element_session.charsets`). With ``dependents``, the schemas that
    depend on the session schema get the metadata-only fixes too (blob markers, lineage, character
    set); one that cannot be migrated safely is named in the report's notes and left unchanged. A
    schema already in the current layout is left alone (the report says so), and a schema of
    another layout, or a conversion that would lose data, is refused with :class:`MigrationError`
    before anything changes. If a step fails, the error names it, the steps before it stay applied
    (each is atomic and leaves a usable schema), and running ``migrate`` again completes the rest.

    On PostgreSQL the published element never ran: the one step there is the start-time index of
    a schema declared before this release had it (step 4); without it the report says there is
    nothing to migrate.

    Raises:
        MigrationError: the schema is missing or not recognised, a conversion would lose data, a
            dependent schema blocks the conversion, or a step failed (``err.report`` says how far it got).
    """
    connection = connection or dj.conn()
    backend = connection.adapter.backend
    if not connection.query(connection.adapter.schema_exists_sql(schema_name)).fetchone():
        raise MigrationError(f"schema `{schema_name}` does not exist on the {backend} server; nothing was changed")
    report = MigrationReport(schema_name, backend, dry_run=dry_run)
    if backend != "mysql":
        report.changes = indexes.changes(connection, schema_name)
        report.found = "a session schema declared by DataJoint 2.x"
        report.variant = "session_with_datetime" if report.changes else None
        if not dry_run:
            _apply(connection, report)
        return report
    if connection.in_transaction:
        raise MigrationError("migrate() cannot run inside a transaction: MySQL's DDL would commit it")
    resume = charsets.plan_resume(connection, schema_name)
    if resume:
        report.changes = resume
        if dry_run:
            report.found = "a character-set conversion that was interrupted part-way"
            report.notes.append("the rest of the migration is planned once these steps are applied")
            return report
        _apply(connection, report)
    found = _recognise(schema_name, read_tables(connection, schema_name))
    report.variant, report.found = found.variant, found.found
    group = [*upstream_schemas(connection, schema_name), schema_name]
    later: list[Change] = []
    planned, checked = set(group), []  # checked: the dependents whose text _plan_dependent checked
    for child in dependent_schemas(connection, schema_name) if dependents else []:
        try:
            child_changes = _plan_dependent(connection, child, planned)
        except MigrationError as err:
            report.notes.append(f"dependent schema `{child}` is left unchanged: {err}")
            continue
        later += child_changes
        checked.append(child)
        group += [db for db in [*upstream_schemas(connection, child), child] if db not in group]
    hint = (
        ": its schema is left unchanged (see above)"
        if dependents
        else f": its schema depends on `{schema_name}`: add --dependents (dependents=True) to migrate both in one run"
    )
    conversion, problems = charsets.plan_conversion(connection, group, home=schema_name, hint=hint, checked=checked)
    if problems:
        raise MigrationError(
            "the character sets cannot be converted to utf8mb4 safely; nothing was changed:\n  - "
            + "\n  - ".join(report.notes + problems),
            report,
        )
    report.changes = report.changes[: report.applied] + conversion + _plan(connection, schema_name, found) + later
    if "session_timezone" not in found.tables:
        report.notes.append(
            "session_timezone (new in this project) is created, empty, by the first activate() of "
            f"element_session.{found.variant} on this schema"
        )
    if "~log" in found.hidden:
        report.notes.append("`~log`, DataJoint 0.14's event log, is kept as it is; DataJoint 2.x does not use it")
    if not dry_run:
        _apply(connection, report)
        connection.dependencies.clear()
    return report


def _apply(connection: dj.Connection, report: MigrationReport) -> None:
    """Apply ``report.changes`` from ``report.applied`` on, counting them; MigrationError at the first failure."""
    for number, change in enumerate(report.changes[report.applied :], report.applied + 1):
        try:
            steps.apply(connection, change)
        except Exception as err:
            refused = translate(err)  # a refused privilege or a lost connection: the typed error is the cause
            raise MigrationError(
                f"step {number} of {len(report.changes)} failed ({change}): {refused or err}\n"
                f"Steps 1 to {number - 1} were applied and the schema is usable as it is; nothing of step {number} "
                "or later was applied. Fix the cause and run the migration again: it continues from where it "
                "stopped.",
                report,
            ) from refused or err
        report.applied = number
