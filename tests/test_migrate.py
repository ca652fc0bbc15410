"""migrate(): schemas written by the published element (DataJoint 0.14) upgraded in place, nothing lost.

The published element ran only on MySQL-family servers, so the legacy schemas are built and
migrated where the test server is MariaDB/MySQL. On PostgreSQL this module collects, instead,
the tests of what ``migrate`` says there: that there is nothing to migrate. The backend is known
before collection (``DJ_BACKEND``, as in conftest.py), so each backend collects only the tests
that apply to it; none is skipped.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable

import datajoint as dj
import pytest

from element_session import cli as command
from element_session.doctor import diagnose
from element_session.migrate import MigrationError, migrate
from element_session.upgrade import indexes, steps
from tests.legacy import (
    LAYOUTS,
    MODULES,
    LegacySchemas,
    assert_same,
    build_legacy,
    data_snapshot,
    legacy_blob,
    legacy_contents,
    snapshot,
)

BACKEND = os.environ.get("DJ_BACKEND", "mysql")


def mysql_family(test: Callable) -> Callable | None:
    """Collect ``test`` only where the server is MariaDB/MySQL, the only home of legacy schemas."""
    return test if BACKEND == "mysql" else None


def postgresql(test: Callable) -> Callable | None:
    """Collect ``test`` only where the server is PostgreSQL."""
    return test if BACKEND == "postgresql" else None


@pytest.fixture
def legacy(connection, prefix) -> Callable[[str], tuple[LegacySchemas, object]]:
    """Build legacy lab, subject and session schemas of a layout, under the run's prefix."""

    def build(layout: str):
        return build_legacy(connection, f"{prefix}lg{secrets.token_hex(3)}_", layout)

    return build


def snapshot_all(connection, schemas: LegacySchemas) -> dict:
    return {db: snapshot(connection, db) for db in (schemas.lab, schemas.subject, schemas.session)}


def cli(argv: list[str]) -> int:
    return command.main(argv)


# -- A child interpreter activates the element on the migrated schema --------------------------------
# (this process's session_with_datetime is bound to the pipeline fixture's schema)

ACTIVATE = """
import datajoint as dj
from element_session import {module} as session
from element_session.migrate import migrate
from tests.legacy import LegacySchemas, check_read_back, legacy_contents, legacy_linking_module

schemas = LegacySchemas({lab!r}, {subject!r}, {session!r})
linking = legacy_linking_module(schemas, {style!r})
session.activate(schemas.session, linking_module=linking)
contents = legacy_contents({layout!r})
"""

READ_BACK = """
check_read_back(session, contents)
joined = (session.SessionExperimenter * linking.Experimenter).to_dicts()
people = {{row["user"]: row["user_fullname"] for row in joined}}
assert people == {{"alice": "Alice Archer", "bjørn": "Bjørn Ødegård 🧑‍🔬", "chen": "陈 静"}}, people
assert len(session.Session * linking.Subject) == len(contents.sessions)
assert len(session.ProjectSession * linking.Project) == len(contents.project_sessions)
print("read back:", {{name: len(rows) for name, rows in contents.by_table().items()}})
print("after activation up to date:", migrate(schemas.session).up_to_date)
"""

