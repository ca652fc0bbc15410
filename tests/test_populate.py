"""Downstream tables fed by Session, populated by worker processes that share the work through jobs.

The workers are real processes (see ``element_session.populate``) on the test server. To count
``make`` calls, a pipeline module written per test wraps ``SessionInventory``'s compute and insert
steps: every worker process appends one line per call to a log file; a session directory holding
a file ``HANG`` makes its worker wait there, to be killed.
"""

from __future__ import annotations

import collections
import datetime as dt
import importlib
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from element_session import cli
from element_session.populate import PopulateError, clear_jobs, list_jobs, populate
from workflow.inventory import FileTypeSummary, SessionInventory

TABLES = ["SessionInventory", "FileTypeSummary"]
START = dt.datetime(2024, 5, 6, 7, 0, 0)

COUNTING_MODULE = '''
"""The workflow pipeline with SessionInventory's steps counted in a log (written by test_populate)."""
import json
import os
import time

from workflow.inventory import SessionInventory
from workflow.pipeline import *  # noqa: F403

LOG = {log!r}
_compute, _insert = SessionInventory.make_compute, SessionInventory.make_insert


def _log(event, key):
    line = json.dumps({{"event": event, "key": [key["subject"], str(key["session_datetime"])], "pid": os.getpid()}})
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)


def make_compute(self, key, directory, files):
    if os.path.exists(os.path.join(directory, "HANG")):
        _log("hang", key)
        time.sleep(300)  # until the test kills this worker
    _log("compute", key)
    return _compute(self, key, directory, files)


def make_insert(self, key, *result):
    _log("insert", key)
    return _insert(self, key, *result)


SessionInventory.make_compute = make_compute
SessionInventory.make_insert = make_insert
'''


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The root data directory of this test, configured for this process and the workers it starts."""
    path = tmp_path / "raw"
    path.mkdir()
    monkeypatch.setenv("SESSION_ROOT_DIRS", str(path))
    return path


@pytest.fixture
def subject(pipeline) -> str:
    """A subject of this test only; it, its sessions, their downstream rows and jobs go at the end."""
    name = f"pop-{secrets.token_hex(4)}"
    pipeline.Subject.insert1({"subject": name, "sex": "U", "subject_birth_date": "2023-01-01"})
    yield name
    for table in (SessionInventory, FileTypeSummary):
        (table.jobs & {"subject": name}).delete_quick()
    (pipeline.Subject & {"subject": name}).delete()


@pytest.fixture
def counting(pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(the counting pipeline module, the log file); workers import the module by its name."""
    name = f"counting_pipeline_{secrets.token_hex(4)}"
    log = tmp_path / "make.log"
    (tmp_path / f"{name}.py").write_text(COUNTING_MODULE.format(log=str(log)))
    monkeypatch.syspath_prepend(str(tmp_path))
    for step in ("make_compute", "make_insert"):  # the module wraps them: put the originals back at the end
        monkeypatch.setattr(SessionInventory, step, getattr(SessionInventory, step))
    module = importlib.import_module(name)
    yield module, log
    sys.modules.pop(name, None)


def add_sessions(pipeline, subject: str, root: Path, n: int, *, files: int = 3) -> list[dict]:
    """``n`` sessions of ``subject`` with directories of ``files`` small files each; their keys."""
    keys = [{"subject": subject, "session_datetime": START + dt.timedelta(minutes=i)} for i in range(n)]
    pipeline.session.Session.insert(keys)
    pipeline.session.SessionDirectory.insert(
        [{**key, "session_dir": f"{subject}/s{i:03d}"} for i, key in enumerate(keys)]
    )
    for i in range(n):
        directory = root / subject / f"s{i:03d}"
        (directory / "video").mkdir(parents=True)
        for j in range(files):
            name = f"trace{j}.npy" if j % 2 else f"video/frame{j}.AVI"
            (directory / name).write_bytes(bytes([i % 256, j]) * (10 + j))
    return keys


def logged(log: Path, event: str) -> collections.Counter:
    """How many times each session key (subject, datetime text) logged ``event``."""
    lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return collections.Counter(tuple(entry["key"]) for entry in lines if entry["event"] == event)


