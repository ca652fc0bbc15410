"""Legacy databases as they are: ``doctor`` finds the hazards, ``migrate`` converts latin1 and fixes dependents.

The fixture is a 0.14-era lab database in ``latin1`` (lab, subject and session schemas, text such
as ``°``, ``½``, ``ü``, ``Ø`` and the en dash) with a downstream schema laid out like element-array-ephys's
(blob columns without markers, native numeric types, DataJoint 0.14's ``~jobs``). Character sets
are a MySQL/MariaDB matter: on PostgreSQL this module collects only what ``doctor`` says there.
"""

from __future__ import annotations

import json
import os
import secrets

import datajoint as dj
import pytest

from element_session import charsets
from element_session.cli import ExitStatus
from element_session.doctor import Finding, diagnose, format_findings, has_hazards
from element_session.errors import MigrationError
from element_session.migrate import migrate
from element_session.upgrade import steps
from tests.legacy import (
    LegacySchemas,
    assert_same,
    build_legacy,
    create_downstream,
    snapshot,
)

BACKEND = os.environ.get("DJ_BACKEND", "mysql")


def only(backend: str):
    """Collect a test only where the server is ``backend`` (known before collection, as in conftest.py)."""
    return lambda test: test if backend == BACKEND else None


@pytest.fixture
def latin1(connection, prefix):
    """A latin1 legacy database: lab, subject, session (datetime layout) and a downstream ``ephys`` schema."""

    def build(charset: str | None = "latin1"):
        base = f"{prefix}dr{secrets.token_hex(3)}_"
        schemas, contents = build_legacy(connection, base, "datetime", charset)
        downstream = create_downstream(connection, schemas, contents, base + "ephys", charset)
        return schemas, contents, base + "ephys", downstream

    return build


def _all(schemas: LegacySchemas, ephys: str) -> list[str]:
    return [schemas.lab, schemas.subject, schemas.session, ephys]


def rows(connection, dbs: list[str]) -> dict:
    """Every row of every table of ``dbs`` as the driver decodes it (text as str, blobs as bytes)."""
    return {(db, table): data for db in dbs for table, (_, data) in snapshot(connection, db).items()}


def rows_of(connection, dbs: list[str], before: dict) -> dict:
    """The rows now of the tables in ``before`` (tables added since, such as ``~lineage``, left out)."""
    now = rows(connection, dbs)
    return {name: now.get(name) for name in before}


def everything(connection, dbs: list[str]) -> dict:
    """DDL and rows of every table of ``dbs``: proof that nothing changed."""
    return {db: snapshot(connection, db) for db in dbs}


def foreign_keys(connection, dbs: list[str]) -> set[tuple]:
    marks = ", ".join(["%s"] * len(dbs))
    return set(
        connection.query(
            "SELECT k.table_schema, k.table_name, k.constraint_name, k.ordinal_position, k.column_name, "
            "k.referenced_table_schema, k.referenced_table_name, k.referenced_column_name, r.update_rule, "
            "r.delete_rule FROM information_schema.key_column_usage k "
            "JOIN information_schema.referential_constraints r ON r.constraint_schema = k.constraint_schema "
            "AND r.table_name = k.table_name "
            f"AND r.constraint_name = k.constraint_name WHERE k.table_schema IN ({marks})",
            args=tuple(dbs),
        ).fetchall()
    )


def charsets_of(connection, dbs: list[str]) -> set[tuple]:
    """(schema default collation, every table's collation, every text column's collation)."""
    marks = ", ".join(["%s"] * len(dbs))
    found = set(
        connection.query(
            f"SELECT default_collation_name FROM information_schema.schemata WHERE schema_name IN ({marks})",
            args=tuple(dbs),
        ).fetchall()
    )
    found |= set(
        connection.query(
            f"SELECT table_collation FROM information_schema.tables WHERE table_schema IN ({marks})", args=tuple(dbs)
        ).fetchall()
    )
    found |= set(
        connection.query(
            f"SELECT collation_name FROM information_schema.columns WHERE table_schema IN ({marks}) "
            "AND collation_name IS NOT NULL",
            args=tuple(dbs),
        ).fetchall()
    )
    return {value for (value,) in found}


