"""Secrets: no password in any message, log line, exception text or ``repr`` the package produces.

Passwords here are long random strings, so that finding one anywhere is proof of a leak. The
command runs with DataJoint's most verbose logging (``DJ_LOG_LEVEL=DEBUG``) on a private server:
connected, with a wrong password, on a wrong port, and after the server stopped. In this process,
connection failures are turned into the package's typed errors, whose text, ``repr`` and formatted
traceback (with the chained original exception) are searched too, as are the private server's
own files and the command lines of populate's worker processes. A one-character and a common-word
password, which cannot be searched for, are checked the other way: the command says exactly what it
says with a long random one.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

import datajoint as dj
import pytest

from element_session.database import translate, without_password
from element_session.errors import DatabaseUnreachableError, PermissionDeniedError
from element_session.localdb import LocalServer, ServerInfo, drop_schemas, server_from_environment
from element_session.populate import populate

UNREACHABLE, DENIED = 3, 4


def everything_said(err: BaseException) -> str:
    """An exception's text, repr and formatted traceback, chained exceptions included."""
    return "\n".join([str(err), repr(err), *traceback.format_exception(err)])


class Private:
    """A private server of this module (the backend of the run), which a test stops and another starts again."""

    def __init__(self, datadir: Path, backend: str) -> None:
        self.datadir, self.backend = datadir, backend
        self.local = LocalServer(datadir, backend)

    def running(self) -> ServerInfo:
        """The server, started again if a test stopped it (the same object starts again)."""
        return self.local.start()


@pytest.fixture(scope="module")
def private(server: ServerInfo) -> Iterator[Private]:
    datadir = Path(tempfile.mkdtemp(prefix="element-session-secrets-"))
    os.chmod(datadir, 0o755)  # noqa: S103 (PostgreSQL runs as its own user and must reach its directory)
    state = Private(datadir / "server", os.environ.get("DJ_BACKEND", server.backend))
    try:
        state.running()
        yield state
    finally:
        state.local.stop()
        shutil.rmtree(datadir, ignore_errors=True)


def test_server_descriptions_never_show_the_password(private, monkeypatch):
    local = private.local
    info = private.running()
    assert len(info.password) >= 20
    for text in (repr(info), str(info), f"{info}", f"{info!r}", repr(local), str(local)):
        assert info.password not in text
    secret = f"Env-{secrets.token_urlsafe(16)}"
    monkeypatch.setenv("DJ_HOST", "db.example.org:3307")
    monkeypatch.setenv("DJ_PASS", secret)
    from_environment = server_from_environment()
    assert from_environment.password == secret
    assert secret not in repr(from_environment) + str(from_environment)


def test_the_command_never_shows_the_password_connected_refused_or_with_the_server_gone(
    private, subprocess_env, tmp_path
):
    info = private.running()
    env = {**subprocess_env, **info.environment(), "DATABASE_PREFIX": "secrets_", "DJ_LOG_LEVEL": "DEBUG"}
    wrong = f"Wrong-{secrets.token_urlsafe(16)}"

    def command(**changes: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "element_session", "-v", "sessions", "--format", "json"],
                              env=env | changes, cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip

    outcomes = {
        "connected": command(),  # activates the pipeline's schemas: every DEBUG line of it is searched
        "wrong password": command(DJ_PASS=wrong),
        "wrong port": command(DJ_PORT="9"),
    }
    private.local.stop()
    outcomes["server stopped"] = command()
    statuses = {name: result.returncode for name, result in outcomes.items()}
    print(f"\nexit statuses: {statuses}")
    for name, result in outcomes.items():
        said = result.stdout + result.stderr
        assert info.password not in said and wrong not in said, name
    assert statuses["connected"] == 0 and outcomes["connected"].stdout.strip() == "[]"
    assert "Executing SQL" in outcomes["connected"].stderr  # DataJoint's DEBUG lines were on, and searched
    assert statuses["wrong port"] == UNREACHABLE and "cannot reach the database at 127.0.0.1:9" in (
        outcomes["wrong port"].stderr
    )
    assert statuses["server stopped"] == UNREACHABLE
    assert f"cannot reach the database at 127.0.0.1:{info.port}" in outcomes["server stopped"].stderr
    assert statuses["wrong password"] == DENIED and outcomes["wrong password"].stdout == ""
    assert f"the database at 127.0.0.1:{info.port} as user 'dj' refused: " in outcomes["wrong password"].stderr
    # the private server's own files hold no password in clear, but the 0600 file it is kept in
    for path in private.datadir.iterdir():
        if path.is_file() and path.name != "password":
            assert info.password.encode() not in path.read_bytes(), path
    assert (private.datadir / "password").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("failure", ["closed port", "wrong password"])