NEW_SESSION_AND_POPULATE = """
import datetime as dt
import pathlib
import numpy as np
from element_session import paths
from tests.legacy import assert_same

born = dt.date(2024, 1, 2)
linking.Subject.insert1(dict(subject="N-07", subject_nickname="Neu 🐁", sex="F", subject_birth_date=born))
key = dict(subject="N-07", {new_key})
blob = {{"w": np.eye(3), "tags": ["neu", "🐁"], "n": 7}}
session.Session.insert1(dict(key, {new_secondary}))
session.Session.Attribute.insert1(dict(key, attribute_name="kernel", attribute_blob=blob))
session.SessionExperimenter.insert1(dict(key, user="bjørn"))
session.SessionNote.insert1(dict(key, session_note="nouvelle séance 🎉"))
session.SessionDirectory.insert1(dict(key, session_dir="N-07/new session"))
session.ProjectSession.insert1(dict(key, project="vision"))
session.SessionTimezone.insert1(dict(key, session_timezone="Europe/Berlin"))
assert_same((session.Session.Attribute & key).to_dicts()[0]["attribute_blob"], blob)
assert (session.SessionNote & key).to_dicts()[0]["session_note"] == "nouvelle séance 🎉"
assert len(session.Session()) == len(contents.sessions) + 1

root = pathlib.Path({root!r})
for row in session.SessionDirectory().to_dicts():
    directory = root / row["session_dir"]
    directory.mkdir(parents=True)
    (directory / "ephys.dat").write_bytes(b"0123456789")
    (directory / "meta.json").write_text("{{}}")
paths.set_root_dirs([root])
from workflow import inventory
inventory.activate({inventory!r}, session_module=session)
inventory.SessionInventory.populate()
inventory.FileTypeSummary.populate()
inventory_rows = inventory.SessionInventory().to_dicts()
assert len(inventory_rows) == len(contents.sessions) + 1
assert all(row["file_count"] == 2 and row["total_bytes"] == 12 for row in inventory_rows)
assert len(inventory.SessionInventory & key) == 1
types = {{(row["file_type"], row["file_count"]) for row in inventory.FileTypeSummary.FileType().to_dicts()}}
assert types == {{("dat", 1), ("json", 1)}}, types
print("populated:", len(inventory_rows))
"""


def activate_in_child(
    run_python, schemas: LegacySchemas, layout: str, body: str, style: str = "virtual", **values
) -> str:
    code = ACTIVATE.format(
        style=style,
        module=MODULES[LAYOUTS[layout][0]],
        lab=schemas.lab,
        subject=schemas.subject,
        session=schemas.session,
        layout=layout,
    )
    return run_python(code + body.format(**values)).stdout


# -- MariaDB / MySQL -------------------------------------------------------------------------------


@mysql_family
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_dry_run_reports_the_changes_and_changes_nothing(legacy, connection, layout):
    schemas, _ = legacy(layout)
    before = snapshot_all(connection, schemas)
    report = migrate(schemas.session, dry_run=True)
    after = snapshot_all(connection, schemas)
    assert after == before
    assert report.variant == MODULES[LAYOUTS[layout][0]]
    assert report.applied == 0 and not report.up_to_date
    described = [str(change) for change in report.changes]
    assert (
        described[0]
        == "session__attribute: mark attribute_blob as <blob> (DataJoint-serialised objects), data unchanged"
    )
    assert ("session: add column session_id (int32, nullable; existing sessions get NULL)" in described) == (
        layout == "datetime-no-id"
    )
    assert ("session: make session_datetime nullable, data unchanged" in described) == (
        layout == "id-datetime-required"
    )
    assert ("session: mark session_id as int32, data unchanged" in described) == (layout != "datetime-no-id")
    for where in (f"`{schemas.lab}`.~lineage", f"`{schemas.subject}`.~lineage", "~lineage"):
        assert f"{where}: create DataJoint 2.x's lineage table" in " ".join(described)
    text = str(report)
    assert "Dry run: nothing was changed." in text
    assert "before 0.2.0" in text if layout == "datetime-no-id" else "before 0.2.0" not in text
    assert "session_timezone (new in this project) is created, empty, by the first activate()" in text


@mysql_family
@pytest.mark.parametrize(
    ("layout", "style"), [*((layout, "virtual") for layout in LAYOUTS), ("id", "declared"), ("datetime", "declared")]
)
def test_migrated_schema_reads_back_exactly_through_the_element(legacy, connection, run_python, layout, style):
    """Upstream tables linked as virtual modules of the legacy schemas, or as minimal declared classes."""
    schemas, contents = legacy(layout)
    rows_before = data_snapshot(connection, schemas.session)
    report = migrate(schemas.session)
    assert report.applied == len(report.changes) > 0
    rows_after = data_snapshot(connection, schemas.session)
    if layout == "datetime-no-id":  # the one added column reads NULL; every other value is as it was
        assert [row[:-1] for row in rows_after.pop("session")] == rows_before.pop("session")
        assert {row[-1] for row in snapshot(connection, schemas.session)["session"][1]} == {None}
    assert rows_after == rows_before
    out = activate_in_child(run_python, schemas, layout, READ_BACK, style)
    assert f"'Session.Attribute': {len(contents.attributes)}" in out
    assert "after activation up to date: True" in out


