"""Faults: a writer killed part-way, a connection dropped by the server, the server gone during ingest and populate.

One ingestion call is one transaction, so whatever stops it leaves either nothing of the input or
all of it, and running it again completes the input exactly. The writer is a real process running
``element-session ingest``; the test watches its connection on the server (the statement it is
running) and strikes while it inserts into a table picked at random, so that kills land inside
the transaction at different points whatever the ingest's internals. The server-gone scenarios run
a private server of their own (``LocalServer``) that they stop or kill without disturbing the server
of the other tests. Each scenario prints its figures (where each kill landed, how long the command
took to give up) for the test log.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from element_session.localdb import LocalServer, ServerInfo, scratch_parent

SUBJECTS, PEOPLE, PROJECTS = ["fk-m1", "fk-m2"], ["fk-ada", "fk-bob"], ["fk-p1", "fk-p2"]
START = dt.datetime(2023, 1, 1, 6, 0, 0)
N_SESSIONS = 5000  # the large file: 45,000 rows over seven tables
HANG_GUARD = 60  # seconds: a command that has not given up by then is hanging
UNREACHABLE = 3  # exit status of element-session when the database cannot be reached
TIMEOUTS = {"ELEMENT_SESSION_CONNECT_TIMEOUT": "2", "ELEMENT_SESSION_READ_TIMEOUT": "3"}  # seconds, for a frozen server

#: A child process running ``element-session``; it first prints the id of its connection, for the test to watch.
INGEST_CHILD = """
import sys
import datajoint as dj
from element_session import cli
from element_session._datajoint_compat import install_connection_rules
install_connection_rules()  # as the command does before it connects
connection = dj.conn()
ident = "SELECT pg_backend_pid()" if connection.adapter.backend == "postgresql" else "SELECT CONNECTION_ID()"
print("connection id:", connection.query(ident).fetchone()[0], file=sys.stderr, flush=True)
sys.exit(cli.main(sys.argv[1:]))
"""
#: The database tables ingestion writes a session's rows into.
SESSION_TABLES = ["session", "session_timezone", "session_experimenter", "project_session", "session_directory",
                  "session_note", "session__attribute"]  # fmt: skip


# -------------------------------------------------------------------------------------------- the input


def session_rows(subjects: list[str], n: int, start: dt.datetime = START) -> list[dict[str, str]]:
    """``n`` sessions as the CSV gives them: every satellite column filled, text with quotes and backslashes."""
    rows = []
    for i in range(n):
        subject = subjects[i % len(subjects)]
        rows.append(
            {
                "subject": subject,
                "session_datetime": f"{start + dt.timedelta(minutes=i):%Y-%m-%dT%H:%M:%S}Z",
                "session_id": str(i),
                "experimenter": ";".join(PEOPLE if i % 3 else PEOPLE[:1]),
                "project": PROJECTS[i % 2],
                "session_dir": f"{subject}/s{i:05d}",
                "session_note": f"note {i}: 'quoted', \\ and ✓",
                "attr.rig": f"rig-{i % 4}",
                "attr.task": f"task {i}",
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def expected_state(rows: list[dict[str, str]]) -> dict[str, set[tuple]]:
    """The rows each session table must hold after ingesting ``rows`` (times in UTC)."""
    state: dict[str, set[tuple]] = {name: set() for name in TABLES}
    for row in rows:
        key = (row["subject"], dt.datetime.strptime(row["session_datetime"], "%Y-%m-%dT%H:%M:%SZ"))
        state["Session"].add((*key, int(row["session_id"])))
        state["SessionTimezone"].add((*key, "UTC"))
        state["SessionExperimenter"] |= {(*key, name) for name in row["experimenter"].split(";")}
        state["ProjectSession"].add((*key, row["project"]))
        state["SessionDirectory"].add((*key, row["session_dir"]))
        state["SessionNote"].add((*key, row["session_note"]))
        state["Attribute"] |= {(*key, name[5:], value) for name, value in row.items() if name.startswith("attr.")}
    return state


#: Each session table and the columns after the session key that identify its rows.
TABLES = {
    "Session": ("session_id",),
    "SessionTimezone": ("session_timezone",),
    "SessionExperimenter": ("user",),
    "ProjectSession": ("project",),
    "SessionDirectory": ("session_dir",),
    "SessionNote": ("session_note",),
    "Attribute": ("attribute_name", "attribute_value"),
}


def partial_sessions(state: dict[str, set[tuple]], expected: dict[str, set[tuple]]) -> list[tuple]:
    """Sessions in ``state`` whose satellite rows are not exactly those the input gave them."""

    def by_session(rows: set[tuple]) -> dict[tuple, set[tuple]]:
        grouped: dict[tuple, set[tuple]] = {}
        for row in rows:
            grouped.setdefault(row[:2], set()).add(row)
        return grouped

    partial = []
    for name in TABLES:
        mine, given = by_session(state[name]), by_session(expected[name])
        partial += [(s[:2], name) for s in state["Session"] if mine.get(s[:2], set()) != given.get(s[:2], set())]
    return partial


# -------------------------------------------------------------------------------------------- reading the database


def db_state(module: ModuleType, subjects: list[str]) -> tuple[dict[str, set[tuple]], dict[str, int]]:
    """(rows, row counts) of every session table for ``subjects``, through DataJoint."""
    tables = {
        "Session": module.Session, "SessionTimezone": module.SessionTimezone,
        "SessionExperimenter": module.SessionExperimenter, "ProjectSession": module.ProjectSession,
        "SessionDirectory": module.SessionDirectory, "SessionNote": module.SessionNote,
        "Attribute": module.Session.Attribute.proj("attribute_value"),
    }  # fmt: skip
    restriction = [{"subject": s} for s in subjects]
    state, counts = {}, {}
    for name, table in tables.items():
        rows = (table & restriction).to_dicts()
        state[name] = {(r["subject"], r["session_datetime"], *(r[c] for c in TABLES[name])) for r in rows}
        counts[name] = len(rows)
    return state, counts


class Raw:
    """A plain driver connection to a private server: the test looks there without DataJoint's own connection."""

    def __init__(self, info: ServerInfo) -> None:
        self.backend = info.backend
        if info.backend == "mysql":
            import pymysql

            self.conn = pymysql.connect(
                host=info.host, port=info.port, user=info.user, password=info.password, charset="utf8mb4",
                autocommit=True,
            )  # fmt: skip
        else:
            import psycopg2

            self.conn = psycopg2.connect(
                host=info.host, port=info.port, user=info.user, password=info.password, dbname="postgres"
            )
            self.conn.autocommit = True

    def name(self, schema: str, table: str) -> str:
        return f"`{schema}`.`{table}`" if self.backend == "mysql" else f'"{schema}"."{table}"'

    def rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self.conn.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())

    def count(self, schema: str, table: str, but_subject: str | None = None) -> int:
        """Rows of ``schema.table`` (those whose subject is not ``but_subject``, if given)."""
        if but_subject is None:
            return self.rows(f"SELECT COUNT(*) FROM {self.name(schema, table)}")[0][0]
        return self.rows(f"SELECT COUNT(*) FROM {self.name(schema, table)} WHERE subject <> %s", (but_subject,))[0][0]

    def close(self) -> None:
        self.conn.close()