def summary(findings: list[Finding], schemas: LegacySchemas, ephys: str) -> set[tuple]:
    names = {schemas.lab: "lab", schemas.subject: "subject", schemas.session: "session", ephys: "ephys", "": "server"}
    return {(names[f.schema], f.check, f.severity, f.count) for f in findings}


BEFORE = {
    ("lab", "charset", "hazard", 3),  # #user, #project, ~log
    ("lab", "lineage", "hazard", 2),
    ("subject", "charset", "hazard", 2),
    ("subject", "lineage", "hazard", 1),
    ("session", "charset", "hazard", 7),
    ("session", "blob-marker", "hazard", 1),
    ("session", "lineage", "hazard", 15),
    ("session", "native-type", "note", 1),
    ("session", "index", "note", 1),  # the start-time index of this release (upgrade/indexes.py)
    ("ephys", "charset", "hazard", 4),  # _recording, _recording__channel, ~jobs, ~log
    ("ephys", "blob-marker", "hazard", 2),
    ("ephys", "lineage", "hazard", 7),
    ("ephys", "jobs-table", "note", 1),
    ("ephys", "native-type", "note", 3),
}
AFTER = {("ephys", "jobs-table", "note", 1), ("ephys", "native-type", "note", 3)}

NEW_TEXT = "新しい 🧪 emoji, Ελληνικά, עברית, 𠜎 and ½ °C"


# -- MariaDB / MySQL -------------------------------------------------------------------------------------


@only("mysql")
def test_doctor_reports_every_hazard_with_counts_and_changes_nothing(latin1, connection):
    schemas, _, ephys, _ = latin1()
    before = everything(connection, _all(schemas, ephys))
    findings = diagnose(schemas.session)
    assert everything(connection, _all(schemas, ephys)) == before
    assert summary(findings, schemas, ephys) == BEFORE
    assert has_hazards(findings)
    blob = next(f for f in findings if f.schema == ephys and f.check == "blob-marker")
    assert blob.items == ("_recording__channel.trace (12 values)", "_recording.channel_map (6 values)")
    assert blob.fix == f"element-session migrate --schema {schemas.session} --dependents"
    charset = next(f for f in findings if f.schema == schemas.session and f.check == "charset")
    assert "session_note (latin1)" in charset.items and charset.what.endswith("(schema default latin1)")
    assert json.loads(format_findings(findings, schemas.session, "json"))[0]["schema"] == schemas.lab
    text = format_findings(findings, schemas.session)
    assert text.startswith(f"10 hazards for DataJoint 2.x in `{schemas.session}`") and "(4 notes)" in text


@only("mysql")
def test_doctor_reports_non_binary_collations_and_reservations_of_a_014_worker(latin1, connection):
    schemas, _, ephys, _ = latin1(charset=None)
    migrate(schemas.session, dependents=True)
    connection.query(
        f"ALTER TABLE `{schemas.session}`.`session_note` MODIFY `session_note` varchar(1024) "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL"
    )
    connection.query(
        f"INSERT INTO `{ephys}`.`~jobs` (table_name, key_hash, status) VALUES ('_recording', %s, 'reserved')",
        args=("1" * 32,),
    )
    before = everything(connection, _all(schemas, ephys))
    findings = diagnose(schemas.session)
    assert everything(connection, _all(schemas, ephys)) == before
    assert {(f.schema, f.check, f.severity, f.count) for f in findings if f.severity == "hazard"} == {
        (schemas.session, "collation", "hazard", 1),
        (ephys, "jobs-table", "hazard", 2),  # one reservation, one old error
    }
    collation = next(f for f in findings if f.check == "collation")
    assert collation.items == ("session_note.session_note (utf8mb4_general_ci)",)
    jobs = next(f for f in findings if f.check == "jobs-table")
    assert jobs.what == "DataJoint 0.14's ~jobs (1 error, 1 reserved), which DataJoint 2.x ignores"
    assert jobs.fix == "stop every DataJoint 0.14 worker first"