@mysql_family
def test_second_run_changes_nothing_and_says_so(legacy, connection):
    schemas, _ = legacy("datetime-no-id")
    first = migrate(schemas.session)
    migrated = snapshot_all(connection, schemas)
    second = migrate(schemas.session)
    assert snapshot_all(connection, schemas) == migrated
    assert first.changes and second.up_to_date and second.changes == [] and second.applied == 0
    assert "is already in the current layout of session_with_datetime: nothing to change" in str(second)
    assert migrate(schemas.session, dry_run=True).up_to_date


@mysql_family
def test_schema_declared_by_this_project_needs_nothing(pipeline, prefix, connection):
    before = snapshot(connection, prefix + "session")
    report = migrate(prefix + "session")
    assert report.up_to_date and report.variant == "session_with_datetime"
    assert snapshot(connection, prefix + "session") == before


def _extra_table(connection, s: LegacySchemas) -> None:
    connection.query(f"CREATE TABLE `{s.session}`.`my_analysis` (x int NOT NULL, PRIMARY KEY (x))")


def _missing_table(connection, s: LegacySchemas) -> None:
    connection.query(f"DROP TABLE `{s.session}`.`session_note`")


def _renamed_column(connection, s: LegacySchemas) -> None:
    connection.query(f"ALTER TABLE `{s.session}`.`session_directory` CHANGE `session_dir` `dir` varchar(256) NOT NULL")


def _other_blob_type(connection, s: LegacySchemas) -> None:
    connection.query(f"ALTER TABLE `{s.session}`.`session__attribute` MODIFY `attribute_blob` mediumblob")


def _foreign_blob(connection, s: LegacySchemas) -> None:
    connection.query(
        f"UPDATE `{s.session}`.`session__attribute` SET attribute_blob = %s WHERE attribute_name = 'gain'",
        args=(b"\x89PNG\r\n\x1a\n not a DataJoint blob",),
    )


REFUSALS = {
    "extra table": (_extra_table, "tables the published element does not declare: `my_analysis`"),
    "missing table": (_missing_table, "missing tables of the published element: `session_note`"),
    "renamed column": (_renamed_column, "`session_directory` has columns the published element does not declare: dir"),
    "other blob type": (_other_blob_type, "`session__attribute`.attribute_blob is mediumblob, expected longblob"),
    "foreign blob": (_foreign_blob, r"holds 6 value\(s\) not serialised by DataJoint"),
}


@mysql_family
@pytest.mark.parametrize("case", list(REFUSALS))
@pytest.mark.parametrize("dry_run", [False, True])
def test_unrecognised_schema_is_refused_with_no_change(legacy, connection, case, dry_run):
    schemas, _ = legacy("datetime")
    alter, message = REFUSALS[case]
    alter(connection, schemas)
    before = snapshot_all(connection, schemas)
    with pytest.raises(MigrationError, match=message) as err:
        migrate(schemas.session, dry_run=dry_run)
    assert "nothing was changed" in str(err.value)
    assert snapshot_all(connection, schemas) == before


