"""Workers that survive what clusters do to them: signals, other namespaces, simultaneous starts, dropped connections.

Real processes on the test server: ``element-session populate`` in a child process, stopped by a
signal in the middle of a slow ``make``; the counting pipeline of ``test_populate`` logs every
``make`` step, so that "each key made exactly once" is checked from the log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from element_session._datajoint_compat import install_connection_rules
from element_session._processes import process_alive
from element_session.localdb import drop_schemas
from element_session.populate import clear_jobs, list_jobs
from tests import test_populate
from tests.helpers import create_account, drop_account
from tests.test_populate import TABLES, add_sessions, as_logged, logged
from tests.web_accounts import SCHEMAS
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


def pipeline_env(subprocess_env: dict[str, str], root: Path, tmp_path: Path) -> dict[str, str]:
    """The environment of a command whose pipeline module the test wrote into ``tmp_path``, data under ``root``."""
    return {
        **subprocess_env,
        "SESSION_ROOT_DIRS": str(root),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), subprocess_env["PYTHONPATH"]]),
    }


def populate_inventory(name: str, subject: str) -> list[str]:
    """``element-session populate`` of the pipeline module ``name``'s SessionInventory, for ``subject``'s keys."""
    return [sys.executable, "-m", "element_session", "--pipeline", name, "populate", "--no-progress",
            "--table", "SessionInventory", "--restrict", f"subject={subject}"]  # fmt: skip


def sessions_marked(marker, pipeline, subject, root, subprocess_env, tmp_path, n):
    """``n`` sessions, the second one's directory holding the file ``marker`` that :data:`MARKED_MODULE` (written
    into ``tmp_path``) acts on; (their keys, a function running populate on them)."""
    name = f"marked_pipeline_{secrets.token_hex(4)}"
    (tmp_path / f"{name}.py").write_text(MARKED_MODULE)
    keys = add_sessions(pipeline, subject, root, n)
    (root / subject / "s001" / marker).write_text("act here")
    env, command = pipeline_env(subprocess_env, root, tmp_path), populate_inventory(name, subject)
    return keys, lambda: subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)


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
    said = "stopped by SIGTERM" if signum == signal.SIGTERM else "interrupted"
    assert err.splitlines() == [f"{said}: the workers stopped and the keys they were making were put back"], err
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


def test_jobs_written_under_another_session_time_zone_are_due_for_every_worker(
    pipeline, subject, root, counting, subprocess_env, tmp_path, server
):
    if server.backend != "postgresql":
        pytest.skip("PGTZ is PostgreSQL's client time zone; a MySQL client has no such setting")
    module, log = counting
    keys = add_sessions(pipeline, subject, root, 4)
    env = {
        **subprocess_env,
        "SESSION_ROOT_DIRS": str(root),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), subprocess_env["PYTHONPATH"]]),
    }
    args = ["--pipeline", module.__name__, "populate", "--no-progress", "--table", "SessionInventory",
            "--restrict", f"subject={subject}"]  # fmt: skip
    command = [sys.executable, "-m", "element_session", *args]
    tokyo = subprocess.run(
        [*command, "--limit", "1"], env={**env, "PGTZ": "Asia/Tokyo", "TZ": "Asia/Tokyo"},
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert (tokyo.returncode, tokyo.stdout.strip()) == (0, "populated 1 key(s), 0 error(s)"), tokyo.stderr
    pending = SessionInventory.jobs & {"subject": subject, "status": "pending"}
    assert len(pending) == 3  # written by the worker in Tokyo

    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert (done.returncode, done.stdout.strip()) == (0, "populated 3 key(s), 0 error(s)"), done.stderr
    assert logged(log, "insert") == dict.fromkeys(as_logged(keys), 1)


def test_a_connection_the_server_ended_is_replaced_on_the_next_call(connection, server):
    import datajoint as dj

    install_connection_rules()
    own = dj.Connection(dj.config["database.host"], dj.config["database.user"], dj.config["database.password"],
                        port=dj.config["database.port"])  # fmt: skip
    try:
        first = own.connection_id
        if server.backend == "postgresql":
            connection.query("SELECT pg_terminate_backend(%s)", args=(first,))
            zone, server_id = "SHOW TIME ZONE", "SELECT pg_backend_pid()"
        else:
            connection.query(f"KILL {int(first)}")
            zone, server_id = "SELECT @@session.time_zone", "SELECT CONNECTION_ID()"
        time.sleep(0.5)

        assert own.query("SELECT 1").fetchone()[0] == 1  # replaced, not "cannot reach the database" for good
        assert own.connection_id != first
        assert own.connection_id == own.query(server_id).fetchone()[0]  # so jobs name the live connection
        assert own.query(zone).fetchone()[0] in ("UTC", "+00:00")  # on the new connection too
    finally:
        own.close()


def test_an_unresponsive_server_gives_exit_3_within_bounded_time(subprocess_env, tmp_path):
    """A listener that accepts connections and never answers: a frozen server, a dead SSH tunnel."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    env = {**subprocess_env, "DJ_HOST": "127.0.0.1", "DJ_PORT": str(listener.getsockname()[1]),
           "ELEMENT_SESSION_CONNECT_TIMEOUT": "2", "ELEMENT_SESSION_READ_TIMEOUT": "2"}  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, "-m", "element_session", "sessions"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        listener.close()
        for sock in held:
            sock.close()
    assert done.returncode == 3, done.stderr
    assert "cannot reach the database at 127.0.0.1" in done.stderr
    assert held  # it did connect: the server accepted and never answered