def test_typed_connection_errors_and_their_tracebacks_never_show_the_password(private, connection, failure):
    secret = f"Secret-{secrets.token_urlsafe(16)}"
    backend = connection.adapter.backend
    host, port = "127.0.0.1", 9
    if failure == "wrong password":
        port = private.running().port
    with pytest.raises(Exception) as caught:
        dj.Connection(host, "dj", secret, port=port, use_tls=False, backend=backend)
    err = caught.value
    assert secret not in everything_said(err)
    typed = translate(err)
    expected = DatabaseUnreachableError if failure == "closed port" else PermissionDeniedError  # a refused login
    assert isinstance(typed, expected), repr(err)
    assert secret not in everything_said(typed)


KNOWN_FIELDS = [
    "host=127.0.0.1 port=5432 user=dj password={p} dbname=postgres",  # a libpq connection string
    "host=127.0.0.1 password='{p}' sslmode=disable",
    "{{'host': '127.0.0.1', 'port': 3306, 'user': 'dj', 'passwd': '{p}', 'database_name': None}}",  # conn_info
    '{{"database.password": "{p}", "database.user": "dj"}}',  # settings as JSON
    "Connection(host='127.0.0.1', user='dj', password='{p}', port=9)",  # keyword arguments
    "mysql://dj:{p}@127.0.0.1:3306/lab and postgresql://dj:{p}@db/x?sslmode=disable",  # URLs
    "DJ_HOST=db DJ_PASS={p} PGPASSWORD={p}",  # an environment listing
]


@pytest.mark.parametrize("form", KNOWN_FIELDS)
def test_the_password_is_masked_as_the_value_of_a_known_field(server, form):
    for password in (server.password, "e", "database"):
        assert without_password(form.format(p=password)) == form.format(p="***")  # the rest as it was


def test_free_text_is_never_searched_for_the_password(server):
    """No substring replacement: a short or common-word password would garble messages and show where it is."""
    for text in ("Can't connect to MySQL server on '127.0.0.1' (using password: YES)",
                 f"server said: bad login dj/{server.password} at 10:00", "cannot reach the database",
                 "password authentication failed for user \"dj\"", "bypass=1 mypassword"):  # fmt: skip
        assert without_password(text) == text


def _account(connection, name: str, password: str, *, change: bool = False) -> None:
    """Create an account with every privilege (or give it a new password)."""
    if connection.adapter.backend == "postgresql":
        if change:
            connection.query(f'ALTER ROLE "{name}" PASSWORD %s', args=(password,))
        else:
            connection.query(f'CREATE ROLE "{name}" LOGIN SUPERUSER PASSWORD %s', args=(password,))
    elif change:
        connection.query("ALTER USER %s@'%%' IDENTIFIED BY %s", args=(name, password))
    else:
        connection.query("CREATE USER %s@'%%' IDENTIFIED BY %s", args=(name, password))
        connection.query(f"GRANT ALL PRIVILEGES ON *.* TO '{name}'@'%%'")


def _normalised(result: subprocess.CompletedProcess) -> tuple[int, str, str]:
    """Exit status and output, without the time stamps of DataJoint's log lines."""
    stamp = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] ")
    return result.returncode, stamp.sub("", result.stdout), stamp.sub("", result.stderr)


