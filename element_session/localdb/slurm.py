"""A private single-host SLURM cluster for the tests and benchmarks of the SLURM front end.

Started from Debian's ``slurm-wlm`` and ``munge`` packages in a directory of its own, as
:mod:`element_session.localdb` starts private database servers: ``munged`` with a private socket
and key, ``slurmctld`` and two ``slurmd`` nodes (distinct ``NodeName`` and ``Port``, one shared
``NodeHostname``, the machine's short host name), private state, spool and log directories, and
``jobcomp/filetxt`` (one line per finished job; there is no ``slurmdbd``). Processes are tracked and
memory enforced with ``proctrack/cgroup`` + ``task/cgroup`` where the cgroup v1 hierarchy is writable,
else with ``proctrack/linuxproc`` (memory polled; :attr:`LocalCluster.tracking` says which).

Clients (``sbatch``, ``squeue``, ...) find the cluster through ``SLURM_CONF``
(:meth:`LocalCluster.environment`). The daemons run as root (``SlurmUser=root``): starting needs root.
"""

from __future__ import annotations

import contextlib
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
from pathlib import Path

from .._processes import process_alive
from ..errors import LocalServerError

#: The programs a cluster needs, and the Debian packages that provide them.
PROGRAMS = {"munged": "munge", "slurmctld": "slurmctld", "slurmd": "slurmd", "sbatch": "slurm-client"}
NODE_COUNT = 2
_STATE_FILE = "cluster.json"


class ClusterUnavailableError(LocalServerError):
    """Raised when this machine cannot run a private SLURM cluster (no root, a missing program); says which."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cgroup_v1_writable(root: Path = Path("/sys/fs/cgroup")) -> bool:
    """Whether the cgroup v1 hierarchies SLURM's cgroup plugins use (memory, freezer, cpuset) are writable here."""
    return all(
        (root / name).is_dir() and os.access(root / name, os.W_OK) and (root / name / "tasks").exists()
        for name in ("memory", "freezer", "cpuset")
    )


def unavailable_reason() -> str | None:
    """Why a private cluster cannot start on this machine, or None if it can."""
    if os.geteuid() != 0:
        return "a private SLURM cluster runs its daemons as root (SlurmUser=root); this process is not root"
    missing = [f"{program} (Debian package {package})" for program, package in PROGRAMS.items() if not _which(program)]
    if missing:
        return "not installed: " + ", ".join(missing) + "; scripts/setup installs slurm-wlm and munge"
    return None


def _which(program: str) -> str | None:
    return shutil.which(program) or next(
        (str(p) for p in (Path("/usr/sbin") / program, Path("/usr/bin") / program) if os.access(p, os.X_OK)), None
    )