ACTIVATE_TOGETHER = """
import pathlib, sys, time
import datajoint as dj
dj.conn()  # connected before the start, so that the imports below begin together
here = pathlib.Path(sys.argv[1])
(here / f"ready-{sys.argv[2]}").touch()
while not (here / "go").exists():
    time.sleep(0.005)
import workflow.pipeline  # activates every schema of the workflow under DATABASE_PREFIX
print(workflow.pipeline.inventory.SessionInventory.jobs.is_declared)
"""


def test_eight_processes_activating_together_all_activate_on_a_new_and_an_existing_prefix(subprocess_env, tmp_path):
    prefix = f"test_{secrets.token_hex(4)}_together_"
    env = {**subprocess_env, "DATABASE_PREFIX": prefix}
    try:
        for round_ in ("new", "existing"):
            here = tmp_path / round_
            here.mkdir()
            procs = [
                subprocess.Popen([sys.executable, "-c", ACTIVATE_TOGETHER, str(here), str(i)], env=env, cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for i in range(8)
            ]  # fmt: skip
            deadline = time.monotonic() + 120
            while len(list(here.glob("ready-*"))) < 8 and time.monotonic() < deadline:
                time.sleep(0.01)
            (here / "go").touch()  # the barrier opens
            ended = [(proc.wait(timeout=300), *proc.communicate()) for proc in procs]
            results = [(status, out.strip().splitlines()[-1:]) for status, out, _ in ended]  # DataJoint prints too
            assert results == [(0, ["True"])] * 8, [err for _, _, err in ended]
    finally:
        drop_schemas(prefix)


MARKED_MODULE = '''
"""The workflow pipeline; a session directory holding DROP has its worker's connection ended mid-key, one
holding EXIT has its make call sys.exit(0), as some libraries do."""
import os
import sys

import datajoint as dj

from workflow.inventory import SessionInventory
from workflow.pipeline import *  # noqa: F403

_compute = SessionInventory.make_compute


def make_compute(self, key, directory, files):
    if os.path.exists(os.path.join(directory, "EXIT")):
        sys.exit(0)
    return _compute(self, key, directory, files)


_insert = SessionInventory.make_insert


def make_insert(self, key, master, files):
    if os.path.exists(os.path.join(master["session_path"], "DROP")):  # end this connection, as the server would
        own = dj.conn()
        other = dj.Connection(dj.config["database.host"], dj.config["database.user"], dj.config["database.password"],
                              port=dj.config["database.port"])
        if own.adapter.backend == "postgresql":
            other.query("SELECT pg_terminate_backend(%s)", args=(own.connection_id,))
        else:
            other.query(f"KILL {int(own.connection_id)}")
        other.close()
    return _insert(self, key, master, files)


SessionInventory.make_compute, SessionInventory.make_insert = make_compute, make_insert
'''


def test_a_worker_whose_connection_drops_mid_key_records_that_key_and_goes_on(
    pipeline, subject, root, subprocess_env, tmp_path
):
    keys, run = sessions_marked("DROP", pipeline, subject, root, subprocess_env, tmp_path, 4)
    done = run()

    assert done.returncode == 1, done.stderr  # a key failed; the worker did not
    assert done.stdout.startswith("populated 3 key(s), 1 error(s)"), done.stdout
    assert "worker(s) failed" not in done.stdout
    [failed] = list_jobs(pipeline, tables=TABLES, restriction={"subject": subject})
    assert (failed.status, failed.key) == ("error", keys[1])
    assert "LostConnectionError" in failed.error_message, failed.error_message
    assert len(SessionInventory & {"subject": subject}) == 3
    assert len(SessionInventory & keys[1]) == 0  # its transaction was rolled back


def test_an_account_without_process_privilege_judges_its_own_reservations_and_says_so_for_others(
    connection, server, pipeline, subject, root, subprocess_env, tmp_path
):
    if server.backend != "mysql":
        pytest.skip("PostgreSQL lists every account's connections in pg_stat_activity: there is no such account")
    user, password = f"np_{secrets.token_hex(4)}", f"np-{secrets.token_urlsafe(12)}"
    keys = add_sessions(pipeline, subject, root, 2)
    common = {
        "status": "reserved",
        "priority": 5,
        "host": "node-7",
        "pid": 4242,
        "reserved_time": dt.datetime(2001, 1, 1),
    }
    mine = {**keys[0], **common, "user": f"{user}@localhost", "connection_id": 987654321}  # its connection is gone
    others = {**keys[1], **common, "user": connection.get_user(), "connection_id": connection.connection_id}  # alive
    SessionInventory.jobs.insert([mine, others])
    create_account(connection, user, password, [f"{pipeline.DATABASE_PREFIX}{name}" for name in SCHEMAS],
                   "SELECT, INSERT, UPDATE, DELETE")  # fmt: skip
    env = {**subprocess_env, "DJ_USER": user, "DJ_PASS": password, "SESSION_ROOT_DIRS": str(root)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "element_session", "jobs", "--clear-stale", "--older-than", "0",
             "--restrict", f"subject={subject}"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        drop_account(connection, user)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "cleared 0 failed key(s) and 1 stale reservation(s)"  # its own, whose connection is gone
    [row] = [line for line in lines[2:] if subject in line]
    assert f"{keys[1]['session_datetime'].isoformat()}+00:00" in row  # docs/times.md: UTC marked
    assert f"not judged: account {user!r} lacks the PROCESS privilege" in row
    assert [r.key for r in list_jobs(pipeline, tables=TABLES, restriction={"subject": subject})] == [keys[1]]


HOLDING_MODULE = '''
"""The workflow pipeline; a file HOLDS/<session directory name> keeps the key's worker in make until it goes."""
import json
import os
import time

from workflow.inventory import SessionInventory
from workflow.pipeline import *  # noqa: F403

LOG, HOLDS = {log!r}, {holds!r}
_compute = SessionInventory.make_compute


def make_compute(self, key, directory, files):
    hold = os.path.join(HOLDS, os.path.basename(directory))  # not in the directory: its listing must not change
    if os.path.exists(hold):
        with open(LOG, "a") as log:
            log.write(json.dumps({{"event": "hold", "pid": os.getpid()}}) + "\\n")
        while os.path.exists(hold):
            time.sleep(0.05)
    return _compute(self, key, directory, files)


SessionInventory.make_compute = make_compute
'''


def holding_pipeline(tmp_path: Path) -> tuple[str, Path]:
    """:data:`HOLDING_MODULE` written into ``tmp_path`` (its holds in ``tmp_path/holds``): (its name, its log)."""
    name, log = f"holding_pipeline_{secrets.token_hex(4)}", tmp_path / "hold.log"
    (tmp_path / "holds").mkdir()
    (tmp_path / f"{name}.py").write_text(HOLDING_MODULE.format(log=str(log), holds=str(tmp_path / "holds")))
    return name, log


def test_keys_put_back_by_a_stopped_command_are_made_by_another_still_running(
    pipeline, subject, root, subprocess_env, tmp_path
):
    name, log = holding_pipeline(tmp_path)
    keys = add_sessions(pipeline, subject, root, 2)
    holds = [tmp_path / "holds" / f"s00{i}" for i in range(2)]
    for path in holds:
        path.write_text("wait")
    env = {
        **subprocess_env,
        "SESSION_ROOT_DIRS": str(root),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), subprocess_env["PYTHONPATH"]]),
    }
    args = ["--pipeline", name, "populate", "--no-progress", "--table", "SessionInventory",
            "--restrict", f"subject={subject}"]  # fmt: skip
    stopped = start_command(args, env, tmp_path)
    other = start_command(args, env, tmp_path)
    try:
        wait_for_holds = time.monotonic() + 90
        while (len(log.read_text().splitlines()) if log.exists() else 0) < 2 and time.monotonic() < wait_for_holds:
            time.sleep(0.1)
        assert len(log.read_text().splitlines()) == 2, "each command did not reserve one key"
        stopped.send_signal(signal.SIGTERM)
        stopped.communicate(timeout=60)
        assert stopped.returncode == 143
        for path in holds:
            path.unlink()
        out, err = other.communicate(timeout=120)
    finally:
        for proc in (stopped, other):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert (other.returncode, out.strip()) == (0, "populated 2 key(s), 0 error(s)"), out + err  # with the put-back one
    made = (SessionInventory & {"subject": subject}).proj().to_dicts()
    assert sorted(row["session_datetime"] for row in made) == [key["session_datetime"] for key in keys]
    assert list_jobs(pipeline, tables=TABLES, restriction={"subject": subject}) == []