@only("mysql")
def test_doctor_finds_nothing_in_a_schema_this_project_declared(pipeline, prefix):
    findings = diagnose(prefix + "session")
    assert not has_hazards(findings), format_findings(findings, prefix + "session")


@only("mysql")
def test_the_order_of_work_on_a_legacy_latin1_database(latin1, connection, command, run_python):
    """docs/upgrade.md, section 2: doctor, migrate --dry-run, migrate (--dependents), doctor clean."""
    schemas, contents, ephys, downstream = latin1()
    dbs = _all(schemas, ephys)
    keys, values, before = foreign_keys(connection, dbs), rows(connection, dbs), everything(connection, dbs)
    assert len(keys) > 10 and charsets_of(connection, dbs) >= {"latin1_swedish_ci"}

    status, out, err = command("doctor", "--schema", schemas.session)
    assert status == 1, err
    assert "10 hazards" in out and f"{ephys} blob-marker" in out
    status, out, err = command("doctor", "--schema", schemas.session, "--format", "json")
    assert status == 1 and summary([Finding(**{**f, "items": tuple(f["items"])}) for f in json.loads(out)],
                                   schemas, ephys) == BEFORE  # fmt: skip

    status, out, err = command("migrate", "--schema", schemas.session, "--dry-run", "--dependents")
    assert status == 0, err
    for table in ("#user", "subject", "session_note", "~log", "_recording", "~jobs"):
        assert f"`.`{table}`: convert from latin1 to utf8mb4 (utf8mb4_bin)" in out
    assert "Dry run: nothing was changed." in out
    assert everything(connection, dbs) == before

    status, out, err = command("migrate", "--schema", schemas.session)
    assert status == 1 and out == ""
    assert f"the foreign key `{ephys}`.`_recording` (subject, session_datetime) -> `{schemas.session}`.`session`" in err
    assert "add --dependents" in err and "nothing was changed" in err
    assert everything(connection, dbs) == before

    status, out, err = command("migrate", "--schema", schemas.session, "--dependents")
    assert status == 0, err
    assert rows_of(connection, dbs, values) == values  # every decoded value identical, blobs byte for byte
    assert foreign_keys(connection, dbs) == keys  # every foreign key as it was
    assert charsets_of(connection, dbs) == {"utf8mb4_bin"}  # schema defaults, tables (~lineage too), columns
    assert not connection.query(
        "SELECT 1 FROM information_schema.tables WHERE table_name = %s", args=(charsets.BOOKKEEPING_TABLE,)
    ).fetchone()

    status, out, err = command("doctor", "--schema", schemas.session)
    assert status == 0, out + err
    assert out.startswith(f"No hazards for DataJoint 2.x in `{schemas.session}`") and "(2 notes)" in out
    assert summary(diagnose(schemas.session), schemas, ephys) == AFTER
    assert migrate(schemas.session, dependents=True).up_to_date

    # new text of any script is stored exactly, through plain SQL and through the element
    connection.query(
        f"UPDATE `{schemas.lab}`.`#user` SET user_fullname = %s WHERE user = 'chen'", args=(NEW_TEXT,)
    )  # fmt: skip
    assert connection.query(f"SELECT user_fullname FROM `{schemas.lab}`.`#user` WHERE user = 'chen'").fetchone() == (
        NEW_TEXT,
    )
    out = run_python(
        READ_BACK.format(lab=schemas.lab, subject=schemas.subject, session=schemas.session, ephys=ephys, new=NEW_TEXT)
    ).stdout
    assert "read back: 6 sessions, 6 recordings, new note stored exactly" in out
    del contents, downstream