def raw_count(info: ServerInfo, schema: str, table: str) -> int:
    """Rows of one table of a private server (0 while the table does not exist yet)."""
    try:
        raw = Raw(info)
    except Exception:
        return 0
    try:
        return raw.count(schema, table)
    except Exception:
        return 0
    finally:
        raw.close()


# -------------------------------------------------------------------------------------------- child processes


@pytest.fixture
def start_child() -> Iterator[Callable[[str, list[str], dict[str, str], Path], subprocess.Popen]]:
    """A starter of ``python -c CODE ARGS`` children; those a failed test left running are killed (by id) and reaped."""
    started: list[subprocess.Popen] = []

    def start(code: str, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        started.append(proc)
        return proc

    yield start
    while started:
        proc = started.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def read_until(
    proc: subprocess.Popen, done: Callable[[str], bool], timeout: float = HANG_GUARD, *, fail: bool = True
) -> str:
    """The child's standard error, read as it comes until ``done(text)`` holds or the child closes it.

    At ``timeout`` seconds the child is killed and the test fails, unless ``fail`` is False: then the
    text read so far is returned.
    """
    fd = proc.stderr.fileno()
    text, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.02)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return text
            text += chunk.decode("utf-8", errors="replace")
            if done(text):
                return text
        elif proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
            return text
    if not fail:
        return text
    proc.kill()
    raise AssertionError(f"the child did not get there within {timeout} s; its standard error:\n{text[-3000:]}")


