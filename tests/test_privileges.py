"""Least privilege: a read-only database account can list and export sessions, and every write it tries is refused.

The test creates its own account on the test server, with read grants on the pipeline's schemas
only (docs/security.md shows the same statements for MySQL/MariaDB and PostgreSQL), and runs the
package in a child process that connects as that account: importing the pipeline (which activates
its schemas), listing, locating and exporting sessions work; ingestion of every kind, populate,
clearing failed jobs and a migration that has something to change are refused with a message that
names the account, and the database is exactly as it was.

The test server's own account must be allowed to create accounts (the private servers of the
test run are); on a server given by ``DJ_HOST`` whose account cannot, the test fails and says so.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import datajoint as dj
import pytest

from element_session.ingest import ingest
from element_session.localdb import ServerInfo
from tests.helpers import add_references, create_account, drop_account, remove_references, snapshot
from tests.legacy import build_legacy
from tests.legacy import snapshot as legacy_snapshot
from workflow.inventory import FileTypeSummary, SessionInventory

SUBJECTS, PEOPLE, PROJECTS = ["ro-m1"], ["ro-ada"], ["ro-p"]
SCHEMAS = ("lab", "subject", "session", "inventory")
DENIED = 4  # exit status of element-session when the database refuses the account's request (cli.ExitStatus)

#: The child process: each step's exit status and output, as JSON on stdout (its last line).
CHILD = """
import contextlib, io, json, sys, traceback
commands = json.loads(sys.argv[1])
results = {}


def record(name, run):
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = run()
    except BaseException as exc:  # the test reports what happened
        status = f"{type(exc).__name__}: {exc}"
        err.write(traceback.format_exc())
    results[name] = {"status": status, "out": out.getvalue(), "err": err.getvalue()}


def importing():
    import workflow.pipeline
    return 0


record("import workflow.pipeline", importing)
from element_session import cli
for name, argv in commands.items():
    record(name, lambda argv=argv: cli.main(argv))
