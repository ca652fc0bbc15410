"""Test fixtures: a real database server, a schema prefix per run, the activated workflow.

The server is picked in this order:

1. ``DJ_HOST`` is set: that server (with ``DJ_PORT``, ``DJ_USER``, ``DJ_PASS``, ``DJ_BACKEND``);
2. a Docker engine answers and the backend is MySQL: MySQL 8.0 through testcontainers;
3. otherwise: a private server (MariaDB, or PostgreSQL with ``DJ_BACKEND=postgresql``) that
   :mod:`element_session.localdb` starts in a directory in memory (``/dev/shm``, throw-away
   settings: ``durable=False``) and stops at the end.

Every run uses its own schema prefix (``test_<8 hex>_``) and drops its schemas at the end.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import itertools
import os
import secrets
import subprocess
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import pytest

from element_session.localdb import ServerInfo, database_server, drop_schemas, server_from_environment
from element_session.localdb.slurm import LocalCluster, cgroup_v1_writable, slurm_cluster, unavailable_reason
from tests.helpers import REQUIRE_SLURM, Reference, add_references, no_cluster, remove_references

DATABASE_FIXTURES = {"server", "connection", "prefix", "pipeline", "run_python", "command", "references"}


SLURM_FIXTURES = {"slurm"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.database)
        if SLURM_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slurm)
            item.add_marker(pytest.mark.xdist_group("slurm"))


def pytest_report_header() -> str:
    reason = unavailable_reason()
    if reason:
        return f"slurm: no private cluster on this machine ({reason})"
    tracking = (
        "proctrack/cgroup + task/cgroup" if cgroup_v1_writable() else "proctrack/linuxproc (no writable cgroup v1)"
    )
    return f"slurm: a private cluster of two nodes, {tracking}"


@pytest.fixture(scope="session")
def slurm() -> Iterator[LocalCluster]:
    """A private single-host SLURM cluster (slurmctld and two slurmd nodes), stopped at the end.

    Where none can start (no root, no slurm-wlm) the test is skipped with the reason, or fails when
    ``ELEMENT_SESSION_REQUIRE_SLURM=1`` (``.ci/run``).
    """
    reason = unavailable_reason()
    if reason:
        no_cluster(reason, required=os.environ.get(REQUIRE_SLURM) == "1")
    with slurm_cluster(kill_wait=20) as cluster:
        yield cluster


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
    if server_from_environment() is None and os.environ.get("DJ_BACKEND", "mysql") == "mysql" and _docker_reachable():
        from testcontainers.mysql import MySqlContainer

        container = MySqlContainer("mysql:8.0", username="dj", password=secrets.token_urlsafe(16))
        container.with_command("--character-set-server=utf8mb4 --collation-server=utf8mb4_bin")
        with container as mysql:
            yield ServerInfo(
                "mysql", mysql.get_container_host_ip(), int(mysql.get_exposed_port(3306)), "root", mysql.root_password
            )
    else:
        with database_server(tag="element-session-test-db-", durable=False) as info:
            yield info


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


class Ran(NamedTuple):
    """What a run of ``element-session`` left: its exit status, standard output and standard error."""

    status: int
    out: str
    err: str


@pytest.fixture(scope="session")
def command(pipeline: ModuleType, subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    """Run ``element-session ARGS`` on the test pipeline; a :class:`Ran`.

    In this process (:func:`element_session.cli.main`) unless ``child=True``: then in a fresh interpreter
    (``python -m element_session``), for what is about the process (its environment, imports by name,
    DataJoint's messages at start-up). ``env`` sets variables (None: unsets one); ``cwd`` is the child's
    working directory.
    """
    from element_session import cli

    default_cwd = tmp_path_factory.mktemp("command")

    def run(*args: str, env: dict[str, str | None] | None = None, child: bool = False, cwd: Path | None = None) -> Ran:
        env = env or {}
        if child:
            done = subprocess.run(
                [sys.executable, "-m", "element_session", *args],
                env={k: v for k, v in (subprocess_env | env).items() if v is not None},
                cwd=cwd or default_cwd,
                capture_output=True,
                timeout=180,
            )  # bytes: CSV's \r\n line ends arrive as printed
            return Ran(done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8"))
        out, err = io.StringIO(newline=""), io.StringIO(newline="")
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            for name, value in env.items():
                if value is None:
                    patch.delenv(name, raising=False)
                else:
                    patch.setenv(name, value)
            status = cli.main(args, pipeline=pipeline)
        return Ran(status, out.getvalue(), err.getvalue())

    return run


_ROW_PREFIXES = itertools.count(1)


@pytest.fixture(scope="module")
def row_prefix() -> str:
    """A prefix of row names (subjects, people, projects) that no other test module is handed."""
    return f"r{next(_ROW_PREFIXES)}-"


@pytest.fixture
def references(pipeline: ModuleType) -> Iterator:
    """A factory ``references(subjects, people, projects)`` inserting those rows (names or whole rows); the pipeline.

    The rows (and so the sessions of those subjects) are deleted after the test.
    """
    added: list[tuple[list[str], list[str], list[str]]] = []

    def make(
        subjects: Sequence[Reference], people: Sequence[Reference] = (), projects: Sequence[Reference] = ()
    ) -> ModuleType:
        added.append((list(subjects), list(people), list(projects)))
        add_references(pipeline, *added[-1])
        return pipeline

    yield make
    for rows in reversed(added):
        remove_references(pipeline, *rows)
