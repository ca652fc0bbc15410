"""A private database server for the demo, the tests, the benchmarks and the notebook.

One piece of code starts a MariaDB/MySQL or PostgreSQL server from the machine's packages in a
data directory of its own, on a free loopback port, with a generated password kept in that
directory (mode 0600). It reports how to connect as DataJoint settings, never logging the
password. Where ``DJ_HOST`` is set, :func:`server_from_environment` uses that server instead.

Command line (``element-session localdb``, also run by ``python -m element_session.localdb``, whose
``__main__`` belongs to the command line, not to this module)::

    python -m element_session.localdb start DIR [--backend mysql|postgresql]
    python -m element_session.localdb stop DIR   # the backend is the one DIR's server.json records
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .._processes import process_alive
from ..errors import LocalServerError
from ..redaction import without_password

BACKENDS = ("mysql", "postgresql")
_USER = "dj"
_STATE_FILE = "server.json"
_FIRST_START = "first-start"  # present while a new data directory is being made: its data are not whole
_PASSWORD_FILE = "password"  # noqa: S105 (a file name, not a password)
_MEMORY = "/dev/shm"  # noqa: S108 (a tmpfs on Linux; only mkdtemp makes directories there)


@dataclass(frozen=True)
class ServerInfo:
    """How to reach a database server: what DataJoint's settings need, password kept out of repr."""

    backend: str
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    use_tls: bool | None = None  # None: DataJoint's default (try TLS, fall back)

    def environment(self) -> dict[str, str]:
        """The ``DJ_*`` environment variables that point DataJoint (and subprocesses) here."""
        return {
            "DJ_HOST": self.host,
            "DJ_PORT": str(self.port),
            "DJ_USER": self.user,
            "DJ_PASS": self.password,
            "DJ_BACKEND": self.backend,
            **({} if self.use_tls is None else {"DJ_USE_TLS": str(self.use_tls).lower()}),
        }

    def configure_datajoint(self) -> None:
        """Point this process's DataJoint configuration at the server."""
        import datajoint as dj

        dj.config["database.backend"] = self.backend
        dj.config["database.host"] = self.host
        dj.config["database.port"] = self.port
        dj.config["database.user"] = self.user
        dj.config["database.password"] = self.password
        dj.config["database.use_tls"] = self.use_tls

    def __str__(self) -> str:
        return f"{self.backend} server at {self.host}:{self.port} (user {self.user})"


