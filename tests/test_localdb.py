"""The private server: a first start that fails for real says why and leaves nothing half made; restarts work.

The fault is real: a ``mariadb-install-db`` (or ``initdb``) found first on ``PATH`` runs the machine's
own tool with an option that makes it fail part-way, after it has begun to write the data directory.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from element_session.errors import LocalServerError
from element_session.localdb import LocalServer, ServerInfo, scratch_parent

BACKEND = os.environ.get("DJ_BACKEND", "mysql")
#: the tool of the first start, and what makes it fail after it began writing the data directory
FAULTS = {
    "mysql": ("mariadb-install-db", "--innodb-data-file-path=no-such-size", "innodb"),
    "postgresql": ("initdb", "--no-clean --waldir=/proc/no-such-dir", 'could not create directory "/proc/no-such-dir"'),
}


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory that PostgreSQL's own user can reach (pytest's tmp_path cannot be)."""
    path = Path(tempfile.mkdtemp(prefix="element-session-localdb-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def failing_tool(folder: Path) -> str:
    """A PATH entry whose first-start tool runs the real one with a fault; the text of the tool's own error."""
    tool, fault, said = FAULTS[BACKEND]
    real = shutil.which(tool) or next(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), None)
    assert real, f"{tool} is not installed"
    folder.mkdir()
    wrapper = folder / tool
    wrapper.write_text(f'#!/bin/sh\nexec {real} "$@" {fault}\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return said


def answers(info: ServerInfo) -> bool:
    """Whether the server lets its account in and runs a query."""
    if info.backend == "postgresql":
        import psycopg2

        conn = psycopg2.connect(host=info.host, port=info.port, user=info.user, password=info.password,
                                dbname="postgres", sslmode="disable")  # fmt: skip
    else:
        import pymysql

        conn = pymysql.connect(host=info.host, port=info.port, user=info.user, password=info.password)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone() == (1,)
    finally:
        conn.close()


def test_a_failed_first_start_shows_the_tools_error_leaves_no_data_and_the_next_start_works(scratch, monkeypatch):
    said = failing_tool(scratch / "bin")
    datadir = scratch / "server"
    original_path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{scratch / 'bin'}{os.pathsep}{original_path}")
    server = LocalServer(datadir, BACKEND)
    with pytest.raises(LocalServerError) as caught:
        server.start(timeout=30)
    message = str(caught.value)
    assert f"{FAULTS[BACKEND][0]} failed (exit status" in message and said in message, message
    assert not (datadir / "data").exists() and not (datadir / "first-start").exists()
    password = (datadir / "password").read_text()
    assert password not in message

    monkeypatch.setenv("PATH", original_path)  # the fault removed
    try:
        info = server.start(timeout=60)
        assert answers(info) and info.password == password
        server.stop()
        again = server.start(timeout=60)  # the same object starts again after a stop
        assert answers(again)
    finally:
        server.stop()


def test_data_of_a_first_start_that_was_killed_are_made_again(scratch):
    """A first start killed part-way leaves its marker: the next start makes the data again."""
    datadir = scratch / "server"
    (datadir / "data").mkdir(parents=True)  # what a killed mariadb-install-db or initdb --no-clean leaves
    (datadir / "data" / "aria_log_control").write_bytes(b"\x00" * 52)
    (datadir / "first-start").touch()
    server = LocalServer(datadir, BACKEND)
    try:
        assert answers(server.start(timeout=60))
        assert not (datadir / "first-start").exists()
    finally:
        server.stop()


def test_the_start_command_prints_no_password_and_its_lines_reach_the_server(scratch):
    """`localdb start` prints lines a shell evaluates into a working connection; the password is not among them.

    `localdb stop` says which server it stopped, or that none is running.
    """
    import json
    import subprocess
    import sys

    datadir = scratch / "server"
    command = [sys.executable, "-m", "element_session", "localdb"]
    printed = subprocess.run([*command, "start", str(datadir), "--backend", BACKEND],
                             capture_output=True, text=True, check=True)  # fmt: skip
    try:
        password = (datadir / "password").read_text().strip()
        assert password not in printed.stdout + printed.stderr
        assert 'export DJ_PASS="$(cat ' in printed.stdout
        probe = (
            "import os; from element_session.localdb import server_from_environment; "
            "import tests.test_localdb as t; print(t.answers(server_from_environment()))"
        )
        shell = f'eval "$1"; exec "{sys.executable}" -c "{probe}"'
        reached = subprocess.run(["bash", "-c", shell, "bash", printed.stdout], capture_output=True, text=True,
                                 cwd=Path(__file__).parent.parent)  # fmt: skip
        assert reached.stdout.strip() == "True", reached.stderr
        pid = json.loads((datadir / "server.json").read_text())["pid"]
        stop = [sys.executable, "-m", "element_session.localdb", "stop", str(datadir), "--backend", BACKEND]
        stopped = subprocess.run(stop, capture_output=True, text=True)
        name = {"mysql": "MySQL/MariaDB", "postgresql": "PostgreSQL"}[BACKEND]
        assert (stopped.returncode, stopped.stdout) == (0, f"stopped the {name} server in {datadir} (pid {pid})\n")
        again = subprocess.run(stop, capture_output=True, text=True)  # stopping is idempotent, and says so
        assert (again.returncode, again.stdout, again.stderr) == (0, f"no server is running in {datadir}\n", "")
    finally:
        subprocess.run([*command, "stop", str(datadir), "--backend", BACKEND], capture_output=True, check=True)


def test_stop_without_backend_stops_a_postgresql_server(scratch):
    """`python -m element_session.localdb stop DIR` takes the backend from DIR's server.json, not a default."""
    import json
    import subprocess
    import sys

    from element_session._processes import process_alive

    datadir = scratch / "server"
    command = [sys.executable, "-m", "element_session.localdb"]
    env = {name: value for name, value in os.environ.items() if name != "DJ_BACKEND"}  # the default: mysql
    subprocess.run([*command, "start", str(datadir), "--backend", "postgresql"], capture_output=True, check=True)
    pid = json.loads((datadir / "server.json").read_text())["pid"]
    try:
        assert process_alive(pid)
        stopped = subprocess.run([*command, "stop", str(datadir)], capture_output=True, text=True, env=env)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout == f"stopped the PostgreSQL server in {datadir} (pid {pid})\n"
        assert not process_alive(pid), "the PostgreSQL server is still running"
        assert not (datadir / "server.json").exists()
    finally:
        LocalServer(datadir, "postgresql").stop()


def test_the_suites_own_server_is_a_throw_away_one_in_memory(server: ServerInfo, connection) -> None:
    """``database_server(durable=False)``: its data in :func:`scratch_parent`, without the settings that only a
    crash of the machine needs (InnoDB's doublewrite buffer, PostgreSQL's full-page writes)."""
    if server.use_tls is not False:
        pytest.skip("the tests use a server that element_session.localdb did not start (DJ_HOST, Docker)")
    if server.backend == "postgresql":
        query = "SELECT current_setting('data_directory'), current_setting('full_page_writes')"
    else:
        query = "SELECT @@datadir, IF(@@innodb_doublewrite, 'on', 'off')"
    datadir, crash_setting = connection.query(query).fetchone()
    assert Path(datadir).resolve().is_relative_to(Path(scratch_parent() or tempfile.gettempdir()).resolve())
    assert crash_setting == "off"


def test_a_durable_server_is_the_default(scratch: Path) -> None:
    """A user's ``localdb`` keeps every setting: ``durable=False`` is asked for, never assumed."""
    assert LocalServer(scratch).durable is True


def test_a_temporary_directory_already_in_memory_is_the_scratch_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    """.ci/run's TMPDIR is in /dev/shm: the test server's data go in it, where its clean-up finds a server left."""
    memory = Path("/dev/shm")  # noqa: S108 (only mkdtemp makes a directory there)
    if not memory.is_dir():
        pytest.skip("no /dev/shm on this machine")
    inside = tempfile.mkdtemp(prefix="element-session-scratch-", dir=memory)
    try:
        monkeypatch.setattr(tempfile, "tempdir", inside)
        assert scratch_parent() == inside
    finally:
        os.rmdir(inside)