def connection_id(proc: subprocess.Popen) -> tuple[int, str]:
    """The id of the child's database connection (it prints it first), and what it wrote on stderr so far."""
    text = read_until(proc, lambda t: "connection id:" in t and t.rstrip(" ").endswith("\n"))
    found = re.search(r"connection id:\s*(\d+)", text)
    assert found, f"the child printed no connection id:\n{text[-3000:]}"
    return int(found[1]), text


Query = Callable[[str, tuple], list[tuple]]


def statement(query: Query, backend: str, thread: int) -> str:
    """The start of the statement the connection ``thread`` is running ('' when idle)."""
    if backend == "postgresql":
        rows = query("SELECT left(query, 160) FROM pg_stat_activity WHERE pid = %s AND state = 'active'", (thread,))
    else:
        rows = query("SELECT LEFT(INFO, 160) FROM information_schema.PROCESSLIST WHERE ID = %s", (thread,))
    return (rows[0][0] or "") if rows else ""


def wait_for_insert(proc: subprocess.Popen, query: Query, backend: str, thread: int, table: str) -> str | None:
    """Watch until the child inserts into ``table`` or a table it writes later; that table, or None if it ended first.

    A later table counts too, so that a glance missed while the child was busy elsewhere only moves the point.
    """
    later = "|".join(re.escape(name) for name in SESSION_TABLES[SESSION_TABLES.index(table) :])
    # a multi-row INSERT on MySQL/MariaDB, COPY ... FROM STDIN on PostgreSQL (element_session.bulk)
    insert = re.compile(rf"^\s*(?:INSERT INTO|COPY) [`\"][^`\"]+[`\"]\.[`\"]({later})[`\"]", re.IGNORECASE)
    deadline = time.monotonic() + HANG_GUARD
    while proc.poll() is None:
        found = insert.match(statement(query, backend, thread))
        if found:
            return found[1]
        assert time.monotonic() < deadline, f"the child never inserted into {table} or a later table"
        time.sleep(0.003)
    return None


def dj_query(connection) -> Query:
    return lambda sql, args: connection.query(sql, args=args).fetchall()


def finish(proc: subprocess.Popen, text: str = "") -> tuple[int, str, str]:
    """Wait for the child (at most HANG_GUARD seconds); (exit status, stdout, all of stderr)."""
    try:
        out, err = proc.communicate(timeout=HANG_GUARD)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"the command did not end within {HANG_GUARD} s: it hangs") from None
    return proc.returncode, out.decode("utf-8", "replace"), text + err.decode("utf-8", "replace")


# -------------------------------------------------------------------------------------------- killed writer


@pytest.fixture
def refs(references):
    return references(SUBJECTS, PEOPLE, PROJECTS)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> tuple[Path, dict[str, set[tuple]]]:
    rows = session_rows(SUBJECTS, N_SESSIONS)
    return write_csv(tmp_path_factory.mktemp("faults") / "big.csv", rows), expected_state(rows)


def clear_sessions(module: ModuleType) -> None:
    (module.Session & [{"subject": s} for s in SUBJECTS]).delete()


@dataclass
class Kill:
    """Where one SIGKILL landed."""

    after_seconds: float  # since the child started
    inserting_into: str | None  # the table the child was inserting into (None: before the transaction)
    sessions_after: int  # sessions of the file in the database after the kill