READ_BACK = """
import datajoint as dj
import numpy as np
from element_session import session_with_datetime as session
from tests.legacy import (LegacySchemas, assert_same, check_read_back, create_downstream, downstream_rows,
                          legacy_contents, legacy_linking_module)

schemas = LegacySchemas({lab!r}, {subject!r}, {session!r})
linking = legacy_linking_module(schemas)
session.activate(schemas.session, linking_module=linking)
contents = legacy_contents("datetime", "latin1")
check_read_back(session, contents)
ephys = dj.VirtualModule("ephys", {ephys!r})
expected = downstream_rows(contents, "latin1")
for table, name in ((ephys.Recording, "_recording"), (ephys.Recording.Channel, "_recording__channel")):
    got = sorted(table().to_dicts(), key=repr)
    want = sorted(expected[name], key=repr)
    assert len(got) == len(want), name
    for a, b in zip(got, want):
        for attribute, value in b.items():
            assert_same(a[attribute], value, f"{{name}} {{attribute}}")
key = dict(contents.sessions[0])
key.pop("session_id")
(session.SessionNote & key).delete_quick()
session.SessionNote.insert1(dict(key, session_note={new!r}))
assert (session.SessionNote & key).fetch1("session_note") == {new!r}
print(f"read back: {{len(session.Session())}} sessions, {{len(ephys.Recording())}} recordings, new note stored exactly")
"""


def _compact_long_key(connection, schemas: LegacySchemas) -> list[str]:
    """A varchar(256) key in a table of MySQL 5.6's COMPACT rows: 1024 bytes in utf8mb4, over its 767."""
    table = f"`{schemas.session}`.`session_directory`"
    connection.query(f"ALTER TABLE {table} ROW_FORMAT=COMPACT, ADD UNIQUE INDEX dir (session_dir)")
    return [
        f"{table}: the server refuses the conversion: Index column size too large. The maximum column size is 767",
        "index dir over (session_dir: 256 characters) needs 1024 bytes in utf8mb4",
    ]


def _invalid_bytes(connection, schemas: LegacySchemas) -> list[str]:
    connection.query(
        f"CREATE TABLE `{schemas.lab}`.`#rig` (rig varchar(16) NOT NULL, label varchar(16) CHARACTER SET ascii, "
        "PRIMARY KEY (rig)) ENGINE=InnoDB"
    )
    for rig, label in (("r1", b"ok"), ("r2", b"caf\xe9"), ("r3", b"\xff\xfe")):
        connection.query(f"INSERT INTO `{schemas.lab}`.`#rig` VALUES (%s, _binary %s)", args=(rig, label))
    return [
        f"`{schemas.lab}`.`#rig`.label: 2 value(s) are not valid ascii text and would change (become '?') in "
        "utf8mb4; rows: rig='r2'; rig='r3'"
    ]


@only("mysql")
@pytest.mark.parametrize("damage", [_compact_long_key, _invalid_bytes], ids=["index-length", "invalid-bytes"])
def test_a_conversion_that_would_lose_data_is_refused_before_anything_changes(latin1, connection, damage):
    schemas, _, ephys, _ = latin1()
    messages = damage(connection, schemas)
    dbs = _all(schemas, ephys)
    before = everything(connection, dbs)
    for dry_run in (True, False):
        with pytest.raises(MigrationError, match="nothing was changed") as err:
            migrate(schemas.session, dry_run=dry_run, dependents=True)
        assert all(message in str(err.value) for message in messages), str(err.value)
        assert everything(connection, dbs) == before


@only("mysql")
def test_an_interrupted_conversion_resumes_and_restores_every_foreign_key(latin1, connection, monkeypatch):
    schemas, _, ephys, _ = latin1()
    dbs = _all(schemas, ephys)
    keys, values = foreign_keys(connection, dbs), rows(connection, dbs)
    apply = steps.apply

    def fail_at_session(conn, change):
        if change.table == f"`{schemas.session}`.`session`" and change.description.startswith("convert"):
            raise RuntimeError("simulated: the server went away")
        apply(conn, change)

    monkeypatch.setattr(steps, "apply", fail_at_session)
    with pytest.raises(MigrationError, match="run the migration again: it continues from where it stopped"):
        migrate(schemas.session, dependents=True)
    monkeypatch.undo()
    dropped = keys - foreign_keys(connection, dbs)
    assert dropped, "the foreign keys over text columns were dropped for the conversion"
    saved = charsets.saved_foreign_keys(connection, schemas.session)
    assert {fk.name for fk in saved} == {row[2] for row in dropped}

    resume = migrate(schemas.session, dry_run=True)
    assert resume.found == "a character-set conversion that was interrupted part-way"
    assert f"`{schemas.session}`.`session`: convert from latin1" in str(resume)
    assert str(resume.changes[-1]).endswith("drop the bookkeeping table")

    report = migrate(schemas.session, dependents=True)
    assert report.applied == len(report.changes)
    assert foreign_keys(connection, dbs) == keys
    assert rows_of(connection, dbs, values) == values
    assert charsets_of(connection, dbs) == {"utf8mb4_bin"}
    assert not has_hazards(diagnose(schemas.session))