def test_a_make_that_calls_sys_exit_fails_its_key_and_its_worker_not_the_run_silently(
    pipeline, subject, root, subprocess_env, tmp_path
):
    keys, run = sessions_marked("EXIT", pipeline, subject, root, subprocess_env, tmp_path, 3)
    done = run()

    assert done.returncode == 1, done.stdout + done.stderr  # was 0: "populated 0 key(s), 0 error(s)"
    assert "1 error(s); 1 worker(s) failed: worker pid " in done.stdout.splitlines()[0], done.stdout
    assert "the make of inventory.SessionInventory called sys.exit(0)" in done.stdout
    named = f"SessionInventory subject={subject}, session_datetime=2024-05-06T07:01:00+00:00: SystemExit: 0"
    assert named in done.stdout  # the failed key, in the summary
    [failed] = list_jobs(pipeline, tables=TABLES, restriction={"subject": subject})
    assert (failed.status, failed.key, failed.error_message) == ("error", keys[1], "SystemExit: 0")
    assert len(SessionInventory & {"subject": subject}) == 1  # the worker ended there; the next run makes the rest

    again = run()
    assert (again.returncode, again.stdout.strip()) == (0, "populated 1 key(s), 0 error(s)"), again.stdout
    assert len(SessionInventory & {"subject": subject}) == 2  # the failed key waits for --clear-errors


