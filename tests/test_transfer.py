"""Sessions moved between servers: export, import and copy, exact, checked first, all or nothing, idempotent.

The source is the run's pipeline; a target is the same pipeline activated under another prefix (a
child process: a module's tables belong to one schema per process), on this server or, for the
cross-backend copy, on a second private server of the other backend.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import datajoint as dj
import numpy as np
import pandas as pd
import pytest

from element_session.errors import BundleConflictError, BundleError, DatabaseRefusedError
from element_session.localdb import database_server
from element_session.query import find_sessions
from element_session.status import status_of
from element_session.transfer import Manifest, export_sessions, import_sessions
from element_session.transfer.bundle import MANIFEST, decode_rows, encode_rows, write_bundle
from element_session.transfer.export import select_rows
from tests.helpers import LAB_TABLES, create_account, drop_account
from tests.transfer_dump import assert_same_content, dump

MAPPING = {1: "one", (2, 3): [4.5, None], "x": {"y": np.int64(7)}}
ARRAY = np.arange(6, dtype=np.float32).reshape(2, 3)


@pytest.fixture(scope="module")
def names(row_prefix):
    p = row_prefix
    return {"subjects": [f"{p}m1", f"{p}m2"], "people": [f"{p}ada", f"{p}zoë🐭"], "projects": [f"{p}maps"]}


@pytest.fixture(scope="module")
def source(pipeline, names):
    """Three sessions with every kind of stored value; some without directory, note, zone or project."""
    from tests.helpers import add_references, remove_references

    m1, m2 = names["subjects"]
    ada, zoe = names["people"]
    add_references(pipeline, names["subjects"], names["people"], names["projects"])
    s = pipeline.session
    k1 = {"subject": m1, "session_datetime": dt.datetime(2024, 3, 10, 9, 8, 7)}
    k2 = {"subject": m1, "session_datetime": dt.datetime(2024, 3, 11, 23, 59, 59)}
    k3 = {"subject": m2, "session_datetime": dt.datetime(1999, 12, 31, 0, 0, 1)}
    s.Session.insert([{**k1, "session_id": 1}, {**k2, "session_id": None}, {**k3, "session_id": 3}])
    for row in (
        {**k1, "attribute_name": "array", "attribute_blob": ARRAY},
        {**k1, "attribute_name": "mapping", "attribute_blob": MAPPING},
        {**k1, "attribute_name": "text", "attribute_value": "🐭 café"},
        {**k2, "attribute_name": "when", "attribute_value": "2024-03-11T23:59:59.123456+01:00"},
    ):
        s.Session.Attribute.insert1(row)
    s.SessionDirectory.insert1({**k1, "session_dir": f"{m1}/2024-03-10"})
    s.SessionNote.insert1({**k1, "session_note": "first one 🐭, fine"})
    s.SessionTimezone.insert([{**k1, "session_timezone": "Europe/Berlin"}, {**k2, "session_timezone": "+02:00"}])
    s.SessionExperimenter.insert([{**k1, "user": ada}, {**k1, "user": zoe}, {**k3, "user": ada}])
    s.ProjectSession.insert([{**k1, "project": names["projects"][0]}, {**k2, "project": names["projects"][0]}])
    yield pipeline
    remove_references(pipeline, names["subjects"], names["people"], names["projects"])


@pytest.fixture
def bundle(source, names, tmp_path) -> Path:
    path = tmp_path / "sessions.zip"
    export_sessions(path, source.session, subject=names["subjects"])
    return path


def run_child(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def target_dump(
    env: dict[str, str],
    tmp_path: Path,
    subjects: list[str],
    downstream: bool = False,
    pipeline: str = "workflow.pipeline",
) -> dict:
    out = tmp_path / f"dump-{os.urandom(4).hex()}.pickle"
    done = run_child(env, "-m", "tests.transfer_dump", str(out), str(int(downstream)), pipeline, *subjects)
    assert done.returncode == 0, done.stderr
    return pickle.loads(out.read_bytes())  # noqa: S301 (written by the test's own child)


def row_counts(pipeline, prefix: str, target_prefix: str) -> dict[str, int]:
    """The rows of each session and reference table of the pipeline activated under ``target_prefix``."""
    import datajoint as dj

    connection = pipeline.session.Session.connection
    counts = {}
    for role, table in select_tables(pipeline).items():
        database = target_prefix + table.database[len(prefix) :]
        name = connection.adapter.make_full_table_name(database, table.table_name)
        counts[role] = len(dj.FreeTable(connection, name))
    return counts


def select_tables(pipeline) -> dict:
    return {
        c.role: c.table for c in select_rows(pipeline.session, pipeline, pipeline.session.Session(), downstream=True)
    }


# --------------------------------------------------------------------------- the bundle


def test_the_bundle_names_tables_by_role_and_describes_itself(bundle, source, names, connection):
    with zipfile.ZipFile(bundle) as z:
        manifest = Manifest.from_json(z.read(MANIFEST))
        files = set(z.namelist())
    roles = [t.role for t in manifest.tables]
    assert roles.index("subject.Subject") < roles.index("session.Session") < roles.index("session.Session.Attribute")
    assert {"lab.User", "lab.Project", "session.SessionNote", "session.ProjectSession"} <= set(roles)
    assert not any(r.startswith("inventory.") for r in roles)  # only with --downstream
    assert manifest.format_version == 1 and manifest.source_backend == connection.adapter.backend
    assert manifest.account and manifest.selection == {"subject": names["subjects"]}
    rows = {t.role: t.rows for t in manifest.tables}
    assert rows["session.Session"] == 3 and rows["subject.Subject"] == 2 and rows["lab.User"] == 2
    assert rows["session.Session.Attribute"] == 4 and rows["lab.Project"] == 1
    assert {t.file for t in manifest.tables} | {MANIFEST} == files
    attribute = next(t for t in manifest.tables if t.role == "session.Session.Attribute")
    assert {c.name: c.type for c in attribute.columns}["attribute_blob"] == "<blob>"
    # readable without this product: Parquet, blobs as the bytes DataJoint stored
    with zipfile.ZipFile(bundle) as z:
        stored = pd.read_parquet(io.BytesIO(z.read(attribute.file)))
    assert stored["attribute_blob"].dropna().map(type).eq(bytes).all()


# --------------------------------------------------------------------------- same backend, another prefix


def test_import_under_another_prefix_is_exact_and_a_second_import_writes_nothing(
    bundle, source, names, prefix, command, subprocess_env, tmp_path, connection
):
    target = f"{prefix}t1_"
    env = {"DATABASE_PREFIX": target}
    dry = command("import", str(bundle), "--dry-run", child=True, env=env)
    assert dry.status == 0, dry.err
    assert "would write 21 row(s), 0 already present" in dry.out
    created = f"activating the pipeline created the empty schema(s) {target}inventory, {target}lab, {target}session, "
    assert f"element-session: {created}{target}subject (is DATABASE_PREFIX right?)\n" in dry.err  # only these
    assert "created" not in dry.out
    assert set(row_counts(source, prefix, target).values()) == {0}  # a dry run writes no row
    history_table = connection.adapter.make_full_table_name(f"{target}session", "~session_history")
    assert connection.query(f"SELECT COUNT(*) FROM {history_table}").fetchone()[0] == 0  # nor a history row

    first = command("import", str(bundle), child=True, env=env)
    assert first.status == 0, first.err
    assert "wrote 21 row(s), 0 already present" in first.out and "created" not in first.err  # they existed
    fresh = command("import", str(bundle), child=True, env={"DATABASE_PREFIX": f"{prefix}t1n_"})
    assert fresh.status == 0, fresh.err
    assert f"activating the pipeline created the empty schema(s) {prefix}t1n_inventory, " in fresh.err
    assert_same_content(dump(source, names["subjects"]), target_dump(subprocess_env | env, tmp_path, names["subjects"]))

    again = command("import", str(bundle), child=True, env=env)
    assert again.status == 0, again.err
    assert "wrote 0 row(s), 21 already present" in again.out


# --------------------------------------------------------------------------- bad bundles: typed, nothing written


def rewritten(bundle: Path, change) -> Path:
    """A copy of the bundle with ``change(name, data) -> data`` applied to each of its files."""
    out = bundle.with_name("changed.zip")
    with zipfile.ZipFile(bundle) as old, zipfile.ZipFile(out, "w") as new:
        for name in old.namelist():
            new.writestr(name, change(name, old.read(name)))
    return out


def test_a_truncated_bundle_is_refused(bundle, source, prefix, command):
    data = bundle.read_bytes()
    bundle.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="not a complete bundle"):
        import_sessions(bundle, source)
    ran = command("import", str(bundle))
    said = f"element-session: {str(bundle)!r} is not a complete bundle (truncated or not a zip file)\n"
    assert (ran.status, ran.err) == (1, said)  # one sentence, without zipfile's "File is not a zip file"
    sessions = bundle.with_name("mysessions.csv")  # a spreadsheet given to import, as a newcomer may
    sessions.write_text("subject,session_datetime\nm1,2024-02-05T09:30\n")
    ran = command("import", str(sessions), "--dry-run")
    assert (ran.status, ran.err) == (
        1,
        f"element-session: {str(sessions)!r} is not a complete bundle (truncated or not a zip file)\n",
    )
    fresh = f"{prefix}nobundle_"  # on a new prefix: refused before activation would create its schemas
    ran = command("import", str(sessions), child=True, env={"DATABASE_PREFIX": fresh})
    assert ran.status == 1 and "is not a complete bundle" in ran.err and not ran.out
    assert [s for s in dj.list_schemas(source.session.Session.connection) if s.startswith(fresh)] == []
    with pytest.raises(BundleError, match=r"^cannot read the bundle '.*': Is a directory$"):
        import_sessions(bundle.parent, source)


def test_a_damaged_bundle_is_refused_naming_its_file(bundle, source):
    data = bytearray(bundle.read_bytes())
    with zipfile.ZipFile(bundle) as old:
        member = old.getinfo("tables/session.SessionNote.parquet")
    at = member.header_offset + 30 + len(member.filename) + len(member.extra) + member.file_size // 2  # in its data
    data[at] ^= 0xFF
    bundle.write_bytes(data)
    with pytest.raises(
        BundleError, match=r"is not a complete bundle: bad CRC-32 for file 'tables/session\.SessionNote\.parquet'$"
    ):
        import_sessions(bundle, source)


def test_a_changed_row_is_refused_naming_its_table(bundle, source):
    def change(name: str, data: bytes) -> bytes:
        if name != "tables/session.SessionNote.parquet":
            return data
        manifest = Manifest.from_json(zipfile.ZipFile(bundle).read(MANIFEST))
        entry = next(t for t in manifest.tables if t.role == "session.SessionNote")
        rows = decode_rows(data)
        rows[0]["session_note"] = "changed"
        return encode_rows(entry, rows)

    with pytest.raises(BundleError, match=r"session\.SessionNote .* changed after export") as caught:
        import_sessions(rewritten(bundle, change), source)
    assert caught.value.table == "session.SessionNote"


def test_a_newer_format_version_is_refused(bundle, source):
    def change(name: str, data: bytes) -> bytes:
        return json.dumps({**json.loads(data), "format_version": 99}).encode() if name == MANIFEST else data

    with pytest.raises(BundleError, match="format version 99"):
        import_sessions(rewritten(bundle, change), source)


def _manifest_changed(fn):
    def change(name: str, data: bytes) -> bytes:
        if name != MANIFEST:
            return data
        manifest = json.loads(data)
        fn(manifest)
        return json.dumps(manifest).encode()

    return change


@pytest.mark.parametrize(
    ("fn", "said"),
    [
        (lambda m: m.pop("format_version"), "the manifest lacks the field 'format_version'"),
        (lambda m: m.update(format_version=True), "'format_version' is not a whole number (it is true)"),
        (lambda m: m.update(format_version="1"), "'format_version' is not a whole number (it is \"1\")"),
        (lambda m: m.update(format_version=0), "'format_version' is out of range (it is 0)"),
        (lambda m: m.pop("tables"), "the manifest lacks the field 'tables'"),
        (lambda m: m["tables"].__setitem__(0, "x"), "tables[0] is not a JSON object"),
        (lambda m: m["tables"][1].update(columns=None), "tables[1]'s field 'columns' is not a list (it is null)"),
        (lambda m: m["tables"][1].update(rows="x"), "tables[1]'s field 'rows' is not a whole number"),
        (lambda m: m["tables"][1].update(sha256=None), "tables[1]'s field 'sha256' is not text (it is null)"),
        (lambda m: m["tables"][0]["columns"][0].pop("type"), "tables[0].columns[0] lacks the field 'type'"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_malformed_manifest_is_refused_naming_the_field(bundle, source, command, fn, said):
    changed = rewritten(bundle, _manifest_changed(fn))
    with pytest.raises(BundleError) as caught:
        import_sessions(changed, source)
    assert said in str(caught.value) and "object is not" not in str(caught.value)
    ran = command("import", str(changed), "--dry-run")
    assert ran.status == 1 and said in ran.err and "Traceback" not in ran.err


def test_a_bundle_lacking_a_file_is_refused_naming_it(bundle, source):
    with zipfile.ZipFile(bundle) as old, zipfile.ZipFile(bundle.with_name("lacking.zip"), "w") as new:
        for name in old.namelist():
            if name != "tables/session.SessionNote.parquet":
                new.writestr(name, old.read(name))
    with pytest.raises(
        BundleError, match=r"not a complete bundle: it lacks the file tables/session\.SessionNote\.parquet$"
    ):
        import_sessions(bundle.with_name("lacking.zip"), source)


def test_an_import_adding_a_part_to_a_session_that_passed_qc_is_refused(bundle, source, names, command):
    """As ingest and the web: a qc_passed session is not edited; the import (and its dry run) says to reopen it."""
    from element_session.errors import SessionLockedError
    from element_session.status import set_status

    s = source.session
    (k1,) = (s.SessionNote & {"subject": names["subjects"][0]}).keys()
    (s.SessionNote & k1).delete_quick()  # the bundle's note is now new to the target
    set_status(k1, "qc_passed", session_module=s)
    try:
        for dry_run in (True, False):
            with pytest.raises(SessionLockedError, match=r"is qc_passed: it cannot be edited; reopen it first"):
                import_sessions(bundle, source, dry_run=dry_run)
        assert len(s.SessionNote & k1) == 0
        ran = command("import", str(bundle))
        assert ran.status == 1 and f"session subject={names['subjects'][0]}, " in ran.err and "Traceback" not in ran.err
    finally:
        set_status(k1, "acquired", reason="test: reopened", session_module=s)
    assert import_sessions(bundle, source).written == 1 and len(s.SessionNote & k1) == 1  # reopened: written
    (s.SessionStatus & k1).delete_quick()


def test_a_bundled_status_of_a_stored_session_that_has_another_is_a_conflict(bundle, source, names, command):
    """As ingest: a stored session's status is changed by `status set` only. A session the target holds without a
    status row is acquired; a bundle saying it is planned is a conflict, not a silent move acquired -> planned."""
    s = source.session
    (k1,) = (s.SessionNote & {"subject": names["subjects"][0]}).keys()
    when = dt.datetime(2024, 3, 1, 2, 3, 4, 567890)
    s.SessionStatus.insert1({**k1, "session_status": "planned", "status_set_time": when, "status_set_by": "rig@lab"})
    planned = bundle.with_name("planned.zip")
    export_sessions(planned, s, subject=names["subjects"])
    (s.SessionStatus & k1).delete_quick()  # the target holds the session, without a status row: acquired
    for dry_run in (True, False):
        with pytest.raises(BundleConflictError) as caught:
            import_sessions(planned, source, dry_run=dry_run)
        assert [(c[0], c[2], c[3], c[4]) for c in caught.value.conflicts] == [
            ("session.SessionStatus", "session_status", "acquired", "planned")
        ]
    assert len(s.SessionStatus & k1) == 0
    ran = command("import", str(planned))
    assert ran.status == 1 and "session_status = 'acquired', the bundle has 'planned'" in ran.err, ran.err
    assert status_of(k1, session_module=s) == "acquired"


def test_a_conflicting_note_is_refused_and_nothing_is_written(bundle, source, names, command):
    s = source.session
    (k1,) = (s.SessionNote & {"subject": names["subjects"][0]}).keys()
    zoe = {"user": names["people"][1]}
    before = (source.User & zoe).to_dicts()
    (s.SessionNote & k1).delete()
    s.SessionNote.insert1({**k1, "session_note": "edited on the target"})
    (source.User & zoe).delete()  # the import would write it (and its experimenter row) first
    (number,) = (s.Session & k1).to_arrays("session_id")
    s.Session.update1({**k1, "session_id": 999})  # a second conflict, in another table
    try:
        with pytest.raises(BundleConflictError) as caught:
            import_sessions(bundle, source)
        err = caught.value
        assert [(c[0], c[2], c[3]) for c in err.conflicts] == [
            ("session.Session", "session_id", 999),
            ("session.SessionNote", "session_note", "edited on the target"),
        ]  # every conflict of the bundle in one error, in the order of the bundle's tables
        assert (err.table, err.column) == ("session.Session", "session_id")  # the first
        note = err.conflicts[1]
        assert (note[3], note[4]) == ("edited on the target", "first one 🐭, fine")
        assert note[1] == k1
        assert len(source.User & zoe) == 0  # the transaction was rolled back
        ran = command("import", str(bundle))
        assert ran.status == 1
        assert (
            "session.SessionNote" in ran.err and "edited on the target" in ran.err and names["subjects"][0] in ran.err
        )
        assert f"key {{subject='{names['subjects'][0]}', session_datetime=" in ran.err  # no datetime repr
        assert "datetime.datetime" not in ran.err
    finally:
        s.Session.update1({**k1, "session_id": number})
        source.User.insert(before, skip_duplicates=True)
        (s.SessionNote & k1).delete()
        s.SessionNote.insert1({**k1, "session_note": "first one 🐭, fine"})
        s.SessionExperimenter.insert1({**k1, **zoe}, skip_duplicates=True)


def test_a_target_lacking_a_column_is_refused_naming_table_and_column(
    bundle, source, prefix, subprocess_env, connection
):
    target = f"{prefix}t2_"
    env = subprocess_env | {"DATABASE_PREFIX": target}
    assert run_child(env, "-c", "import workflow.pipeline").returncode == 0
    attribute = source.session.Session.Attribute
    name = connection.adapter.make_full_table_name(target + "session", attribute.table_name)
    connection.query(f"ALTER TABLE {name} DROP COLUMN attribute_blob")
    done = run_child(env, "-m", "element_session", "import", str(bundle))
    assert done.returncode == 1, done.stderr
    assert "session.Session.Attribute" in done.stderr and "'attribute_blob'" in done.stderr
    assert set(row_counts(source, prefix, target).values()) == {0}


@pytest.mark.parametrize(("new_type", "said"), [("varchar(10)", "varchar(10)"), ("text", "text")])
def test_a_target_column_altered_after_its_declaration_is_refused(
    bundle, source, prefix, subprocess_env, connection, new_type, said
):
    """The server's type counts, not the declaration DataJoint keeps in the column's comment (PostgreSQL)."""
    target = f"{prefix}t9{new_type[0]}_"
    env = subprocess_env | {"DATABASE_PREFIX": target}
    assert run_child(env, "-c", "import workflow.pipeline").returncode == 0
    name = connection.adapter.make_full_table_name(target + "session", source.session.SessionNote.table_name)
    if connection.adapter.backend == "postgresql":
        connection.query(f"ALTER TABLE {name} ALTER COLUMN session_note TYPE {new_type}")
    else:
        connection.query(f"ALTER TABLE {name} MODIFY session_note {new_type} NOT NULL")
    for dry_run in (["--dry-run"], []):
        done = run_child(env, "-m", "element_session", "import", str(bundle), *dry_run)
        assert done.returncode == 1, (dry_run, done.stderr)
        assert "session.SessionNote" in done.stderr and "'session_note'" in done.stderr and said in done.stderr
    assert set(row_counts(source, prefix, target).values()) == {0}


def test_kill_9_in_the_middle_of_an_import_leaves_the_target_unchanged(bundle, source, prefix, subprocess_env):
    target = f"{prefix}t3_"
    code = f"""