def test_a_writer_killed_at_random_points_leaves_nothing_partial_and_a_rerun_completes_the_file(
    start_child, refs, big_file, subprocess_env, connection, tmp_path
):
    path, expected = big_file
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    backend, query = connection.adapter.backend, dj_query(connection)
    clear_sessions(refs.session)
    kills: list[Kill] = []
    mid_write = 0
    for attempt in range(12):
        if len(kills) >= 5 and mid_write >= 4:
            break
        proc = start_child(INGEST_CHILD, ["ingest", "sessions", str(path)], subprocess_env, tmp_path)
        started = time.monotonic()
        target = None
        if attempt == 0:  # at a random time while the command starts, reads and checks the file
            read_until(proc, lambda _: False, timeout=rng.uniform(0.2, 1.5), fail=False)
        else:  # inside the transaction, while it inserts into a table picked at random
            thread, _ = connection_id(proc)
            target = wait_for_insert(proc, query, backend, thread, rng.choice(SESSION_TABLES)) or "(ended first)"
            time.sleep(rng.uniform(0, 0.02))
        running = proc.poll() is None
        if running:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=HANG_GUARD)
        state, _ = db_state(refs.session, SUBJECTS)
        kill = Kill(round(time.monotonic() - started, 2), target, len(state["Session"]))
        kills.append(kill)
        # one call, one transaction: nothing of the file, or (a kill that came after the commit) all of it
        assert kill.sessions_after in (0, N_SESSIONS), kill
        assert partial_sessions(state, expected) == [], kill
        assert state == (expected if kill.sessions_after else {name: set() for name in TABLES})
        if kill.sessions_after:  # the kill came after the commit (the child may even have ended by itself)
            clear_sessions(refs.session)
        else:
            assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")[-2000:]
            mid_write += target in SESSION_TABLES
    print(f"\nkilled writer (seed {seed}): {len(kills)} kills, {mid_write} inside the transaction: {kills}")
    assert mid_write >= 4, kills

    status, out, err = finish(start_child(INGEST_CHILD, ["ingest", "sessions", str(path)], subprocess_env, tmp_path))
    assert status == 0, err
    assert f"{N_SESSIONS} row(s) read, {N_SESSIONS} new, 0 already present" in out
    state, counts = db_state(refs.session, SUBJECTS)
    assert state == expected
    assert counts == {name: len(rows) for name, rows in expected.items()}  # every row once


def test_a_connection_dropped_by_the_server_mid_transaction_rolls_back(
    start_child, refs, big_file, subprocess_env, connection, tmp_path
):
    """An administrator (or a proxy) ends the writer's connection: DataJoint reconnects, but the transaction is gone."""
    path, _ = big_file
    clear_sessions(refs.session)
    backend = connection.adapter.backend
    proc = start_child(INGEST_CHILD, ["ingest", "sessions", str(path)], subprocess_env, tmp_path)
    thread, text = connection_id(proc)
    assert wait_for_insert(proc, dj_query(connection), backend, thread, "session_note")  # or attributes
    if backend == "postgresql":
        connection.query("SELECT pg_terminate_backend(%s)", args=(thread,))
    else:
        connection.query(f"KILL CONNECTION {thread:d}")
    status, _, err = finish(proc, text)
    assert status == UNREACHABLE, err
    assert "Traceback" not in err and "element-session: cannot reach the database" in err
    state, _ = db_state(refs.session, SUBJECTS)
    assert state == {name: set() for name in TABLES}


# -------------------------------------------------------------------------------------------- server gone

GONE_PREFIX = "gone_"
N_GONE = 3000  # sessions of the ingest interrupted by the server stopping
N_POPULATE = 120  # sessions whose directories populate inventories when the server is killed
FILES_PER_SESSION = 2

SETUP_CHILD = """
import datetime as dt
import sys
import workflow.pipeline as p
from tests.helpers import add_references
add_references(p, {subjects!r}, {people!r}, {projects!r})
start = dt.datetime(2024, 1, 1)
keys = [{{"subject": "gp-m1", "session_datetime": start + dt.timedelta(minutes=i)}} for i in range({n})]
p.session.Session.insert(keys)
p.session.SessionDirectory.insert([{{**k, "session_dir": f"gp-m1/s{{i:03d}}"}} for i, k in enumerate(keys)])
"""

#: ``element-session populate`` (its progress bar on, the default), preceded on a rerun by ``jobs --clear-stale``.
POPULATE_CHILD = """
import sys
from element_session import cli
only = ["--restrict", "subject=gp-m1"]
if sys.argv[1] == "rerun" and cli.main(["jobs", "--clear-errors", "--clear-stale", *only]):
    sys.exit("jobs --clear-stale failed")
sys.exit(cli.main(["populate", "--workers", "2", *only]))
"""