def as_logged(keys: list[dict]) -> set[tuple[str, str]]:
    return {(key["subject"], str(key["session_datetime"])) for key in keys}


def test_three_workers_make_every_key_exactly_once(pipeline, subject, root, counting):
    module, log = counting
    keys = add_sessions(pipeline, subject, root, 60)

    summary = populate(module, tables=TABLES, workers=3, restriction={"subject": subject})

    assert summary.ok, summary
    assert summary.done == 120  # 60 inventories and 60 summaries
    assert logged(log, "compute") == dict.fromkeys(as_logged(keys), 1)
    assert logged(log, "insert") == dict.fromkeys(as_logged(keys), 1)
    assert len(SessionInventory & {"subject": subject}) == 60
    assert len(FileTypeSummary & {"subject": subject}) == 60
    assert list_jobs(module, tables=TABLES, restriction={"subject": subject}) == []
    row = (SessionInventory & keys[7]).to_dicts()[0]
    assert (row["file_count"], row["total_bytes"]) == (3, 20 + 22 + 24)
    assert row["session_path"] == str(root / subject / "s007")
    files = {r["file_path"]: r for r in (SessionInventory.File & keys[7]).to_dicts()}
    assert set(files) == {"video/frame0.AVI", "trace1.npy", "video/frame2.AVI"}
    assert files["trace1.npy"]["file_size"] == 22
    by_type = {r["file_type"]: r for r in (FileTypeSummary.FileType & keys[7]).to_dicts()}
    assert {kind: (r["file_count"], r["total_bytes"]) for kind, r in by_type.items()} == {
        "avi": (2, 20 + 24),
        "npy": (1, 22),
    }


def test_a_killed_worker_leaves_a_reservation_that_clearing_releases(
    pipeline, subject, root, counting, subprocess_env, tmp_path
):
    module, log = counting
    keys = add_sessions(pipeline, subject, root, 6)
    hang = root / subject / "s002" / "HANG"
    hang.write_text("wait here")
    code = textwrap.dedent(f"""
        import sys
        from element_session.populate import populate
        summary = populate({module.__name__!r}, tables={TABLES!r}, workers=2, restriction={{"subject": {subject!r}}},
                           progress=False)
        print(summary)
        sys.exit(0 if summary.ok else 1)
    """)
    env = {
        **subprocess_env,
        "SESSION_ROOT_DIRS": str(root),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), subprocess_env["PYTHONPATH"]]),
    }
    parent = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not logged(log, "hang") and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.1)
        hung = [json.loads(line) for line in log.read_text().splitlines() if '"hang"' in line]
        assert len(hung) == 1, "the worker never reached the hanging key"
        os.kill(hung[0]["pid"], signal.SIGKILL)
        out, _ = parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert parent.returncode == 1
    assert "killed by SIGKILL" in out

    records = list_jobs(module, tables=TABLES, restriction={"subject": subject})
    assert [(r.table, r.status, r.key, r.host, r.pid, r.stale) for r in records] == [
        ("inventory.SessionInventory", "reserved", keys[2], platform.node(), hung[0]["pid"], True)
    ]
    assert len(SessionInventory & {"subject": subject}) == 5  # the others were made by the surviving worker

    cleared = clear_jobs(module, errors=False, stale=True, restriction={"subject": subject})
    assert [r.key for r in cleared] == [keys[2]]
    assert list_jobs(module, tables=TABLES, restriction={"subject": subject}) == []
    hang.unlink()
    summary = populate(module, tables=TABLES, workers=2, restriction={"subject": subject}, progress=False)

    assert summary.ok, summary
    assert summary.done == 2  # the released key's inventory and summary
    assert logged(log, "insert") == dict.fromkeys(as_logged(keys), 1)
    assert logged(log, "compute") == dict.fromkeys(as_logged(keys), 1)
    assert len(FileTypeSummary & {"subject": subject}) == 6