@mysql_family
def test_a_schema_of_another_kind_is_refused(legacy, connection, capsys):
    schemas, _ = legacy("id")
    before = snapshot_all(connection, schemas)
    with pytest.raises(MigrationError, match=f"schema `{schemas.lab}` is not a session schema") as err:
        migrate(schemas.lab)
    assert "missing tables of the published element: `project_session`, `session`" in str(err.value)
    assert cli(["migrate", "--schema", schemas.subject]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"element-session: schema `{schemas.subject}` is not a session schema" in captured.err
    assert snapshot_all(connection, schemas) == before


@mysql_family
def test_failure_part_way_leaves_a_usable_schema_and_a_second_run_finishes(legacy, connection, run_python, monkeypatch):
    schemas, contents = legacy("datetime-no-id")
    rows_before = data_snapshot(connection, schemas.session)
    planned = [str(change) for change in migrate(schemas.session, dry_run=True).changes]
    apply = steps.apply

    def fail_at_session_id(conn, change):
        if change.description.startswith("add column session_id"):
            raise RuntimeError("simulated: the server went away")
        apply(conn, change)

    monkeypatch.setattr(steps, "apply", fail_at_session_id)
    with pytest.raises(MigrationError, match=f"step 2 of {len(planned)} failed") as err:
        migrate(schemas.session)
    monkeypatch.undo()
    assert "run the migration again: it continues from where it stopped" in str(err.value)
    report = err.value.report
    assert report.applied == 1
    assert f"Changed (1 of {len(planned)}):\n  1. {planned[0]}\nNot applied:\n  2. {planned[1]}" in str(report)
    # usable as it is: every value in place, blobs already decoded by DataJoint 2.x
    assert data_snapshot(connection, schemas.session) == rows_before
    attributes = dj.FreeTable(connection, f"`{schemas.session}`.`session__attribute`").to_dicts()
    written = {row["attribute_name"] + repr(row["session_datetime"]): row for row in contents.attributes}
    for row in attributes:
        assert_same(
            row["attribute_blob"], written[row["attribute_name"] + repr(row["session_datetime"])]["attribute_blob"]
        )
    # recognised, and the plan is what was left
    assert [str(change) for change in migrate(schemas.session, dry_run=True).changes] == planned[1:]
    finished = migrate(schemas.session)
    assert finished.applied == len(planned) - 1
    assert migrate(schemas.session).up_to_date
    assert "after activation up to date: True" in activate_in_child(run_python, schemas, "datetime-no-id", READ_BACK)


@mysql_family
def test_lineage_is_rewritten_in_one_transaction(legacy, connection, monkeypatch):
    schemas, _ = legacy("id")
    migrate(schemas.session)
    lineage = f"`{schemas.session}`.`~lineage`"
    connection.query(f"UPDATE {lineage} SET lineage = 'stale.origin.user' WHERE attribute_name = 'user'")
    stale = sorted(connection.query(f"SELECT * FROM {lineage}").fetchall())
    plan = migrate(schemas.session, dry_run=True).changes
    assert [str(change) for change in plan] == [
        "~lineage: record the origin of 15 key attributes for DataJoint 2.x's joins (one transaction)"
    ]

    def broken_insert(*args, **kwargs):
        raise RuntimeError("simulated: insert failed after the delete")

    monkeypatch.setattr("datajoint.lineage.insert_lineages", broken_insert)
    with pytest.raises(MigrationError, match="step 1 of 1 failed"):
        migrate(schemas.session)
    monkeypatch.undo()
    assert sorted(connection.query(f"SELECT * FROM {lineage}").fetchall()) == stale  # the delete was rolled back
    assert migrate(schemas.session).applied == 1
    user = connection.query(f"SELECT lineage FROM {lineage} WHERE attribute_name = 'user'").fetchone()[0]
    assert user == f"{schemas.lab}.#user.user"


@mysql_family
@pytest.mark.parametrize(
    ("layout", "new_key", "new_secondary"),
    [
        ("datetime-no-id", "session_datetime=dt.datetime(2025, 6, 7, 8, 9, 10)", "session_id=42"),
        ("id-datetime-required", "session_id=77", "session_datetime=None"),
    ],
)
def test_new_sessions_insert_after_migration_and_populate_covers_old_and_new(
    legacy, run_python, prefix, tmp_path, layout, new_key, new_secondary
):
    schemas, contents = legacy(layout)
    migrate(schemas.session)
    out = activate_in_child(
        run_python,
        schemas,
        layout,
        NEW_SESSION_AND_POPULATE,
        new_key=new_key,
        new_secondary=new_secondary,
        root=str(tmp_path / "raw"),
        inventory=schemas.session + "_inventory",
    )
    assert f"populated: {len(contents.sessions) + 1}" in out


@mysql_family
def test_command_line_dry_run_then_migrate(legacy, connection, capsys):
    schemas, _ = legacy("datetime")
    before = snapshot_all(connection, schemas)
    assert cli(["migrate", "--schema", schemas.session, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Would change (" in out and "Dry run: nothing was changed." in out
    assert snapshot_all(connection, schemas) == before
    assert cli(["migrate", "--schema", schemas.session]) == 0
    assert "Changed (" in capsys.readouterr().out
    assert cli(["migrate", "--schema", schemas.session]) == 0
    assert "nothing to change" in capsys.readouterr().out


def test_legacy_blob_encoder_matches_datajoint_reader():
    """The fixture's encoder writes what DataJoint's reader decodes (both protocols, compressed or not)."""
    from datajoint.blob import unpack

    for index, (_, _, value) in enumerate(row for row in _all_attribute_values() if row[2] is not None):
        blob = legacy_blob(value)
        assert blob[:4] in (b"mYm\0", b"dj0\0") or blob[:6] == b"ZL123\0"
        assert_same(unpack(blob), value, f"value {index}")
    headers = {legacy_blob(value)[:6] for *_, value in _all_attribute_values() if value is not None}
    assert {h[:4] for h in headers} >= {b"mYm\0", b"dj0\0", b"ZL12"}


def _all_attribute_values():
    for layout in ("datetime", "id"):
        for row in legacy_contents(layout).attributes:
            yield row["attribute_name"], row["attribute_value"], row["attribute_blob"]


# -- Both backends ----------------------------------------------------------------------------------


def test_a_schema_that_does_not_exist_is_refused(connection, prefix, capsys):
    name = prefix + "no_such_schema"
    with pytest.raises(MigrationError, match=f"schema `{name}` does not exist on the {BACKEND} server"):
        migrate(name)
    assert cli(["migrate", "--schema", name, "--dry-run"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert name not in dj.list_schemas()


def _drop_start_time_index(connection, schema: str) -> None:
    """Make ``schema``.session as a release before the start-time index declared it."""
    if BACKEND == "postgresql":
        connection.query(f'DROP INDEX "{schema}"."idx_session_session_datetime"')
        connection.query(f'DROP INDEX "{schema}"."{indexes.ORDER_INDEX}"')  # what activation adds there
    else:
        connection.query(f"ALTER TABLE `{schema}`.`session` DROP INDEX `session_datetime`")


def test_the_start_time_index_is_declared_reported_missing_and_added(pipeline, prefix, connection, command):
    """A schema declared before ``index(session_datetime)``: doctor notes it, migrate adds it, then all is clean."""
    schema = prefix + "session"
    rows = len(pipeline.session.Session())
    assert not indexes.missing(connection, schema)  # declared with it
    _drop_start_time_index(connection, schema)
    try:
        assert indexes.missing(connection, schema)
        (finding,) = [f for f in diagnose(schema) if f.check == "index"]
        assert (finding.severity, finding.items) == ("note", ("session.session_datetime",))
        assert finding.fix == f"element-session migrate --schema {schema}"
        status, out, _ = command("doctor", "--schema", schema)
        assert status == 0 and "index" in out and "no index leading with session_datetime" in out
        dry = migrate(schema, dry_run=True)
        assert [str(c) for c in dry.changes][-1].startswith("session: add an index on session_datetime")
        assert indexes.missing(connection, schema)  # a dry run changes nothing
        done = migrate(schema)
        assert done.applied == len(done.changes) >= 1
        assert "add an index on session_datetime" in str(done)
    finally:
        if indexes.missing(connection, schema):
            indexes.changes(connection, schema)[0].run(connection)
    assert not indexes.missing(connection, schema)
    assert [f for f in diagnose(schema) if f.check == "index"] == []
    assert migrate(schema).up_to_date and len(pipeline.session.Session()) == rows


# -- PostgreSQL ----------------------------------------------------------------------------------------


@postgresql
@pytest.mark.parametrize("dry_run", [False, True])
def test_on_postgresql_there_is_nothing_to_migrate(pipeline, prefix, connection, dry_run):
    report = migrate(prefix + "session", dry_run=dry_run)
    assert report.backend == "postgresql" and report.up_to_date and report.applied == 0
    assert str(report).startswith(f"Nothing to migrate on postgresql: schema `{prefix}session` was not written")
    assert "ran only on MySQL/MariaDB servers" in str(report)


@postgresql
def test_command_on_postgresql_says_there_is_nothing_to_migrate(pipeline, prefix, capsys):
    assert cli(["migrate", "--schema", prefix + "session"]) == 0
    captured = capsys.readouterr()
    assert "Nothing to migrate on postgresql" in captured.out
    assert captured.err == ""