@only("mysql")
def test_a_dependent_that_cannot_be_migrated_safely_is_reported_and_left_unchanged(latin1, connection):
    schemas, contents, ephys, _ = latin1(charset=None)  # utf8mb4: no conversion couples the schemas
    connection.query(
        f"UPDATE `{ephys}`.`_recording` SET channel_map = %s LIMIT 1", args=(b"\x89PNG not a DataJoint blob",)
    )
    before = everything(connection, [ephys])
    report = migrate(schemas.session, dependents=True)
    assert everything(connection, [ephys]) == before
    assert any(
        note.startswith(f"dependent schema `{ephys}` is left unchanged: `{ephys}`.`_recording`.channel_map holds 1")
        for note in report.notes
    ), report.notes
    found = {(f.schema, f.check) for f in diagnose(schemas.session) if f.severity == "hazard"}
    assert found == {(ephys, "blob-marker"), (ephys, "lineage")}
    attributes = dj.FreeTable(connection, f"`{schemas.session}`.`session__attribute`").to_dicts()
    written = {(row["session_datetime"], row["attribute_name"]): row["attribute_blob"] for row in contents.attributes}
    for row in attributes:  # the session schema itself was migrated: its blobs decode
        expected = written[(row["session_datetime"], row["attribute_name"])]
        if expected is None:
            assert row["attribute_blob"] is None
        else:
            assert_same(row["attribute_blob"], expected)


@only("mysql")
def test_dependents_are_marked_without_rewriting_a_value(latin1, connection):
    schemas, contents, ephys, downstream = latin1(charset=None)
    before = rows(connection, [ephys])
    checksums = connection.query(f"CHECKSUM TABLE `{ephys}`.`_recording`, `{ephys}`.`_recording__channel`").fetchall()
    migrate(schemas.session, dependents=True)
    assert rows_of(connection, [ephys], before) == before
    assert connection.query(f"CHECKSUM TABLE `{ephys}`.`_recording`, `{ephys}`.`_recording__channel`").fetchall() == (
        checksums
    )
    channels = dj.FreeTable(connection, f"`{ephys}`.`_recording__channel`").to_dicts()
    written = {(row["session_datetime"], row["channel"]): row["trace"] for row in downstream["_recording__channel"]}
    for row in channels:
        expected = written[(row["session_datetime"], row["channel"])]
        if expected is None:
            assert row["trace"] is None
        else:
            assert_same(row["trace"], expected)
    assert summary(diagnose(schemas.session), schemas, ephys) == AFTER
    del contents


# -- PostgreSQL -----------------------------------------------------------------------------------------


@only("postgresql")
def test_doctor_on_postgresql_has_nothing_to_find(pipeline, prefix, command):
    assert diagnose(prefix + "session") == []
    status, out, err = command("doctor", "--schema", prefix + "session")
    assert status == 0, err
    assert out.startswith(f"No hazards for DataJoint 2.x in `{prefix}session`")


def test_doctor_refuses_a_schema_that_does_not_exist(connection, prefix, command):
    with pytest.raises(MigrationError, match=f"schema `{prefix}nothing_here` does not exist on the {BACKEND} server"):
        diagnose(prefix + "nothing_here")
    status, out, err = command("doctor", "--schema", prefix + "nothing_here", "--format", "json")
    assert (status, out) == (ExitStatus.INVALID, "") and "nothing_here` does not exist" in err


def test_doctor_unreachable_exits_3(command):
    status, out, err = command("doctor", "--schema", "anything", env={"DJ_PORT": "9"}, child=True)
    assert (status, out) == (ExitStatus.UNREACHABLE, "") and ":9" in err and "Traceback" not in err