class LocalCluster:
    """A private SLURM cluster living in ``directory`` (made if missing); ``start()``, ``stop()``, a context manager.

    Parameters
    ----------
    directory
        Its configuration, state, spool and log directories. Its parents must be traversable by every
        user (``munged`` checks them).
    kill_wait
        Seconds between SLURM's SIGTERM and SIGKILL to a job's processes (SLURM's default is 30).
    """

    def __init__(self, directory: str | os.PathLike, *, kill_wait: int = 30) -> None:
        self.directory = Path(directory).resolve()
        self.kill_wait = kill_wait
        self.host = socket.gethostname().split(".")[0]
        self.tracking = "cgroup" if cgroup_v1_writable() else "linuxproc"
        # Names and job ids of their own: SLURM's cgroups (slurm_<node>/uid_<uid>/job_<id>) are shared by
        # every cluster on this host, so two private clusters started at once must not meet there.
        tag = secrets.token_hex(3)
        self.nodes = tuple(f"es{tag}n{i}" for i in range(1, NODE_COUNT + 1))
        self.first_job_id = 1000 + secrets.randbelow(60_000_000)

    # -- where things are --------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        """The cluster's ``slurm.conf``."""
        return self.directory / "etc" / "slurm.conf"

    @property
    def state_dir(self) -> Path:
        """``StateSaveLocation``: where ``slurmctld`` keeps each job's script and environment."""
        return self.directory / "state"

    @property
    def log_dir(self) -> Path:
        """The daemons' logs and the ``jobcomp/filetxt`` record of finished jobs (``jobcomp.txt``)."""
        return self.directory / "log"

    def environment(self) -> dict[str, str]:
        """The environment variables that point SLURM's clients (``sbatch``, ``squeue``, ...) at this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- start ---------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> LocalCluster:
        """Write the configuration, start munged, slurmctld and the slurmd nodes; wait until the nodes are idle.

        Raises
        ------
        ClusterUnavailableError
            Not root, or a program is missing.
        LocalServerError
            A daemon did not start or the nodes did not become idle within ``timeout`` seconds (with its log).
        """
        reason = unavailable_reason()
        if reason:
            raise ClusterUnavailableError(reason)
        for name in ("etc", "state", "log", "run", "munge", *(f"s/{n}" for n in self.nodes)):
            (self.directory / name).mkdir(parents=True, exist_ok=True)
        for path in [self.directory, *self.directory.parents]:
            if not os.stat(path).st_mode & 0o001:
                raise ClusterUnavailableError(f"munged needs {path} to be traversable by every user (chmod o+x)")
        longest = self.directory / "s" / self.nodes[0] / f"{self.nodes[0]}_4294967294.4294967291"
        if len(os.fsencode(longest)) >= _UNIX_SOCKET_PATH:
            raise ClusterUnavailableError(
                f"{self.directory} is too deep: slurmstepd's sockets under it would exceed {_UNIX_SOCKET_PATH} bytes "
                "(set TMPDIR to a shorter directory)"
            )
        self._write_configuration()
        pids: dict[str, int] = {}

        def started(name: str, pid: int) -> None:  # recorded at once: stop() after a failed start ends it too
            pids[name] = pid
            (self.directory / _STATE_FILE).write_text(json.dumps(pids))

        try:
            started("munged", self._start_munged())
            started("slurmctld", self._daemon(["slurmctld", "-f", str(self.conf)], "slurmctld"))
            for node in self.nodes:
                started(node, self._daemon(["slurmd", "-f", str(self.conf), "-N", node], f"slurmd-{node}"))
            self._wait_idle(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _write_configuration(self) -> None:
        d = self.directory
        ctld_port, *node_ports = (_free_port() for _ in range(1 + len(self.nodes)))
        cgroup = self.tracking == "cgroup"
        lines = [
            "ClusterName=element-session-test",
            f"SlurmctldHost={self.host}",
            f"SlurmctldPort={ctld_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={d / 'munge' / 'munge.socket'}",
            f"StateSaveLocation={self.state_dir}",
            f"SlurmdSpoolDir={d / 's' / '%n'}",  # short: slurmstepd's sockets there must fit in 108 bytes
            f"SlurmctldPidFile={d / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={d / 'run' / 'slurmd-%n.pid'}",
            f"SlurmctldLogFile={self.log_dir / 'slurmctld.log'}",
            f"SlurmdLogFile={self.log_dir / 'slurmd-%n.log'}",
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={self.log_dir / 'jobcomp.txt'}",
            "JobAcctGatherType=jobacct_gather/" + ("cgroup" if cgroup else "linux"),
            "JobAcctGatherFrequency=1",
            "ProctrackType=proctrack/" + ("cgroup" if cgroup else "linuxproc"),
            "TaskPlugin=task/" + ("cgroup" if cgroup else "none"),
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "SchedulerType=sched/backfill",
            "MpiDefault=none",
            "ReturnToService=2",
            f"KillWait={self.kill_wait}",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            "MinJobAge=300",
            f"FirstJobId={self.first_job_id}",
        ]
        for node, port in zip(self.nodes, node_ports, strict=True):
            lines.append(
                f"NodeName={node} NodeHostname={self.host} NodeAddr=127.0.0.1 Port={port} CPUs=1 RealMemory=2000 "
                "State=UNKNOWN"
            )
        lines.append(f"PartitionName=debug Nodes={','.join(self.nodes)} Default=YES MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")
        (self.conf.parent / "cgroup.conf").write_text(
            "CgroupPlugin=cgroup/v1\nConstrainCores=no\nConstrainRAMSpace=yes\nConstrainSwapSpace=yes\n"
            "AllowedSwapSpace=0\n"
            if cgroup
            else "CgroupPlugin=autodetect\n"
        )

    def _start_munged(self) -> int:
        munge = self.directory / "munge"
        munge.chmod(0o755)
        key = munge / "munge.key"
        if not key.exists():
            key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        pidfile = munge / "munged.pid"
        self._run(
            [
                "munged",
                "--force",
                f"--socket={munge / 'munge.socket'}",
                f"--key-file={key}",
                f"--pid-file={pidfile}",
                f"--log-file={self.log_dir / 'munged.log'}",
                f"--seed-file={munge / 'munged.seed'}",
            ],
            "munged",
        )
        return int(pidfile.read_text().split()[0])

    def _daemon(self, argv: list[str], name: str) -> int:
        """Start a SLURM daemon (it forks into the background); its pid, from its pid file."""
        self._run(argv, name)
        pidfile = self.directory / "run" / (f"{name}.pid")
        deadline = time.monotonic() + 15
        while (pid := _pid_in(pidfile)) is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the daemon creates the file first and writes its pid after: wait for both
        if pid is None:
            raise LocalServerError(f"{name} wrote no pid file; its log ends:\n{self._log_tail(name)}")
        return pid

    def _run(self, argv: list[str], name: str) -> None:
        done = subprocess.run(
            [_which(argv[0]) or argv[0], *argv[1:]],
            capture_output=True,
            text=True,
            errors="replace",
            env={**os.environ, **self.environment()},
            start_new_session=True,
        )
        if done.returncode != 0:
            said = (done.stdout + done.stderr).strip()
            raise LocalServerError(
                f"{name} did not start (exit status {done.returncode}): {said[-2000:]}\n"
                f"its log ends:\n{self._log_tail(name)}"
            )

    def _log_tail(self, name: str) -> str:
        log = self.log_dir / f"{name}.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        states = ""
        while time.monotonic() < deadline:
            done = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%N %T"],
                capture_output=True,
                text=True,
                env={**os.environ, **self.environment()},
            )
            states = done.stdout.strip()
            lines = states.splitlines()
            if done.returncode == 0 and len(lines) == len(self.nodes) and all(ln.split()[1] == "idle" for ln in lines):
                return
            time.sleep(0.5)
        raise LocalServerError(
            f"the nodes were not idle after {timeout:.0f} s (sinfo: {states or 'no answer'}); "
            f"slurmctld's log ends:\n{self._log_tail('slurmctld')}"
        )

    # -- stop ----------------------------------------------------------------------------------
    def stop(self, timeout: float = 30.0) -> None:
        """Cancel every job, stop the daemons (``scontrol shutdown``, then signals) and munged; safe to repeat."""
        env = {**os.environ, **self.environment()}
        state = self.directory / _STATE_FILE
        pids: dict[str, int] = json.loads(state.read_text()) if state.exists() else {}
        if pids and process_alive(pids.get("slurmctld")):
            subprocess.run(["scancel", "--full", "--user=root"], capture_output=True, env=env, timeout=30)
            subprocess.run(["scontrol", "shutdown"], capture_output=True, env=env, timeout=30)
        slurm = [pid for name, pid in pids.items() if name != "munged"]
        _end(slurm, timeout)
        _end([pid for name, pid in pids.items() if name == "munged"], timeout)
        state.unlink(missing_ok=True)


def _end(pids: list[int], timeout: float) -> None:
    """SIGTERM to these processes, SIGKILL to those still alive after ``timeout`` seconds."""
    for pid in pids:
        if process_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(process_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if process_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def slurm_cluster(*, tag: str = "es-slurm-", kill_wait: int = 30) -> Iterator[LocalCluster]:
    """A private cluster in a new temporary directory, stopped and removed after use.

    Raises
    ------
    ClusterUnavailableError
        This machine cannot run one (:func:`unavailable_reason`).
    LocalServerError
        A daemon did not start.
    """
    reason = unavailable_reason()
    if reason:
        raise ClusterUnavailableError(reason)
    directory = tempfile.mkdtemp(prefix=tag)
    os.chmod(directory, 0o755)  # noqa: S103 (munged checks that every parent is traversable)
    cluster = LocalCluster(directory, kill_wait=kill_wait)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


#: The longest path of a Unix socket on Linux (``sun_path``), its final NUL included.
_UNIX_SOCKET_PATH = 108


def _pid_in(pidfile: Path) -> int | None:
    """The pid a daemon wrote to ``pidfile``; None while the file is missing, empty or half-written."""
    try:
        return int(pidfile.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