import os, signal
from element_session.transfer import importing
write, calls = importing._insert, []
def write_then_die(*args, **kwargs):
    write(*args, **kwargs)
    calls.append(1)
    if len(calls) == 4:  # the bundle's first tables written, the transaction open
        os.kill(os.getpid(), signal.SIGKILL)
importing._insert = write_then_die
import workflow.pipeline
importing.import_sessions({str(bundle)!r}, workflow.pipeline)
"""
    done = run_child(subprocess_env | {"DATABASE_PREFIX": target}, "-c", code)
    assert done.returncode == -9, done.stderr
    assert set(row_counts(source, prefix, target).values()) == {0}


def with_rows(bundle: Path, role: str, change) -> Path:
    """A copy of the bundle whose table ``role`` holds ``change(rows)``, its manifest's count and checksum fitted
    (a bundle that passes every check of the file: what the import's own checks then find)."""
    with zipfile.ZipFile(bundle) as old:
        manifest = json.loads(old.read(MANIFEST))
        entry = next(t for t in Manifest.from_json(old.read(MANIFEST)).tables if t.role == role)
        data = encode_rows(entry, change(decode_rows(old.read(entry.file))))
    fields = next(t for t in manifest["tables"] if t["role"] == role)
    fields.update(rows=len(decode_rows(data)), sha256=hashlib.sha256(data).hexdigest())
    return rewritten(
        bundle,
        lambda name, old: data if name == entry.file else json.dumps(manifest).encode() if name == MANIFEST else old,
    )


def test_a_bundle_whose_reference_is_missing_is_refused_and_nothing_is_written(bundle, source, names, command):
    """A session of a subject that is neither in the bundle nor in the target (a bundle that passes every
    check of the file): refused with a typed error naming the table, the transaction rolled back."""
    ghost = names["subjects"][1] + "-ghost"
    s = source.session
    changed = with_rows(
        bundle,
        "session.Session",
        lambda rows: [{**row, "subject": ghost} if row["subject"] == names["subjects"][1] else row for row in rows],
    )
    zoe = {"user": names["people"][1]}
    before = (source.User & zoe).to_dicts()
    (source.User & zoe).delete()  # the import writes it (and its experimenter row) before the sessions
    try:
        with pytest.raises(DatabaseRefusedError) as caught:
            import_sessions(changed, source)
        reason = caught.value.problems[0].reason
        assert caught.value.problems[0].column == "subject"
        assert " in session.Session: " in reason and "\n" not in reason  # the bundle's table, one line
        assert len(source.User & zoe) == 0  # rolled back
        assert len(s.Session & {"subject": ghost}) == 0
        assert caught.value.problems[0].source == str(changed)  # the file, never a Python object's repr
        ran = command("import", str(changed))
        assert ran.status == 1 and "Traceback" not in ran.err and "session" in ran.err
        assert f"  {changed}, column 'subject': " in ran.err and " object at 0x" not in ran.err
        assert len(s.Session & {"subject": ghost}) == 0 and len(source.User & zoe) == 0
    finally:
        source.User.insert(before, skip_duplicates=True)
        (k1,) = (s.SessionNote & {"subject": names["subjects"][0]}).keys()
        s.SessionExperimenter.insert1({**k1, **zoe}, skip_duplicates=True)


@pytest.mark.parametrize("note", ["x" * 5000, "a NUL \x00 inside"], ids=["too-long", "nul"])
def test_a_value_the_target_refuses_is_refused_by_the_dry_run_too(bundle, source, names, connection, command, note):
    """A dry run exits 0 only where the import would succeed: a note the target cannot store (longer than its
    column; a NUL character, which PostgreSQL's text cannot hold and MariaDB stores) is refused by both, typed,
    naming the table; nothing is written."""
    s = source.session
    (k1,) = (s.SessionNote & {"subject": names["subjects"][0]}).keys()
    changed = with_rows(bundle, "session.SessionNote", lambda rows: [{**row, "session_note": note} for row in rows])
    before = (s.SessionNote & k1).to_dicts()
    (s.SessionNote & k1).delete_quick()  # the bundle's note is new to the target
    try:
        stored = "\x00" in note and connection.adapter.backend == "mysql"
        for dry_run in (True, False):
            if stored:  # MariaDB stores it: both succeed
                assert import_sessions(changed, source, dry_run=dry_run).written == 1
                continue
            with pytest.raises(DatabaseRefusedError, match=r" in session\.SessionNote: ") as caught:
                import_sessions(changed, source, dry_run=dry_run)
            assert "0x00" not in str(caught.value) or "NUL" in str(caught.value)
            assert len(s.SessionNote & k1) == 0
            ran = command("import", str(changed), *["--dry-run"] * dry_run)
            assert ran.status == 1 and "session.SessionNote" in ran.err and "unexpected" not in ran.err, ran.err
        assert len(s.SessionNote & k1) == int(stored)
    finally:
        (s.SessionNote & k1).delete_quick()
        s.SessionNote.insert(before)


ONE_ROW_PER_INSERT = """
import sys
from element_session.transfer import importing
importing.ROWS_PER_INSERT = 1
import workflow.pipeline
importing.import_sessions(sys.argv[1], workflow.pipeline)
"""


def test_rows_sent_one_per_statement_arrive_exact_percent_signs_and_all(
    bundle, source, names, prefix, subprocess_env, tmp_path
):
    """One row per INSERT, so that on MySQL/MariaDB each next statement is escaped on the import's second
    thread while the server works on the one before (the path of every large import): the target holds
    the source's rows exactly, blobs byte-identical, and text with ``%``, backslashes and quotes as written."""
    note = "50% done, 100%% sure, %s and %(x)s kept; a \\ backslash, 'single' and \"double\" quotes, 🐭"
    m1, m2 = names["subjects"]
    others = [(m1, dt.datetime(2024, 3, 11, 23, 59, 59)), (m2, dt.datetime(1999, 12, 31, 0, 0, 1))]
    changed = with_rows(
        bundle,
        "session.SessionNote",  # a note for each of the three sessions: three statements
        lambda rows: (
            [{**rows[0], "session_note": note}]
            + [
                {**rows[0], "subject": subject, "session_datetime": when, "session_note": note}
                for subject, when in others
            ]
        ),
    )
    target = subprocess_env | {"DATABASE_PREFIX": f"{prefix}t8_"}
    done = run_child(target, "-c", ONE_ROW_PER_INSERT, str(changed))
    assert done.returncode == 0, done.stderr
    theirs = target_dump(target, tmp_path, names["subjects"])
    assert [row["session_note"] for row in theirs["stored"].pop("session.SessionNote")] == [note] * 3
    mine = dump(source, names["subjects"])
    del mine["stored"]["session.SessionNote"]
    assert mine["stored"] == theirs["stored"]
    assert len(mine["stored"]["session.Session.Attribute"]) == 4


PAUSED_IMPORT = """
import sys, time
from pathlib import Path
from element_session.errors import DatabaseRefusedError
from element_session.transfer import importing
new_rows = importing._new_rows
def compared_then_wait(entry, *args, **kwargs):  # the subjects compared with the target's (none locked)
    fresh = new_rows(entry, *args, **kwargs)
    if entry.role == "session.Session":
        Path(sys.argv[2]).touch()
        while not Path(sys.argv[3]).exists():
            time.sleep(0.05)
    return fresh
importing._new_rows = compared_then_wait
import workflow.pipeline
try:
    importing.import_sessions(sys.argv[1], workflow.pipeline)
except DatabaseRefusedError as err:
    print("refused:", err)
"""


def test_a_referenced_row_deleted_during_an_import_is_refused_not_orphaned(
    bundle, source, names, prefix, subprocess_env, connection, tmp_path
):
    """The subject of a session to import is stored in the target; another client deletes it after the import
    compared the subjects (found present, so not written) and before it inserts the sessions: the
    import is refused, no session of that subject stays.

    A guard for any import that inserts with the server's foreign-key checks off (as a mysqldump file
    does): without a locking check of its own, it would commit a session whose subject is gone.
    """
    m2 = names["subjects"][1]
    target = f"{prefix}t7_"
    env = subprocess_env | {"DATABASE_PREFIX": target}
    assert run_child(env, "-m", "element_session", "import", str(bundle)).returncode == 0
    forget = "import datajoint as dj, sys, workflow.pipeline as p\n"
    forget += "dj.config['safemode'] = False\n(p.session.Session & {'subject': sys.argv[1]}).delete()"
    assert run_child(env, "-c", forget, m2).returncode == 0, "the target's sessions of m2 deleted, m2 kept"
    ready, go = tmp_path / "ready", tmp_path / "go"
    child = subprocess.Popen(
        [sys.executable, "-c", PAUSED_IMPORT, str(bundle), str(ready), str(go)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        while not ready.exists():
            assert child.poll() is None, child.communicate()[1]
            time.sleep(0.05)
        subject = connection.adapter.make_full_table_name(target + "subject", source.Subject.table_name)
        connection.query(f"DELETE FROM {subject} WHERE subject = %s", args=(m2,))  # autocommitted
        go.touch()
        out, err = child.communicate(timeout=300)
    finally:
        child.kill()
    sessions = connection.adapter.make_full_table_name(target + "session", source.session.Session.table_name)
    assert connection.query(f"SELECT COUNT(*) FROM {sessions} WHERE subject = %s", args=(m2,)).fetchone()[0] == 0
    assert child.returncode == 0 and "refused:" in out, err


def test_a_read_only_target_account_is_refused_with_status_4_and_nothing_written(
    bundle, source, prefix, subprocess_env, connection
):
    target = f"{prefix}t5_"
    env = subprocess_env | {"DATABASE_PREFIX": target}
    assert run_child(env, "-c", "import workflow.pipeline").returncode == 0  # the schemas, made by the owner
    user, password = f"ro_{os.urandom(3).hex()}", os.urandom(12).hex()
    schemas = [target + name for name in ("lab", "subject", "session", "inventory")]
    create_account(connection, user, password, schemas)
    try:
        as_reader = env | {"DJ_USER": user, "DJ_PASS": password}
        for dry_run in (["--dry-run"], []):  # the dry run says what the import would meet: exit 4, not 0
            done = run_child(as_reader, "-m", "element_session", "import", str(bundle), *dry_run)
            assert done.returncode == 4, (dry_run, done.stderr)
            assert (
                "Traceback" not in done.stderr
                and f"the account {user}" in done.stderr
                and "may not insert" in done.stderr
            )
    finally:
        drop_account(connection, user)
    assert set(row_counts(source, prefix, target).values()) == {0}


ID_PIPELINE = """
import os

import datajoint as dj

from element_session import session_with_id as session

prefix = os.environ["DATABASE_PREFIX"]
lab = dj.Schema(prefix + "idlab")
{tables}
session.activate(prefix + "idsession", linking_module=__name__)
"""


def test_the_session_id_variant_travels_too(prefix, subprocess_env, tmp_path):
    (tmp_path / "idpipe.py").write_text(ID_PIPELINE.format(tables=LAB_TABLES))
    env = subprocess_env | {"PYTHONPATH": os.pathsep.join([str(tmp_path), subprocess_env["PYTHONPATH"]])}
    fill = """
import datetime as dt
import numpy as np
import idpipe
idpipe.Subject.insert1({"subject": "id-m1", "sex": "F", "subject_birth_date": "2020-02-29"})
idpipe.User.insert1({"user": "id-ada"})
s = idpipe.session
s.Session.insert([{"subject": "id-m1", "session_id": 1, "session_datetime": None},
                  {"subject": "id-m1", "session_id": 2, "session_datetime": dt.datetime(2024, 5, 6, 7, 8, 9)}])
s.Session.Attribute.insert1({"subject": "id-m1", "session_id": 1, "attribute_name": "a",
                             "attribute_blob": {1: np.arange(3), "😀": None}})
s.SessionExperimenter.insert1({"subject": "id-m1", "session_id": 2, "user": "id-ada"})
"""
    assert run_child(env, "-c", fill).returncode == 0
    path = tmp_path / "id.zip"
    exported = subprocess.run(
        [sys.executable, "-m", "element_session", "--pipeline", "idpipe", "export", "--output", str(path)],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    target = env | {"DATABASE_PREFIX": f"{prefix}t6_"}
    imported = subprocess.run(
        [sys.executable, "-m", "element_session", "--pipeline", "idpipe", "import", str(path)],
        env=target, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert "wrote 6 row(s), 0 already present" in imported.stdout
    assert_same_content(
        target_dump(env, tmp_path, ["id-m1"], pipeline="idpipe"),
        target_dump(target, tmp_path, ["id-m1"], pipeline="idpipe"),
    )


# --------------------------------------------------------------------------- downstream


def test_downstream_rows_travel_and_populate_on_the_target_finds_nothing_to_do(
    source, names, prefix, command, subprocess_env, tmp_path, monkeypatch
):
    m1 = names["subjects"][0]
    folder = tmp_path / "root" / m1 / "2024-03-10"
    folder.mkdir(parents=True)
    for i, name in enumerate(["a.dat", "b.dat", "notes.txt"]):
        (folder / name).write_bytes(b"x" * (i + 1))
        os.utime(folder / name, ns=(1_700_000_000_123_456_789 + i, 1_700_000_000_123_456_789 + i))
    monkeypatch.setenv("SESSION_ROOT_DIRS", str(tmp_path / "root"))
    sessions = find_sessions(source.session, subject=names["subjects"])
    source.inventory.SessionInventory.populate(sessions & source.session.SessionDirectory)
    source.inventory.FileTypeSummary.populate(sessions)
    path = tmp_path / "downstream.zip"
    try:
        report = export_sessions(path, source.session, subject=names["subjects"], downstream=True)
        assert report.rows["inventory.SessionInventory"] == 1 and report.rows["inventory.SessionInventory.File"] == 3
        assert report.rows["inventory.FileTypeSummary.FileType"] == 2
        target = f"{prefix}t4_"
        env = {"DATABASE_PREFIX": target, "SESSION_ROOT_DIRS": str(tmp_path / "root")}
        ran = command("import", str(path), child=True, env=env)
        assert ran.status == 0, ran.err
        assert_same_content(
            dump(source, names["subjects"], downstream=True),
            target_dump(subprocess_env | env, tmp_path, names["subjects"], downstream=True),
        )
        check = (
            "import workflow.pipeline as p\n"
            "inv = p.inventory\n"
            "sessions = p.session.Session & p.session.SessionDirectory\n"
            "print(len((inv.SessionInventory.key_source & sessions) - inv.SessionInventory),"
            " len(inv.FileTypeSummary.key_source - inv.FileTypeSummary), len(inv.SessionInventory.File()))"
        )
        done = run_child(subprocess_env | env, "-c", check)
        assert done.stdout.splitlines()[-1].split() == ["0", "0", "3"], done.stderr  # after DataJoint's greeting
        # the session with a directory (the others cannot be inventoried, on either side)
        only = ["--restrict", f"subject={m1}", "--restrict", "session_datetime=2024-03-10T09:08:07"]
        populated = command("populate", "--no-progress", *only, child=True, env=env)
        assert populated.status == 0, populated.err
        assert "populated 0 key(s), 0 error(s)" in populated.out, populated.out
    finally:
        (source.inventory.SessionInventory & [{"subject": s} for s in names["subjects"]]).delete()


# --------------------------------------------------------------------------- cross-backend copy


@pytest.fixture(scope="module")
def other_server(server):
    """A second private server, of the backend the run does not use."""
    with database_server(backend="postgresql" if server.backend == "mysql" else "mysql", tag="es-transfer-") as info:
        yield info


def test_copy_to_the_other_backend_is_exact_and_idempotent(source, names, prefix, command, other_server, tmp_path):
    settings = tmp_path / "target" / "datajoint.json"
    settings.parent.mkdir()
    database = {"host": other_server.host, "port": other_server.port, "user": other_server.user}
    settings.write_text(json.dumps({"database": database | {"backend": other_server.backend}}))
    target = f"{prefix}x_"
    args = ["copy", "--to", str(settings), "--to-prefix", target, "--no-progress"]
    args += [a for s in names["subjects"] for a in ("--subject", s)]
    env = {"DJ_TARGET_PASS": other_server.password}
    # in a child whose DJ_* name the source: none of them may reach the target's connection
    ran = command(*args, child=True, env=env)
    assert ran.status == 0, ran.err
    assert "wrote 21 row(s), 0 already present" in ran.out
    target_env = {**os.environ, **other_server.environment(), "DATABASE_PREFIX": target, "DJ_IGNORE_CONFIG_FILE": "1"}
    target_env["PYTHONPATH"] = str(Path(__file__).parent.parent)
    assert_same_content(dump(source, names["subjects"]), target_dump(target_env, tmp_path, names["subjects"]))
    # the password from .secrets/ beside the settings file; a second copy writes nothing
    (settings.parent / ".secrets").mkdir()
    (settings.parent / ".secrets" / "database.password").write_text(other_server.password)
    flat = {f"database.{name}": value for name, value in database.items()}  # DataJoint reads this form too
    settings.write_text(json.dumps(flat | {"database.backend": other_server.backend}))
    again = command(*args, env={"DJ_TARGET_PASS": None})
    assert again.status == 0, again.err
    assert "wrote 0 row(s), 21 already present" in again.out


def test_copy_without_a_password_is_a_usage_error(source, tmp_path, command):
    settings = tmp_path / "datajoint.json"
    settings.write_text(json.dumps({"database": {"host": "127.0.0.1", "port": 1}}))
    ran = command("copy", "--to", str(settings), env={"DJ_TARGET_PASS": None})
    assert ran.status == 2 and "DJ_TARGET_PASS" in ran.err


def test_a_copy_to_a_target_that_cannot_be_reached_names_the_settings_file_and_its_fields(
    source, names, tmp_path, command
):
    settings = tmp_path / "target.json"
    settings.write_text(json.dumps({"database": {"host": "127.0.0.1", "port": 9, "user": "someone"}}))
    ran = command("copy", "--to", str(settings), "--subject", names["subjects"][0], "--no-progress",
                  env={"DJ_TARGET_PASS": "x"})  # fmt: skip
    assert ran.status == 3, ran
    assert f"are the host and port (database.host and database.port of {settings}) right?" in ran.err, ran.err
    assert "DJ_HOST" not in ran.err and "Traceback" not in ran.err


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"database": "127.0.0.1"}, "is not DataJoint's settings"),
        ([1], "is not DataJoint's settings"),
        ({"database": {"port": 3306}}, "names no database.host"),
        ({"database.host": "h", "database.port": "abc"}, "database.port is not a port number ('abc')"),
        ({"database": {"host": "h", "backend": "oracle"}}, "database.backend is mysql or postgresql, not 'oracle'"),
        ({"database": {"host": "h"}}, "names no account: set database.user in it or write the account to"),
    ],
)
def test_a_target_settings_file_that_cannot_be_used_is_a_usage_error(source, tmp_path, command, settings, said):
    path = tmp_path / "datajoint.json"
    path.write_text(json.dumps(settings))
    ran = command("copy", "--to", str(path), env={"DJ_TARGET_PASS": "x"})
    assert ran.status == 2 and said in ran.err and "Traceback" not in ran.err, ran


def test_an_export_to_a_missing_directory_is_a_usage_error_naming_the_path(source, tmp_path, command):
    target = tmp_path / "no such folder" / "sessions.zip"
    ran = command("export", "--output", str(target))
    assert ran.status == 2 and ran.out == ""
    assert f"cannot write {target}: directory {target.parent} does not exist" in ran.err
    assert "Traceback" not in ran.err and "FileNotFoundError" not in ran.err and not target.parent.exists()


def test_every_column_of_a_bundle_has_its_type_also_in_an_empty_table(bundle):
    """An empty table's Parquet file (no session has a status row here) types its columns as documented
    (text as ``string``, times as ``timestamp[us]``), not as Arrow's ``null``, so that pandas reads them typed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with zipfile.ZipFile(bundle) as archive:
        manifest = Manifest.from_json(archive.read(MANIFEST))
        (status,) = [e for e in manifest.tables if e.role == "session.SessionStatus"]
        assert status.rows == 0
        for entry in manifest.tables:
            schema = pq.read_schema(io.BytesIO(archive.read(entry.file)))
            assert not [f.name for f in schema if f.type == pa.null()], entry.role
        schema = pq.read_schema(io.BytesIO(archive.read(status.file)))
    assert schema.field("subject").type == pa.string() and schema.field("status_set_time").type == pa.timestamp("us")


def test_an_export_reads_one_snapshot_while_another_client_adds_sessions(source, names, server, tmp_path, monkeypatch):
    """A session committed by another client while the export reads is in no table of the bundle, or in all.

    The other client commits a session with its note after the export has read ``Session`` and
    before it reads ``SessionNote``: without one snapshot the bundle held the note of a session it
    lacks, and a PostgreSQL target refused it (foreign key). The write is made from inside the
    export's own read of each table, on a second connection of the same account.
    """
    import element_session.transfer.export as export

    m1 = names["subjects"][0]
    late = {"subject": m1, "session_datetime": dt.datetime(2024, 3, 12, 6, 0, 0)}
    info = source.session.Session.connection.conn_info
    other = dj.Connection(server.host, info["user"], info["passwd"], port=server.port, use_tls=server.use_tls,
                          backend=server.backend)  # fmt: skip
    read, written = export.read_columns, []

    def read_then_write(query, columns):
        found = read(query, columns)
        if query.table_name == "session" and not written:  # Session read: another client commits a session
            for table, row in (
                ("session", {**late, "session_id": 9}),
                ("session_note", {**late, "session_note": "late"}),
            ):
                full = f"{quote(other, source.session.Session.database)}.{quote(other, table)}"
                names_ = ", ".join(quote(other, c) for c in row)
                other.query(
                    f"INSERT INTO {full} ({names_}) VALUES ({', '.join(['%s'] * len(row))})", args=tuple(row.values())
                )
            written.append(late)
        return found

    monkeypatch.setattr(export, "read_columns", read_then_write)
    try:
        report = export_sessions(tmp_path / "s.zip", source.session, subject=names["subjects"])
        assert written and report.rows["session.Session"] == 3 and report.rows["session.SessionNote"] == 1
        assert source.session.SessionNote & late  # the write did happen, committed, before the note was read
    finally:
        other.query(
            f"DELETE FROM {quote(other, source.session.Session.database)}.{quote(other, 'session_note')} "
            "WHERE subject = %s AND session_datetime = %s", args=(m1, late["session_datetime"]),
        )  # fmt: skip
        other.query(
            f"DELETE FROM {quote(other, source.session.Session.database)}.{quote(other, 'session')} "
            "WHERE subject = %s AND session_datetime = %s", args=(m1, late["session_datetime"]),
        )  # fmt: skip
        other.close()


def quote(connection, name: str) -> str:
    return connection.adapter.quote_identifier(name)


def test_an_export_never_replaces_an_existing_file_unless_asked(source, names, tmp_path, command):
    """As `export-nwb`: an existing file (someone's earlier bundle) is kept, exit 1; `--overwrite` replaces it."""
    from element_session.errors import OutputExistsError

    target = tmp_path / "sessions.zip"
    target.write_bytes(b"an earlier bundle")
    ran = command("export", "--output", str(target), "--subject", names["subjects"][0], "--no-progress")
    assert ran.status == 1 and ran.out == "" and "Traceback" not in ran.err
    assert f"{target} exists and was left as it is: give --overwrite to replace it" in ran.err
    with pytest.raises(OutputExistsError, match="exists"):
        export_sessions(target, source.session, subject=names["subjects"])
    assert target.read_bytes() == b"an earlier bundle" and sorted(tmp_path.iterdir()) == [target]  # no partial file
    manifest = Manifest("0", "mysql", "2024-01-01T00:00:00Z", "someone", {}, False)
    with pytest.raises(OutputExistsError):  # a file put there while the rows were read: still kept
        write_bundle(target, manifest, [])
    assert target.read_bytes() == b"an earlier bundle" and sorted(tmp_path.iterdir()) == [target]
    ran = command("export", "--output", str(target), "--subject", names["subjects"][0], "--no-progress", "--overwrite")
    assert ran.status == 0 and zipfile.is_zipfile(target) and sorted(tmp_path.iterdir()) == [target]


def test_an_export_or_copy_of_a_selection_matching_nothing_is_refused_and_writes_nothing(
    source, names, tmp_path, command
):
    """As `status set` and `export-nwb` of a missing session: exit 1 naming the selection, no bundle written."""
    target = tmp_path / "sessions.zip"
    unknown = names["subjects"][0] + "-nobody"
    ran = command("export", "--output", str(target), "--subject", unknown, "--no-progress")
    assert ran.status == 1 and ran.out == "" and not target.exists()
    assert f"no session matches subject={unknown}: nothing to export, no bundle written" in ran.err
    ran = command("export", "--output", str(target), "--subject", names["subjects"][0], "--status", "aborted")
    assert ran.status == 1 and f"subject={names['subjects'][0]} status=aborted" in ran.err and not target.exists()
    settings = tmp_path / "datajoint.json"
    settings.write_text(json.dumps({"database": {"host": "127.0.0.1", "port": 1, "user": "someone"}}))
    ran = command("copy", "--to", str(settings), "--subject", unknown, env={"DJ_TARGET_PASS": "x"})
    assert ran.status == 1 and "nothing to export, no bundle written" in ran.err
    ran = command("export", "--output", str(target), "--subject", names["subjects"][0], "--no-progress")
    assert ran.status == 0 and target.exists()  # the same command with a session to export


def test_an_empty_list_of_subjects_exports_nothing_not_every_session(source, tmp_path):
    """As ``find_sessions(subject=[])``: a notebook's empty selection must not become a bundle of everything."""
    from element_session.errors import InputError, SessionNotFoundError

    target = tmp_path / "sessions.zip"
    with pytest.raises(SessionNotFoundError, match=r"no session matches subject=\(an empty list\)"):
        export_sessions(target, source.session, subject=[])
    with pytest.raises(InputError, match=r"column 'status': give one or more states"):
        export_sessions(target, source.session, status=[])
    assert not target.exists()