@pytest.mark.parametrize("password", ["e", "database"])
def test_a_one_character_or_common_word_password_changes_nothing_in_what_the_command_says(
    connection, subprocess_env, tmp_path, password
):
    """The command says exactly the same with that password as with a long random one: not garbled, not shown.

    Connected (the pipeline's schemas are created), refused at login with a wrong password (exit 4), and
    pointed at a closed port (exit 3).
    """
    backend = connection.adapter.backend
    name = f"es_pw_{secrets.token_hex(4)}"
    long_password = f"Long-{secrets.token_urlsafe(16)}"
    prefix = f"es_{secrets.token_hex(4)}_"
    env = {**subprocess_env, "DJ_USER": name, "DATABASE_PREFIX": prefix}

    def command(**changes: str) -> tuple[int, str, str]:
        argv = [sys.executable, "-m", "element_session", "-v", "sessions", "--format", "json"]  # -v: DataJoint's line
        result = subprocess.run(argv, env=env | changes, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        return _normalised(result)

    _account(connection, name, password)
    try:
        said = {
            "connected": command(DJ_PASS=password),
            "refused login": command(DJ_PASS=password + "x"),
            "closed port": command(DJ_PASS=password, DJ_PORT="9"),
        }
        _account(connection, name, long_password, change=True)
        drop_schemas(prefix)  # created again, and said so again (stderr names them)
        with_long = {
            "connected": command(DJ_PASS=long_password),
            "refused login": command(DJ_PASS=f"Wrong-{secrets.token_urlsafe(16)}"),
            "closed port": command(DJ_PASS=long_password, DJ_PORT="9"),
        }
    finally:
        drop_schemas(prefix)
        connection.query(f'DROP ROLE "{name}"' if backend == "postgresql" else f"DROP USER '{name}'@'%%'")
    print(f"\n{password!r}: {said}")
    for case, (status, out, err) in said.items():
        assert (status, out, err) == with_long[case], case
        assert long_password not in out + err, case
    port = env["DJ_PORT"]
    assert said["connected"][:2] == (0, "[]\n") and f"connected to {name}@127.0.0.1:{port}" in said["connected"][2]
    status, out, err = said["refused login"]
    assert status == DENIED and out == "" and f"the database at 127.0.0.1:{port} as user '{name}' refused: " in err
    status, out, err = said["closed port"]
    assert status == UNREACHABLE and out == "" and "cannot reach the database at 127.0.0.1:9 as user" in err
    assert "OperationalError" not in err and "(2003" not in err  # the driver's words, not its exception's repr
    server_says = "Access denied for user"
    if backend == "postgresql":
        server_says = f'password authentication failed for user "{name}"'
    words = "refused: the user name or password is wrong, or the account may not log in from here (it said: "
    assert words + server_says in said["refused login"][2]
    assert "nothing accepts connections there: is the server running" in said["closed port"][2]  # not the driver's


def test_populate_workers_receive_the_password_off_their_command_line(server, pipeline):
    """Workers read their settings from a pipe: ``ps`` shows no password (the environment is the caller's own)."""
    password = server.password
    assert password, "the test server's account has no password: nothing to look for"
    seen: dict[int, bytes] = {}
    done = threading.Event()

    def watch() -> None:
        me = str(os.getpid())
        while not done.is_set():
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    if stat.read_text().rsplit(")", 1)[1].split()[1] == me:
                        line = (stat.parent / "cmdline").read_bytes()  # empty once the process has ended
                        seen[int(stat.parent.name)] = line or seen.get(int(stat.parent.name), b"")
                except (OSError, IndexError):
                    continue
            done.wait(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        summary = populate(pipeline, workers=2, progress=False, restriction={"subject": "no-such-subject"})
    finally:
        done.set()
        watcher.join()
    assert summary.ok, summary
    workers = {pid: line for pid, line in seen.items() if b"element_session.populate_worker" in line}
    assert len(workers) == 2, seen
    for line in workers.values():
        assert password.encode() not in line