print(json.dumps(results))
"""


@dataclass
class Account:
    """A read-only account on the test server and the environment of a child process using it."""

    user: str
    password: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def legacy(connection, prefix) -> str | None:
    """On MySQL/MariaDB, a session schema of the published element, which ``migrate`` would change."""
    if connection.adapter.backend == "postgresql":
        return None  # the published element never ran on PostgreSQL: there is nothing to migrate there
    schemas, _ = build_legacy(connection, f"{prefix}ro{secrets.token_hex(3)}_")
    return schemas


@pytest.fixture(scope="module")
def readonly(server: ServerInfo, connection, pipeline, prefix, legacy, subprocess_env) -> Iterator[Account]:
    user, password = f"ro_{secrets.token_hex(4)}", f"ro-{secrets.token_urlsafe(18)}"
    schemas = [prefix + name for name in SCHEMAS]
    if legacy is not None:
        schemas += [legacy.lab, legacy.subject, legacy.session]
    try:
        create_account(connection, user, password, schemas)
    except dj.errors.DataJointError as err:
        pytest.fail(
            f"cannot create a read-only account on {server}: the test account {server.user!r} needs the right to "
            f"create accounts and grant privileges (CREATE USER/CREATEROLE and GRANT OPTION): {err}"
        )
    try:
        yield Account(user, password, {**subprocess_env, "DJ_USER": user, "DJ_PASS": password})
    finally:
        drop_account(connection, user)


@pytest.fixture(scope="module")
def data(pipeline, tmp_path_factory) -> Iterator[ModuleType]:
    """A session with its satellites, and a failed key in the inventory's jobs table."""
    add_references(pipeline, SUBJECTS, PEOPLE, PROJECTS)
    root = tmp_path_factory.mktemp("ro-root")
    ingest(
        "sessions",
        [{"subject": "ro-m1", "session_datetime": "2024-05-01T10:00:00[Europe/Paris]", "session_id": "3",
          "experimenter": "ro-ada", "project": "ro-p", "session_dir": "ro-m1/s1", "session_note": "read me",
          "attr.rig": "r1"}],
        pipeline=pipeline,
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SESSION_ROOT_DIRS", str(root))  # the session's directory is not there: its key fails
        result = SessionInventory().populate({"subject": "ro-m1"}, reserve_jobs=True, suppress_errors=True)
    assert result["error_list"], result
    yield pipeline
    for table in (SessionInventory, FileTypeSummary):
        (table.jobs & {"subject": "ro-m1"}).delete_quick()
    remove_references(pipeline, SUBJECTS, PEOPLE, PROJECTS)


def database_state(pipeline: ModuleType, connection, legacy) -> dict:
    """Everything the read-only account could have changed."""
    state = {"tables": snapshot(pipeline)}
    for table in (SessionInventory, SessionInventory.File, FileTypeSummary):
        state[table.__name__] = sorted(map(repr, table().to_dicts()))
    for table in (SessionInventory, FileTypeSummary):
        state[table.__name__ + ".jobs"] = sorted(
            repr(row) for row in table().jobs.proj("status", "error_message").to_dicts()
        )
    if legacy is not None:
        state["legacy"] = legacy_snapshot(connection, legacy.session)
    return state


def test_a_read_only_account_reads_and_exports_and_every_write_is_refused(
    readonly, data, connection, legacy, prefix, tmp_path
):
    files = {
        "subjects.csv": "subject,sex,subject_birth_date\nro-new,F,2023-01-01\n",
        "people.csv": "user\nro-new\n",
        "projects.csv": "project\nro-new\n",
        "sessions.csv": "subject,session_datetime,experimenter\nro-m1,2024-06-01T10:00:00Z,ro-ada\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    nwb = tmp_path / "ro.nwb"
    commands = {
        "sessions": ["sessions", "--subject", "ro-m1", "--format", "json"],
        "dirs": ["dirs"],
        "export-nwb": ["export-nwb", "--subject", "ro-m1", "--id", "3", "--output", str(nwb)],
        "ingest subjects": ["ingest", "subjects", str(tmp_path / "subjects.csv")],
        "ingest experimenters": ["ingest", "experimenters", str(tmp_path / "people.csv")],
        "ingest projects": ["ingest", "projects", str(tmp_path / "projects.csv")],
        "ingest sessions": ["ingest", "sessions", str(tmp_path / "sessions.csv")],
        "migrate (nothing to change)": ["migrate", "--schema", prefix + "session"],
        "jobs": ["jobs", "--restrict", "subject=ro-m1"],
        "populate": ["populate", "--restrict", "subject=ro-m1", "--no-progress"],
        "jobs --clear-errors": ["jobs", "--clear-errors", "--restrict", "subject=ro-m1"],
    }
    if legacy is not None:
        commands["migrate"] = ["migrate", "--schema", legacy.session]
    before = database_state(data, connection, legacy)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(commands)],
        env=readonly.env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr
    results = json.loads(child.stdout.strip().splitlines()[-1])
    print("\nread-only account:", {name: r["status"] for name, r in results.items()})

    # reading works, and activating the pipeline's existing schemas writes nothing
    for name in ("import workflow.pipeline", "sessions", "dirs", "export-nwb", "jobs", "migrate (nothing to change)"):
        assert results[name]["status"] == 0, (name, results[name])
    (session,) = json.loads(results["sessions"]["out"])
    assert session["session_note"] == "read me" and session["attributes"] == {"rig": "r1"}
    assert session["session_datetime"] == "2024-05-01T08:00:00+00:00" and session["experimenters"] == ["ro-ada"]
    assert nwb.is_file() and results["export-nwb"]["out"].strip() == str(nwb)
    assert "ro-m1" in results["dirs"]["out"]
    assert "error" in results["jobs"]["out"] and "ro-m1" in results["jobs"]["out"]

    # every write is refused with the account named, and nothing changed
    for name in ("ingest subjects", "ingest experimenters", "ingest projects", "ingest sessions",
                 "jobs --clear-errors"):  # fmt: skip
        result = results[name]
        assert result["status"] == DENIED, (name, result)
        assert result["err"].startswith("element-session: the database at ") and readonly.user in result["err"]
        assert "Traceback" not in result["err"]
    # populate: its workers are refused their first write (the job reservation): the refusal is the status
    result = results["populate"]
    assert result["status"] == DENIED, result
    assert readonly.user in result["err"] and "Traceback" not in result["err"]
    if legacy is not None:  # the published element's schema would need changes: the first one is refused
        result = results["migrate"]
        assert result["status"] == DENIED, result
        assert "refused: " in result["err"] and readonly.user in result["err"]
        assert "Traceback" not in result["err"]
    for result in results.values():
        assert readonly.password not in result["out"] + result["err"]
    assert readonly.password not in child.stdout + child.stderr
    assert database_state(data, connection, legacy) == before


def test_the_command_as_a_read_only_account_exits_0_for_reads_and_4_for_writes(readonly, data, tmp_path):
    def command(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "element_session", *args], env=readonly.env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    listed = command("sessions", "--subject", "ro-m1", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert [s["subject"] for s in json.loads(listed.stdout)] == ["ro-m1"]
    path = Path(tmp_path, "new.csv")
    path.write_text("subject,session_datetime\nro-m1,2024-07-01T10:00:00Z\n", encoding="utf-8")
    before = snapshot(data)
    refused = command("ingest", "sessions", str(path))
    assert refused.returncode == DENIED, refused.stderr
    assert refused.stdout == "" and "Traceback" not in refused.stderr
    assert f"as user {readonly.user!r}" in refused.stderr
    assert readonly.password not in refused.stdout + refused.stderr + listed.stdout + listed.stderr
    assert snapshot(data) == before
    assert len(data.session.Session & {"subject": "ro-m1", "session_datetime": dt.datetime(2024, 7, 1, 10)}) == 0


@pytest.fixture(scope="module")
def nogrant(connection, subprocess_env) -> Iterator[Account]:
    """An account that may log in and holds no privilege on any schema."""
    user, password = f"ng_{secrets.token_hex(4)}", f"ng-{secrets.token_urlsafe(18)}"
    create_account(connection, user, password, [])
    try:
        yield Account(user, password, {**subprocess_env, "DJ_USER": user, "DJ_PASS": password})
    finally:
        drop_account(connection, user)


def test_an_account_that_may_not_read_the_schemas_is_refused_in_words_with_status_4(
    nogrant, readonly, data, command, prefix, tmp_path
):
    """No grant at all, or a read-only account on a prefix whose schemas do not exist: every command that
    activates the pipeline, and the Python API, say the web's words (one rule), not DataJoint's "Check permissions"."""
    from element_session.database import schema_refused

    bundle = tmp_path / "ro.zip"
    assert command("export", "--output", str(bundle), "--subject", "ro-m1", "--no-progress").status == 0
    cases = [
        (nogrant, prefix, ["sessions"]),
        (nogrant, prefix, ["import", str(bundle)]),
        (nogrant, prefix, ["populate", "--no-progress"]),
        (readonly, f"{prefix}rotypo_", ["sessions"]),
    ]
    for account, schema_prefix, args in cases:
        env = {"DJ_USER": account.user, "DJ_PASS": account.password, "DATABASE_PREFIX": schema_prefix}
        ran = command(*args, child=True, env=env)
        said = f"element-session: {schema_refused(schema_prefix + 'lab', account.user)}\n"
        assert (ran.status, ran.out, ran.err) == (DENIED, "", said), (args, ran)
    python = "from element_session.pipeline import load\nload('workflow.pipeline')\n"
    env = nogrant.env | {"DATABASE_PREFIX": prefix}
    ran = subprocess.run([sys.executable, "-c", python], env=env, cwd=tmp_path, capture_output=True, text=True)
    raised = f"element_session.errors.PermissionDeniedError: {schema_refused(prefix + 'lab', nogrant.user)}"
    assert ran.stderr.strip().splitlines()[-1] == raised, ran.stderr