def server_from_environment() -> ServerInfo | None:
    """The server named by ``DJ_HOST`` and its companions, or None if ``DJ_HOST`` is not set."""
    host = os.environ.get("DJ_HOST")
    if not host:
        return None
    backend = os.environ.get("DJ_BACKEND", "mysql")
    default_port = 5432 if backend == "postgresql" else 3306
    host, _, port = host.partition(":")
    return ServerInfo(
        backend=backend,
        host=host,
        port=int(os.environ.get("DJ_PORT") or port or default_port),
        user=os.environ.get("DJ_USER", "root"),
        password=os.environ.get("DJ_PASS", ""),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _find(names: list[str]) -> str:
    for name in names:
        for candidate in [shutil.which(name), *glob.glob(name)]:
            if candidate and os.access(candidate, os.X_OK):
                return candidate
    raise LocalServerError(
        f"none of {names} is installed; install the server package (Debian: apt-get install mariadb-server postgresql)"
    )


def _run(cmd: list[str], tool: str) -> subprocess.CompletedProcess:
    """Run a server tool; LocalServerError with the end of the tool's own output if it fails."""
    result = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if result.returncode != 0:
        said = "\n".join(part.strip() for part in (result.stdout, result.stderr) if part.strip())
        raise LocalServerError(
            f"{tool} failed (exit status {result.returncode}); its output ends:\n{without_password(said[-3000:])}"
        )
    return result


def _wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise LocalServerError(f"server did not accept connections on port {port}; its log ends:\n{tail}")


class LocalServer:
    """A private database server living in ``datadir``.

    ``start()`` initialises the directory on first use (reusing its data and password after that)
    and starts the server on a free port; ``stop()`` shuts it down. Also a context manager.
    ``durable=False`` is for throw-away servers (the tests'): MariaDB/MySQL without its doublewrite
    buffer, PostgreSQL without full-page writes, so that only a crash of the machine, not of the
    server, can lose committed data; put such a server's ``datadir`` in memory (:func:`scratch_parent`).
    """

    def __init__(self, datadir: str | os.PathLike, backend: str = "mysql", *, durable: bool = True) -> None:
        if backend not in BACKENDS:
            raise LocalServerError(f"backend {backend!r} is not one of {BACKENDS}")
        self.datadir = Path(datadir).resolve()
        self.backend = backend
        self.durable = durable
        self._proc: subprocess.Popen | None = None
        self._info: ServerInfo | None = None
        # unix sockets have a short path limit: keep them in a short private directory
        self._sockdir = Path(tempfile.mkdtemp(prefix="esdb-"))

    @property
    def info(self) -> ServerInfo:
        if self._info is None:
            raise LocalServerError("the server is not running; call start() first")
        return self._info

    def __enter__(self) -> ServerInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def password_file(self) -> Path:
        """The file holding the server account's password (mode 0600, made at the first start)."""
        return self.datadir / _PASSWORD_FILE

    # -- shared steps -------------------------------------------------------------------------
    def _password(self) -> str:
        path = self.password_file
        if not path.exists():
            self.datadir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(24))
            path.chmod(0o600)
        return path.read_text().strip()

    def start(self, timeout: float = 60.0) -> ServerInfo:
        """Start the server (initialising its directory if new) and return how to reach it.

        A server that an earlier process started in the same directory and left running is
        adopted rather than started twice.
        """
        if self._info is not None:
            return self._info
        self._sockdir.mkdir(mode=0o700, exist_ok=True)  # stop() removes it
        self.datadir.mkdir(parents=True, exist_ok=True)
        password = self._password()
        recorded = self._recorded()
        if recorded and process_alive(recorded["pid"]):
            port = recorded["port"]
            _wait_for_port(port, timeout, None, self.datadir / "server.log")
        else:
            port = _free_port()
            self._start_new_or_existing(port, password, timeout)
            state = {"backend": self.backend, "port": port, "pid": self._server_pid()}
            (self.datadir / _STATE_FILE).write_text(json.dumps(state))
        self._info = ServerInfo(self.backend, "127.0.0.1", port, _USER, password, use_tls=False)
        return self._info

    def _start_new_or_existing(self, port: int, password: str, timeout: float) -> None:
        """Start the server; a first start that fails stops what it started and removes the new data.

        A marker file is present while new data are made: data left by a first start that was killed
        are not whole, and are made again.
        """
        data, marker = self.datadir / "data", self.datadir / _FIRST_START
        if marker.exists():
            shutil.rmtree(data, ignore_errors=True)
        first = not data.exists()
        if first:
            marker.touch()
        try:
            if self.backend == "mysql":
                self._start_mysql(port, password, timeout)
            else:
                self._start_postgresql(port, password, timeout)
        except BaseException:
            if first:
                self.stop()
                shutil.rmtree(data, ignore_errors=True)
                marker.unlink(missing_ok=True)
            raise
        marker.unlink(missing_ok=True)

    def stop(self) -> tuple[str, int] | None:
        """Stop the server, whichever process started it; a stopped server is left alone.

        The backend is the one the directory's ``server.json`` records (the one given to the
        constructor only where it records none), so a PostgreSQL server is stopped by
        ``LocalServer(datadir).stop()`` too. Returns the backend and process id of the server it
        stopped, None where none was running.
        """
        recorded = self._state()
        backend = recorded["backend"] if recorded else self.backend
        pid: int | None = None
        if backend == "postgresql":
            if (self.datadir / "data" / "postmaster.pid").exists():
                pid = next((p for p in [self._server_pid()] if p is not None and process_alive(p)), None)  # not stale
                self._run_pg(["pg_ctl", "-D", str(self.datadir / "data"), "-m", "fast", "-w", "stop"], check=False)
        elif self._proc is not None:
            pid = self._proc.pid
            self._proc.terminate()
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        elif recorded and process_alive(recorded["pid"]):
            pid = recorded["pid"]
            os.kill(recorded["pid"], signal.SIGTERM)
            deadline = time.monotonic() + 60
            while process_alive(recorded["pid"]) and time.monotonic() < deadline:
                time.sleep(0.1)
        self._proc = None
        self._info = None
        (self.datadir / _STATE_FILE).unlink(missing_ok=True)
        shutil.rmtree(self._sockdir, ignore_errors=True)
        return None if pid is None else (backend, pid)

    def detach(self) -> None:
        """Leave the server running after this process ends; ``stop()`` from any process ends it."""
        self._proc = None

    def _state(self) -> dict | None:
        """What ``server.json`` records of the running server (backend, port, pid); None without one."""
        path = self.datadir / _STATE_FILE
        return json.loads(path.read_text()) if path.exists() else None

    def _recorded(self) -> dict | None:
        """The recorded state if it is of this server's backend."""
        recorded = self._state()
        return recorded if recorded and recorded.get("backend") == self.backend else None

    def _server_pid(self) -> int | None:
        if self._proc is not None:
            return self._proc.pid
        pidfile = self.datadir / "data" / "postmaster.pid"
        return int(pidfile.read_text().split()[0]) if pidfile.exists() else None

    # -- MariaDB / MySQL ----------------------------------------------------------------------
    def _start_mysql(self, port: int, password: str, timeout: float) -> None:
        server = _find(["mariadbd", "mysqld", "/usr/sbin/mariadbd", "/usr/sbin/mysqld"])
        data = self.datadir / "data"
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        fresh = not data.exists()
        if fresh:
            install = _find(["mariadb-install-db", "mysql_install_db"])
            _run(
                [
                    install,
                    "--no-defaults",
                    f"--datadir={data}",
                    *as_root,
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ],
                Path(install).name,
            )
        sock = self._sockdir / "mysql.sock"
        tmp = self.datadir / "tmp"
        tmp.mkdir(exist_ok=True)
        log = self.datadir / "server.log"
        self._proc = subprocess.Popen(
            [
                server,
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={sock}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                *as_root,
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_bin",
                f"--log-error={log}",
                f"--pid-file={self.datadir / 'server.pid'}",
                "--skip-name-resolve",
                "--max-connections=500",
                f"--tmpdir={tmp}",  # its own temporary files: nothing else on the machine cleans them away
                "--innodb-flush-log-at-trx-commit=2",
                *([] if self.durable else ["--innodb-doublewrite=0"]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for_port(port, timeout, self._proc, log)
        if fresh:
            import pymysql

            root = pymysql.connect(unix_socket=str(sock), user="root", autocommit=True)
            with root.cursor() as cur:
                for host in ("localhost", "127.0.0.1", "%"):
                    cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (_USER, host, password))
                    cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{_USER}'@'{host}' WITH GRANT OPTION")
            root.close()

    # -- PostgreSQL ---------------------------------------------------------------------------
    def _run_pg(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        binary = _find([argv[0], f"/usr/lib/postgresql/*/bin/{argv[0]}"])
        cmd = [binary, *argv[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        if check:
            return _run(cmd, argv[0])
        return subprocess.run(cmd, capture_output=True, text=True, errors="replace")

    def _start_postgresql(self, port: int, password: str, timeout: float) -> None:
        data = self.datadir / "data"
        log = self.datadir / "server.log"
        if os.geteuid() == 0:
            if subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(self.datadir.parent)]).returncode:
                raise LocalServerError(
                    f"PostgreSQL runs as the user 'postgres', who cannot reach {self.datadir.parent}; "
                    "choose a data directory under a world-traversable path such as /tmp"
                )
            shutil.chown(self.datadir, "postgres")
            shutil.chown(self._sockdir, "postgres")
            for path in self.datadir.iterdir():
                shutil.chown(path, "postgres")
        if not data.exists():
            pwfile = self._sockdir / "pw"
            pwfile.write_text(password)
            if os.geteuid() == 0:
                shutil.chown(pwfile, "postgres")
            try:
                self._run_pg(
                    [
                        "initdb",
                        "-D",
                        str(data),
                        "-U",
                        _USER,
                        f"--pwfile={pwfile}",
                        "--auth=scram-sha-256",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                    ]
                )
            finally:
                pwfile.unlink(missing_ok=True)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {self._sockdir} -c max_connections=300 -c fsync=off"
        if not self.durable:
            options += " -c full_page_writes=off"
        self._run_pg(["pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "start"])
        _wait_for_port(port, timeout, None, log)


@contextlib.contextmanager
def database_server(
    backend: str | None = None, *, tag: str = "element-session-db-", durable: bool = True
) -> Iterator[ServerInfo]:
    """The server of ``DJ_HOST``, or a private one in a temporary directory, stopped and removed after use.

    Parameters
    ----------
    backend
        ``mysql`` (MariaDB or MySQL) or ``postgresql`` for a private server; default ``DJ_BACKEND``,
        else ``mysql``. Not used when ``DJ_HOST`` names a server.
    tag
        The start of the temporary directory's name.
    durable
        False for a throw-away server (the tests'): its data in memory (:func:`scratch_parent`) and
        ``LocalServer(durable=False)``'s settings.

    Raises
    ------
    LocalServerError
        The private server's programs are missing or the server does not start.
    """
    external = server_from_environment()
    if external is not None:
        yield external
        return
    datadir = tempfile.mkdtemp(prefix=tag, dir=None if durable else scratch_parent())
    os.chmod(datadir, 0o755)  # noqa: S103 (PostgreSQL runs as its own user and must reach it)
    local = LocalServer(datadir, backend or os.environ.get("DJ_BACKEND", "mysql"), durable=durable)
    try:
        yield local.start()
    finally:
        local.stop()
        shutil.rmtree(datadir, ignore_errors=True)


def scratch_parent() -> str | None:
    """Where a throw-away server's data directory goes: in memory, so that DDL and commits skip the disk.

    The temporary directory (``TMPDIR``) if it is under ``/dev/shm`` already (``.ci/run``), else
    ``/dev/shm`` if it is a writable directory with at least 2 GiB free (a container's is often
    64 MiB), else None (the temporary directory).
    """
    temporary = tempfile.gettempdir()
    if temporary.startswith(f"{_MEMORY}/"):
        return temporary
    usable = os.path.isdir(_MEMORY) and os.access(_MEMORY, os.W_OK) and shutil.disk_usage(_MEMORY).free >= 2 << 30
    return _MEMORY if usable else None


def drop_schemas(prefix: str) -> list[str]:
    """Drop every schema whose name starts with ``prefix`` (downstream ones first); their names.

    Meant for test and demo prefixes: it refuses an empty prefix.
    """
    import datajoint as dj

    from ..linking import drop_schema

    if not prefix:
        raise LocalServerError("drop_schemas() needs a non-empty prefix")
    names = [name for name in dj.list_schemas() if name.startswith(prefix)]
    pending, dropped = list(names), []
    while pending:
        failed = []
        for name in pending:
            try:
                drop_schema(dj.Schema(name, create_schema=False, create_tables=False))
                dropped.append(name)
            except dj.errors.DataJointError:
                failed.append(name)  # another schema still refers to it: try again after the rest
        if len(failed) == len(pending):
            raise LocalServerError(f"could not drop schemas {failed}")
        pending = failed
    return dropped