def test_reservations_of_live_processes_stay_and_other_hosts_need_an_age(pipeline, subject, root):
    keys = add_sessions(pipeline, subject, root, 2)
    long_ago = dt.datetime(2001, 1, 1)
    common = {"status": "reserved", "priority": 5, "reserved_time": long_ago}
    SessionInventory.jobs.insert1({**keys[0], **common, "host": "another-machine", "pid": 4242})
    SessionInventory.jobs.insert1({**keys[1], **common, "host": platform.node(), "pid": os.getpid()})

    assert clear_jobs(pipeline, tables=TABLES, restriction={"subject": subject}) == []
    by_host = {r.host: r for r in list_jobs(pipeline, tables=TABLES, restriction={"subject": subject})}
    assert by_host["another-machine"].stale is None
    assert by_host[platform.node()].stale is False  # this very process holds it
    assert by_host["another-machine"].age_minutes > 60 * 24 * 365

    cleared = clear_jobs(pipeline, tables=TABLES, stale=True, older_than=60, restriction={"subject": subject})
    assert [r.host for r in cleared] == ["another-machine"]
    assert [r.host for r in list_jobs(pipeline, tables=TABLES, restriction={"subject": subject})] == [platform.node()]


def test_a_failing_key_is_recorded_with_its_error_and_the_others_complete(pipeline, subject, root):
    keys = add_sessions(pipeline, subject, root, 4)
    (root / subject / "s001").rename(root / subject / "moved")  # its directory is missing
    lost = {"subject": subject, "session_datetime": START + dt.timedelta(days=1)}
    pipeline.session.Session.insert1(lost)  # a session without a directory row

    summary = populate(pipeline, tables=TABLES, workers=2, restriction={"subject": subject}, progress=False)

    assert summary.done == 6  # 3 inventories and 3 summaries
    errors = {str(key["session_datetime"]): message for _, key, message in summary.errors}
    assert set(errors) == {str(keys[1]["session_datetime"]), str(lost["session_datetime"])}
    missing = errors[str(keys[1]["session_datetime"])]
    assert missing.startswith("DirectoryNotFoundError") and f"{subject}/s001" in missing and str(root) in missing
    assert "SessionNotFoundError" in errors[str(lost["session_datetime"])]
    assert len(SessionInventory & keys[1]) == 0  # no row of zeros
    records = list_jobs(pipeline, tables=TABLES, restriction={"subject": subject})
    assert {(r.status, r.error_message) for r in records} == {("error", message) for message in errors.values()}


def test_deleting_a_session_cascades_and_deleting_its_inventory_recomputes(pipeline, subject, root):
    keys = add_sessions(pipeline, subject, root, 2)
    assert populate(pipeline, tables=TABLES, restriction={"subject": subject}, progress=False).done == 4
    downstream = [SessionInventory, SessionInventory.File, FileTypeSummary, FileTypeSummary.FileType]

    (pipeline.session.Session & keys[0]).delete()
    assert [len(table & keys[0]) for table in downstream] == [0, 0, 0, 0]
    assert [len(table & keys[1]) > 0 for table in downstream] == [True] * 4

    directory = root / subject / "s001"
    (directory / "notes.csv").write_text("a,b\n1,2\n")
    (directory / "trace1.npy").write_bytes(b"changed")
    before = (SessionInventory.File & keys[1] & {"file_path": "trace1.npy"}).to_dicts()[0]
    assert populate(pipeline, tables=TABLES, restriction={"subject": subject}, progress=False).done == 0  # kept as is
    assert (SessionInventory & keys[1]).to_dicts()[0]["file_count"] == 3

    (SessionInventory & keys[1]).delete()
    assert len(FileTypeSummary & keys[1]) == 0
    assert populate(pipeline, tables=TABLES, restriction={"subject": subject}, progress=False).done == 2
    row = (SessionInventory & keys[1]).to_dicts()[0]
    assert row["file_count"] == 4
    after = (SessionInventory.File & keys[1] & {"file_path": "trace1.npy"}).to_dicts()[0]
    assert (after["file_size"], before["file_size"]) == (7, 22)
    assert after["file_sha256"] != before["file_sha256"]
    types = {r["file_type"]: r["file_count"] for r in (FileTypeSummary.FileType & keys[1]).to_dicts()}
    assert types == {"avi": 2, "npy": 1, "csv": 1}