def test_sigterm_to_one_worker_ends_it_puts_its_key_back_and_says_the_worker_stopped(
    pipeline, subject, root, subprocess_env, tmp_path
):
    name, log = holding_pipeline(tmp_path)
    keys = add_sessions(pipeline, subject, root, 3)
    hold = tmp_path / "holds" / "s000"
    hold.write_text("wait")
    env = pipeline_env(subprocess_env, root, tmp_path)
    args = ["--pipeline", name, "populate", "--no-progress", "--workers", "2", "--table", "SessionInventory",
            "--restrict", f"subject={subject}"]  # fmt: skip
    proc = start_command(args, env, tmp_path)
    try:
        deadline = time.monotonic() + 90
        while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        worker = json.loads(log.read_text().splitlines()[0])["pid"]
        os.kill(worker, signal.SIGTERM)  # that worker only, not the command
        while process_alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        hold.unlink()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert proc.returncode == 1, out + err  # was 0, as if every worker had finished (docs/populate.md: a worker failed)
    assert f"1 worker(s) failed: worker pid {worker}: stopped by SIGTERM" in out, out
    assert {r.status for r in list_jobs(pipeline, tables=TABLES, restriction={"subject": subject})} <= {"pending"}
    done = subprocess.run([sys.executable, "-m", "element_session", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    made = (SessionInventory & {"subject": subject}).proj().to_dicts()
    assert sorted(row["session_datetime"] for row in made) == [key["session_datetime"] for key in keys]
