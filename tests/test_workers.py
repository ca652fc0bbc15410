"""Workers that survive what clusters do to them: signals, other namespaces, simultaneous starts, dropped connections.

Real processes on the test server: ``element-session populate`` in a child process, stopped by a
signal in the middle of a slow ``make``; the counting pipeline of ``test_populate`` logs every
``make`` step, so that "each key made exactly once" is checked from the log.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from element_session._processes import process_alive
from element_session.populate import clear_jobs, list_jobs
from tests import test_populate
from tests.test_populate import TABLES, add_sessions, as_logged, logged
from workflow.inventory import SessionInventory

#: test_populate's fixtures: a data root, a subject of the test's own, the counting pipeline module
root, subject, counting = test_populate.root, test_populate.subject, test_populate.counting


def start_command(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """``element-session ARGS`` in a child process (its own session, so a signal reaches it alone)."""
    return subprocess.Popen(
        [sys.executable, "-m", "element_session", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for_hangs(log: Path, n: int, proc: subprocess.Popen, timeout: float = 90) -> list[int]:
    """The worker pids of the first ``n`` keys that hang (``HANG`` in their directory), once all are there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        hung = (
            [json.loads(line)["pid"] for line in log.read_text().splitlines() if '"hang"' in line]
            if log.exists()
            else []
        )
        if len(hung) >= n:
            return hung
        time.sleep(0.1)
    out, err = proc.communicate(timeout=30) if proc.poll() is not None else ("", "")
    raise AssertionError(f"the workers never reached {n} hanging keys (exit {proc.poll()}): {out} {err}")


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_populate_stops_its_workers_and_puts_their_keys_back(
    pipeline, subject, root, counting, subprocess_env, tmp_path, signum, status
):
    module, log = counting
    keys = add_sessions(pipeline, subject, root, 6)
    hangs = [root / subject / name / "HANG" for name in ("s001", "s004")]
    for path in hangs:
        path.write_text("wait here")
    env = {
        **subprocess_env,
        "SESSION_ROOT_DIRS": str(root),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), subprocess_env["PYTHONPATH"]]),
    }
    args = ["--pipeline", module.__name__, "populate", "--workers", "2", "--no-progress",
            "--table", "SessionInventory", "--restrict", f"subject={subject}"]  # fmt: skip
    proc = start_command(args, env, tmp_path)
    try:
        workers = wait_for_hangs(log, 2, proc)
        signalled = time.monotonic()
        proc.send_signal(signum)
        err = proc.communicate(timeout=60)[1]
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert proc.returncode == status, err
    assert took < 30  # SLURM's KillWait
    assert "the workers stopped and the keys they were making were put back" in err
    assert not any(process_alive(pid) for pid in workers)
    assert list_jobs(module, tables=TABLES, restriction={"subject": subject}) == []  # neither reserved nor failed
    hung_keys = {keys[1]["session_datetime"], keys[4]["session_datetime"]}
    pending = (SessionInventory.jobs & {"subject": subject, "status": "pending"}).to_dicts()
    assert {row["session_datetime"] for row in pending} >= hung_keys  # put back, for any worker to take
    made_before = logged(log, "insert")
    assert all(count == 1 for count in made_before.values())

    for path in hangs:
        path.unlink()
    done = subprocess.run(
        [sys.executable, "-m", "element_session", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert logged(log, "insert") == dict.fromkeys(as_logged(keys), 1)  # each key made exactly once, over both runs
    assert len(SessionInventory & {"subject": subject}) == 6
    assert list_jobs(module, tables=TABLES, restriction={"subject": subject}) == []


@pytest.mark.parametrize("uts", [True, False], ids=["other-host-name", "same-host-name"])
def test_a_worker_in_other_namespaces_is_never_cleared_while_alive_and_is_once_dead(
    pipeline, subject, root, counting, subprocess_env, tmp_path, uts
):
    """``unshare --pid`` (and ``--uts``, host name changed): a cluster node, or a container with host networking."""
    module, log = counting
    keys = add_sessions(pipeline, subject, root, 3)
    (root / subject / "s000" / "HANG").write_text("wait here")
    env = {
        **subprocess_env,
        "SESSION_ROOT_DIRS": str(root),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), subprocess_env["PYTHONPATH"]]),
    }
    populate = shlex.join([sys.executable, "-m", "element_session", "--pipeline", module.__name__, "populate",
                           "--no-progress", "--table", "SessionInventory",
                           "--restrict", f"subject={subject}"])  # fmt: skip
    name = f"ns-{subject}"
    script = (f"hostname {name} && " if uts else "") + f"exec {populate}"
    flags = ["--uts", "--pid", "--fork", "--kill-child"] if uts else ["--pid", "--fork", "--kill-child"]
    proc = subprocess.Popen(
        ["unshare", *flags, "sh", "-c", script], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for_hangs(log, 1, proc)
        only = {"subject": subject}
        [record] = list_jobs(module, tables=TABLES, restriction=only)
        assert (record.status, record.key, record.host) == ("reserved", keys[0], name if uts else platform.node())
        assert record.pid < 10  # a pid of its own namespace, which may well run here (pid 1 always does)
        assert record.stale is False and record.liveness.startswith("running (connection")

        assert clear_jobs(module, errors=True, stale=True, older_than=0, restriction=only) == []  # whatever its age
        assert [r.key for r in list_jobs(module, tables=TABLES, restriction=only)] == [keys[0]]
        children = psutil.Process(proc.pid).children(recursive=True)
        [worker] = [p for p in children if "element_session.populate_worker" in p.cmdline()]
        worker.kill()  # SIGKILL: no handler runs, the reservation stays
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()  # SIGKILL to unshare: --kill-child ends the namespace, and every process in it
            proc.communicate(timeout=30)

    deadline = time.monotonic() + 20
    cleared: list = []
    while not cleared and time.monotonic() < deadline:  # the server drops the connection within about a second
        cleared = clear_jobs(module, errors=False, stale=True, restriction=only)
        time.sleep(0.2)
    assert [r.key for r in cleared] == [keys[0]]
    assert cleared[0].liveness.startswith("stale: its connection")
    (root / subject / "s000" / "HANG").unlink()
    done = subprocess.run(shlex.split(populate), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert logged(log, "insert") == dict.fromkeys(as_logged(keys), 1)