def test_bad_options_are_typed_errors(pipeline):
    with pytest.raises(PopulateError, match="'NoSuchTable' matches no Imported or Computed table"):
        populate(pipeline, tables=["NoSuchTable"])
    with pytest.raises(PopulateError, match="workers must be a positive integer, not 0"):
        populate(pipeline, workers=0)
    with pytest.raises(PopulateError, match="restriction must be a dict"):
        list_jobs(pipeline, restriction="subject='x' OR 1=1")


def test_populate_and_jobs_commands(pipeline, subject, root, capsys):
    keys = add_sessions(pipeline, subject, root, 2)
    (root / subject / "s000" / "video" / "frame0.AVI").unlink()
    (root / subject / "s001").rename(root / subject / "gone")

    def run(*argv: str) -> tuple[int, str]:
        code = cli.main(argv, pipeline=pipeline)
        return code, capsys.readouterr().out

    code, out = run(
        "populate", "--workers", "2", "--table", "inventory.SessionInventory", "--restrict", f"subject={subject}"
    )
    assert code == 1
    assert out.startswith("populated 1 key(s), 1 error(s)")
    when = keys[1]["session_datetime"].isoformat()  # a stored time, UTC, marked so (docs/times.md)
    assert f"session_datetime={when}+00:00" in out and "DirectoryNotFoundError" in out
    assert len(FileTypeSummary & {"subject": subject}) == 0  # only the table asked for

    (root / subject / "gone").rename(root / subject / "s001")
    code, out = run("populate", "--restrict", f"subject={subject}", "--table", "SessionInventory")
    assert (code, out.strip()) == (0, "populated 0 key(s), 0 error(s)")  # a failed key is not retried until cleared

    code, out = run("jobs", "--restrict", f"subject={subject}")
    assert code == 0
    header, row = out.splitlines()[:2]  # a header line (formats.text_table), then the failed key
    assert header.split()[:2] == ["status", "table"] and row.split()[:2] == ["error", "inventory.SessionInventory"]
    assert f"{subject}/s001" in out
    assert run("jobs", "--older-than", "5")[0] == 2
    code, out = run("jobs", "--clear-errors", "--restrict", f"subject={subject}")
    assert out.splitlines() == ["cleared 1 failed key(s) and 0 stale reservation(s)", "no reserved or failed jobs"]
    code, out = run("populate", "--no-progress", "--limit", "1", "--restrict", f"subject={subject}")
    assert (code, out.strip()) == (0, "populated 2 key(s), 0 error(s)")  # one key of each table
    assert (SessionInventory & keys[0]).to_dicts()[0]["file_count"] == 2


def test_the_inventory_skips_a_planned_session_and_makes_it_once_acquired(pipeline, subject, root):
    """The inventory's keys are sessions acquired or later: never reserved before, made by the next populate."""
    from element_session.status import set_status

    keys = add_sessions(pipeline, subject, root, 2)
    when = dt.datetime(2024, 5, 6, 8, 0, 0)
    pipeline.session.SessionStatus.insert1(
        {**keys[0], "session_status": "planned", "status_set_time": when, "status_set_by": "test"}
    )
    assert populate(pipeline, tables=TABLES, restriction={"subject": subject}, progress=False).done == 2
    assert len(SessionInventory & keys[0]) == 0 and len(SessionInventory & keys[1]) == 1
    assert len(SessionInventory.jobs & {"subject": subject}) == 0  # nothing reserved nor failed for it
    set_status(keys[0], "acquiring")
    assert populate(pipeline, tables=TABLES, restriction={"subject": subject}, progress=False).done == 0
    set_status(keys[0], "acquired")
    assert populate(pipeline, tables=TABLES, restriction={"subject": subject}, progress=False).done == 2
    assert len(SessionInventory & keys[0]) == 1
    set_status(keys[0], "qc_passed")
    change = set_status(keys[0], "acquired", reason="re-sorted")
    assert set(change.downstream) >= {"inventory.SessionInventory", "inventory.FileTypeSummary"}  # as people name them
    assert "downstream tables hold rows" in str(change) and len(SessionInventory & keys[0]) == 1  # kept
    failed = set_status(keys[0], "qc_failed")  # failing QC is moving back too: the rows are named, not deleted
    assert set(failed.downstream) == set(change.downstream) and len(SessionInventory & keys[0]) == 1
    assert set_status(keys[1], "qc_passed").downstream == {}