@dataclass
class Private:
    """A private server of this module, stopped, killed and restarted by the tests, with a child's environment."""

    datadir: Path
    backend: str
    local: LocalServer
    env: dict[str, str]
    root: Path

    @property
    def info(self) -> ServerInfo:
        return self.local.info

    def restart(self) -> ServerInfo:
        """Start the server again on the same data directory (a new port); point the children there."""
        self.local.stop()  # reaps a killed server and forgets its state
        self.local = LocalServer(self.datadir, self.backend, durable=False)
        info = self.local.start()
        self.env.update(info.environment())
        return info

    def kill(self) -> list[int]:
        """SIGKILL the server's processes (PostgreSQL: the postmaster and its backends); their ids."""
        pid = json.loads((self.datadir / "server.json").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)  # first: a stopped postmaster starts no new backend
        children = _children(pid)
        _signal(children, signal.SIGKILL)
        return [pid, *children]

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """The server's processes stopped (SIGSTOP) inside the block: it accepts connections and never answers."""
        pid = json.loads((self.datadir / "server.json").read_text())["pid"]
        os.kill(pid, signal.SIGSTOP)  # first: a stopped postmaster starts no new backend
        children = _children(pid)
        try:
            _signal(children, signal.SIGSTOP)
            yield
        finally:
            _signal([*children, pid], signal.SIGCONT)


def _signal(pids: list[int], number: signal.Signals) -> None:
    """Send NUMBER to each process still there: a PostgreSQL backend may end between listing and signal."""
    for each in pids:
        with suppress(ProcessLookupError):
            os.kill(each, number)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture(scope="module")
