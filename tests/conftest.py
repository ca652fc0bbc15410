"""Test fixtures: a real database server, a schema prefix per run, the activated workflow.

The server is picked in this order:

1. ``DJ_HOST`` is set: that server (with ``DJ_PORT``, ``DJ_USER``, ``DJ_PASS``, ``DJ_BACKEND``);
2. a Docker engine answers and the backend is MySQL: MySQL 8.0 through testcontainers;
3. otherwise: a private server (MariaDB, or PostgreSQL with ``DJ_BACKEND=postgresql``) that
   :mod:`element_session.localdb` starts in a temporary directory and stops at the end.

Every run uses its own schema prefix (``test_<8 hex>_``) and drops its schemas at the end.
"""

from __future__ import annotations

import importlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from element_session.localdb import LocalServer, ServerInfo, drop_schemas, server_from_environment

DATABASE_FIXTURES = {"server", "connection", "prefix", "pipeline", "run_python"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.database)


def _docker_reachable() -> bool:
    """Whether a Docker engine answers (its socket must exist before the client is tried)."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    import docker

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # docker-py leaks its socket when the engine is down
        try:
            client = docker.from_env(timeout=3)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (docker.errors.DockerException, OSError):
            return False


@pytest.fixture(scope="session")
def server() -> Iterator[ServerInfo]:
    """How to reach the database server of this test run."""
    external = server_from_environment()
    backend = os.environ.get("DJ_BACKEND", "mysql")
    if external is not None:
        yield external
    elif backend == "mysql" and _docker_reachable():
        from testcontainers.mysql import MySqlContainer

        container = MySqlContainer("mysql:8.0", username="dj", password=secrets.token_urlsafe(16))
        container.with_command("--character-set-server=utf8mb4 --collation-server=utf8mb4_bin")
        with container as mysql:
            yield ServerInfo(
                "mysql", mysql.get_container_host_ip(), int(mysql.get_exposed_port(3306)), "root", mysql.root_password
            )
    else:
        datadir = tempfile.mkdtemp(prefix="element-session-test-db-")  # PostgreSQL's user must reach it
        os.chmod(datadir, 0o755)  # noqa: S103 (PostgreSQL runs as its own user)
        local = LocalServer(datadir, backend)
        try:
            yield local.start()
        finally:
            local.stop()
            shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture(scope="session")
def connection(server: ServerInfo):
    """DataJoint's connection, configured for the test server."""
    import datajoint as dj

    server.configure_datajoint()
    dj.config["safemode"] = False
    return dj.conn()


@pytest.fixture(scope="session")
def prefix(connection) -> Iterator[str]:
    """A schema-name prefix unique to this run; every schema under it is dropped at the end."""
    value = f"test_{secrets.token_hex(4)}_"
    yield value
    drop_schemas(value)


@pytest.fixture(scope="session")
def pipeline(prefix: str) -> Iterator[ModuleType]:
    """The workflow pipeline, activated under the run's prefix."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_PREFIX", prefix)
        yield importlib.import_module("workflow.pipeline")


@pytest.fixture(scope="session")
def subprocess_env(server: ServerInfo, prefix: str) -> dict[str, str]:
    """The environment of a child process that should use the test server and prefix."""
    env = {**os.environ, **server.environment(), "DATABASE_PREFIX": prefix, "DJ_IGNORE_CONFIG_FILE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent.parent), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture
def run_python(subprocess_env: dict[str, str], tmp_path: Path):
    """Run Python code in a fresh interpreter connected to the test server; its completed process."""

    def run(code: str, *, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=subprocess_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"child process failed ({result.returncode}):\n{result.stderr}")
        return result

    return run