def private(server: ServerInfo, subprocess_env: dict[str, str]) -> Iterator[Private]:
    """A private server (the backend of this run) with the pipeline, references and sessions to populate."""
    datadir = Path(tempfile.mkdtemp(prefix="element-session-faults-", dir=scratch_parent()))
    os.chmod(datadir, 0o755)  # noqa: S103 (PostgreSQL runs as its own user and must reach its directory)
    local = LocalServer(datadir / "server", os.environ.get("DJ_BACKEND", server.backend), durable=False)
    try:
        info = local.start()
        root = datadir / "raw"
        for i in range(N_POPULATE):
            directory = root / "gp-m1" / f"s{i:03d}"
            directory.mkdir(parents=True)
            for j in range(FILES_PER_SESSION):
                (directory / f"part{j}.dat").write_bytes(os.urandom(2048))
        env = {**subprocess_env, **info.environment(), "DATABASE_PREFIX": GONE_PREFIX, "SESSION_ROOT_DIRS": str(root)}
        setup = SETUP_CHILD.format(subjects=[*SUBJECTS, "gp-m1"], people=PEOPLE, projects=PROJECTS, n=N_POPULATE)
        result = subprocess.run([sys.executable, "-c", setup], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        state = Private(datadir / "server", local.backend, local, env, root)
        yield state
        local = state.local
    finally:
        local.stop()
        shutil.rmtree(datadir, ignore_errors=True)


def ingest_until_inserting(
    start_child: Callable, private: Private, path: Path, env: dict[str, str], cwd: Path, table: str | None = None
) -> tuple[subprocess.Popen, str, str]:
    """``element-session ingest sessions PATH`` started, once it writes ``table`` or a later one of a session's
    satellites (default: a table picked at random): the child, its stderr so far, the table it was inserting into."""
    proc = start_child(INGEST_CHILD, ["ingest", "sessions", str(path)], env, cwd)
    thread, text = connection_id(proc)
    watcher = Raw(private.info)
    try:
        target = wait_for_insert(proc, lambda sql, args: watcher.rows(sql, args), private.backend, thread,
                                 table or random.choice(SESSION_TABLES[1:-1]))  # fmt: skip
        assert target, f"the ingest ended before the server could be struck:\n{finish(proc, text)}"
    finally:
        watcher.close()
    return proc, text, target


def test_server_stopped_during_an_ingest_exit_3_nothing_partial_and_the_rerun_completes(start_child, private, tmp_path):
    rows = session_rows(SUBJECTS, N_GONE, start=dt.datetime(2022, 6, 1))
    path = write_csv(tmp_path / "sessions.csv", rows)
    expected = expected_state(rows)
    proc, text, target = ingest_until_inserting(start_child, private, path, private.env, tmp_path)
    port = private.info.port
    stopped = time.monotonic()
    private.local.stop()
    status, out, err = finish(proc, text)
    waited = time.monotonic() - stopped
    print(f"\nserver stopped while inserting into {target}: the command gave up after {waited:.2f} s")
    assert status == UNREACHABLE, err
    assert f"element-session: cannot reach the database at 127.0.0.1:{port}" in err
    assert "Traceback" not in err and "row(s) read" not in out

    info = private.restart()
    raw = Raw(info)
    try:
        for name in ("session", "session__attribute", "session_experimenter", "session_note"):
            assert raw.count(GONE_PREFIX + "session", name, but_subject="gp-m1") == 0, name  # rolled back whole
        status, out, err = finish(start_child(INGEST_CHILD, ["ingest", "sessions", str(path)], private.env, tmp_path))
        assert status == 0, err
        assert f"{N_GONE} row(s) read, {N_GONE} new, 0 already present" in out
        sessions = raw.rows(
            f"SELECT subject, session_datetime, session_id FROM {raw.name(GONE_PREFIX + 'session', 'session')} "
            "WHERE subject <> %s",
            ("gp-m1",),
        )
        assert len(sessions) == N_GONE and set(sessions) == expected["Session"]
        counts = {
            "SessionTimezone": "session_timezone", "SessionExperimenter": "session_experimenter",
            "ProjectSession": "project_session", "SessionDirectory": "session_directory",
            "SessionNote": "session_note", "Attribute": "session__attribute",
        }  # fmt: skip
        for name, table in counts.items():
            assert raw.count(GONE_PREFIX + "session", table, but_subject="gp-m1") == len(expected[name]), name
    finally:
        raw.close()


def test_server_killed_during_a_populate_exit_3_nothing_partial_and_the_rerun_completes(start_child, private, tmp_path):
    inventory = GONE_PREFIX + "inventory"
    proc = start_child(POPULATE_CHILD, ["run"], private.env, tmp_path)
    deadline = time.monotonic() + HANG_GUARD
    while raw_count(private.info, inventory, "_session_inventory") < 15:
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, "populate made no progress"
        time.sleep(0.05)
    port = private.info.port
    killed = time.monotonic()
    private.kill()
    status, out, err = finish(proc)
    waited = time.monotonic() - killed
    print(f"\nserver killed during populate: the command gave up after {waited:.2f} s")
    assert status == UNREACHABLE, err
    assert f"element-session: cannot reach the database at 127.0.0.1:{port}" in err
    assert "Traceback" not in err

    info = private.restart()
    raw = Raw(info)
    try:
        made = raw.count(inventory, "_session_inventory")
        assert 15 <= made < N_POPULATE
        # each inventory holds exactly its files; each summary exactly its file types
        files = raw.rows(
            f"SELECT i.file_count, COUNT(f.file_path) FROM {raw.name(inventory, '_session_inventory')} i "
            f"LEFT JOIN {raw.name(inventory, '_session_inventory__file')} f "
            "ON f.subject = i.subject AND f.session_datetime = i.session_datetime "
            "GROUP BY i.subject, i.session_datetime, i.file_count"
        )
        assert len(files) == made and all(n == m == FILES_PER_SESSION for n, m in files)
        types = raw.rows(
            f"SELECT s.n_file_types, COUNT(t.file_type) FROM {raw.name(inventory, '__file_type_summary')} s "
            f"LEFT JOIN {raw.name(inventory, '__file_type_summary__file_type')} t "
            "ON t.subject = s.subject AND t.session_datetime = s.session_datetime "
            "GROUP BY s.subject, s.session_datetime, s.n_file_types"
        )
        assert all(n == m == 1 for n, m in types)
        jobs = raw.name(inventory, "~~session_inventory")
        reserved = raw.rows(f"SELECT COUNT(*) FROM {jobs} WHERE status = %s", ("reserved",))[0][0]
        status, out, err = finish(start_child(POPULATE_CHILD, ["rerun"], private.env, tmp_path))
        assert status == 0, err
        cleared = re.search(r"cleared .*", out)[0]
        print(f"{made} inventories made before the kill, {reserved} reservation(s) left by the killed workers; "
              f"rerun after the restart: {cleared}; {re.search(r'populated .*', out)[0]}")  # fmt: skip
        assert raw.count(inventory, "_session_inventory") == N_POPULATE
        assert raw.count(inventory, "_session_inventory__file") == N_POPULATE * FILES_PER_SESSION
        assert raw.count(inventory, "__file_type_summary") == N_POPULATE
        assert raw.count(inventory, "__file_type_summary__file_type") == N_POPULATE
        assert raw.rows(f"SELECT COUNT(*) FROM {jobs} WHERE status IN ('reserved', 'error')")[0][0] == 0
    finally:
        raw.close()


# -------------------------------------------------------------------------------------------- server frozen


def test_a_frozen_server_fails_a_query_within_the_read_timeout_and_the_connection_is_replaced(private, monkeypatch):
    """Every process of the server stopped (SIGSTOP): it accepts connections and never answers, like a dead tunnel."""
    import datajoint as dj

    from element_session._datajoint_compat import install_connection_rules
    from element_session.database import database_errors
    from element_session.errors import DatabaseUnreachableError

    for name, value in TIMEOUTS.items():
        monkeypatch.setenv(name, value)
    install_connection_rules()
    info = private.info
    own = dj.Connection(info.host, info.user, info.password, port=info.port, use_tls=info.use_tls)
    try:
        before = own.connection_id
        with private.frozen():
            started = time.monotonic()
            with pytest.raises(DatabaseUnreachableError) as raised, database_errors(own):
                own.query("SELECT 1", reconnect=False)
            waited = time.monotonic() - started
        print(f"\nfrozen server: the query gave up after {waited:.2f} s: {raised.value}")
        assert 3 <= waited < 3 + 5  # the read timeout, not forever
        assert f"cannot reach the database at {info.host}:{info.port} as user {info.user!r}" in str(raised.value)
        assert re.search(r"no answer .*within 3 s\W+ELEMENT_SESSION_READ_TIMEOUT", str(raised.value)), raised.value
        assert own.query("SELECT 1").fetchone()[0] == 1  # thawed: the next call connects again
        assert own.connection_id != before
    finally:
        own.close()


def test_server_frozen_during_an_ingest_exit_3_within_the_timeouts_nothing_partial_and_the_rerun_completes(
    start_child, private, tmp_path
):
    rows = session_rows(SUBJECTS, N_GONE, start=dt.datetime(2021, 6, 1))
    for row in rows:  # numbers of their own: a subject's session number is taken once
        row["session_id"] = str(N_GONE + int(row["session_id"]))
    path = write_csv(tmp_path / "sessions.csv", rows)
    env = {**private.env, **TIMEOUTS}
    before = raw_count(private.info, GONE_PREFIX + "session", "session")
    proc, text, target = ingest_until_inserting(start_child, private, path, env, tmp_path, SESSION_TABLES[1])
    port = private.info.port
    with private.frozen():
        started = time.monotonic()
        status, out, err = finish(proc, text)
        waited = time.monotonic() - started
    print(f"\nserver frozen while inserting into {target}: the command gave up after {waited:.2f} s")
    assert status == UNREACHABLE, err
    assert f"element-session: cannot reach the database at 127.0.0.1:{port}" in err
    # the read timeout ran out, then DataJoint's reconnect the connect timeout
    assert re.search(r"no answer .*within \d+ s\W+ELEMENT_SESSION_(READ|CONNECT)_TIMEOUT", err), err
    assert waited < HANG_GUARD / 2, "bounded by the read and connect timeouts (a few of each), not a hang"
    assert "Traceback" not in err and "row(s) read" not in out

    raw = Raw(private.info)
    try:
        assert raw.count(GONE_PREFIX + "session", "session") == before  # rolled back whole
        status, out, err = finish(start_child(INGEST_CHILD, ["ingest", "sessions", str(path)], private.env, tmp_path))
        assert status == 0, err
        assert f"{N_GONE} row(s) read, {N_GONE} new, 0 already present" in out
        assert raw.count(GONE_PREFIX + "session", "session") == before + N_GONE
    finally:
        raw.close()
