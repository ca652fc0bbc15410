"""Benchmark: wall time of populating the workflow's inventory with 1 and with 2 worker processes.

    python -m benchmarks.populate [--sessions N] [--files F] [--file-kb K] [--repeats R] [--backend B] [--output PATH]

Uses the server named by ``DJ_HOST`` (and ``DJ_PORT``, ``DJ_USER``, ``DJ_PASS``, ``DJ_BACKEND``) if set,
otherwise starts a private one with :class:`element_session.localdb.LocalServer`. Creates N sessions
whose raw directories hold F files of K KiB, then, R times and alternating, empties the inventory
tables and their jobs and times ``element_session.populate.populate`` (both tables, every key) with
1 and with 2 workers. Worker start-up (a new Python process importing the pipeline) is part of
the time, as it is for a user. Prints the medians and the speed-up, and writes them as JSON with
each run's time, the CPU time the workers used, and the machine's load average (the database
server's CPU is not counted: on a small or busy machine it limits what a second worker gains).
POSIX only (it reads the workers' CPU time with ``resource``).
Everything it creates (schemas, raw files, the private server) is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import platform
import resource
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TABLES = ["SessionInventory", "FileTypeSummary"]
WORKER_COUNTS = (1, 2)


def make_raw_data(root: Path, subject: str, sessions: int, files: int, file_kb: int) -> list[str]:
    """Session directories with ``files`` files of ``file_kb`` KiB each (random bytes); their relative paths."""
    dirs = []
    for i in range(sessions):
        relative = f"{subject}/session{i:04d}"
        directory = root / relative
        (directory / "ephys").mkdir(parents=True)
        for j in range(files):
            name = f"ephys/probe{j}.bin" if j % 2 else f"frames{j}.tif"
            (directory / name).write_bytes(os.urandom(file_kb * 1024))
        dirs.append(relative)
    return dirs


def insert_sessions(pipeline: Any, subject: str, dirs: list[str]) -> None:
    """One subject and a session (with its directory row) per raw directory."""
    import datetime as dt

    pipeline.Subject.insert1({"subject": subject, "sex": "U", "subject_birth_date": "2023-01-01"})
    start = dt.datetime(2024, 1, 1, 9, 0, 0)
    keys = [{"subject": subject, "session_datetime": start + dt.timedelta(hours=i)} for i in range(len(dirs))]
    pipeline.session.Session.insert(keys)
    pipeline.session.SessionDirectory.insert([{**key, "session_dir": d} for key, d in zip(keys, dirs, strict=True)])


def reset(pipeline: Any) -> None:
    """Empty the inventory tables and their jobs tables: the next populate starts from nothing."""
    inventory = pipeline.inventory
    inventory.SessionInventory().delete()  # cascades to FileTypeSummary
    for table in (inventory.SessionInventory, inventory.FileTypeSummary):
        table.jobs.delete_quick()


def timed_populate(pipeline: Any, workers: int, expected: int) -> tuple[float, float]:
    """Wall seconds of one populate run, and CPU seconds its workers used; fails unless every key was made."""
    from element_session.populate import populate

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    summary = populate(pipeline, tables=TABLES, workers=workers, progress=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if not summary.ok or summary.done != expected:
        raise SystemExit(f"populate with {workers} worker(s) did not make every key: {summary}")
    return seconds, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def bench_database(stack: contextlib.ExitStack, backend: str) -> tuple[Any, str]:
    """The server and a schema prefix of this run's own, set for DataJoint and ``DATABASE_PREFIX``.

    The server is the one named by ``DJ_HOST``, or a private ``backend`` server; ``stack`` drops the
    prefix's schemas and stops and removes a private server. Returns (its
    :class:`~element_session.localdb.ServerInfo`, the prefix).
    """
    import datajoint as dj

    from element_session.localdb import LocalServer, drop_schemas, server_from_environment

    logging.getLogger("datajoint").setLevel(logging.WARNING)
    server = server_from_environment()
    if server is None:
        datadir = tempfile.mkdtemp(prefix="element-session-bench-db-")
        stack.callback(shutil.rmtree, datadir, ignore_errors=True)
        os.chmod(datadir, 0o755)  # noqa: S103 (PostgreSQL runs as its own user and must reach it)
        local = LocalServer(datadir, backend)
        server = local.start()
        stack.callback(local.stop)
    server.configure_datajoint()
    dj.config["safemode"] = False
    prefix = f"bench_{secrets.token_hex(4)}_"
    os.environ["DATABASE_PREFIX"] = prefix
    stack.callback(drop_schemas, prefix)
    return server, prefix


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up server, data and pipeline; time the runs; clean up; the results."""
    import datajoint as dj

    from element_session.paths import set_root_dirs

    with contextlib.ExitStack() as stack:
        server, _ = bench_database(stack, args.backend)
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="element-session-bench-raw-")))
        set_root_dirs([root])

        print(f"server: {server}; creating {args.sessions} sessions of {args.files} x {args.file_kb} KiB ...")
        pipeline = importlib.import_module("workflow.pipeline")
        insert_sessions(pipeline, "bench", make_raw_data(root, "bench", args.sessions, args.files, args.file_kb))
        expected = 2 * args.sessions  # an inventory and a summary per session

        load_before = os.getloadavg()
        timed_populate(pipeline, 2, expected)  # warm-up: file cache, server buffers, jobs tables
        times: dict[int, list[float]] = {n: [] for n in WORKER_COUNTS}
        cpu: dict[int, list[float]] = {n: [] for n in WORKER_COUNTS}
        for repeat in range(args.repeats):
            for workers in WORKER_COUNTS if repeat % 2 == 0 else reversed(WORKER_COUNTS):
                reset(pipeline)
                seconds, cpu_seconds = timed_populate(pipeline, workers, expected)
                times[workers].append(seconds)
                cpu[workers].append(cpu_seconds)
                print(
                    f"  repeat {repeat + 1}/{args.repeats}: {workers} worker(s) {seconds:6.2f} s "
                    f"(workers' CPU {cpu_seconds:5.2f} s)"
                )
        version = dj.conn().query("SELECT version()").fetchone()[0]
        load_after = os.getloadavg()

    medians = {n: statistics.median(values) for n, values in times.items()}
    return {
        "benchmark": "populate SessionInventory + FileTypeSummary, every key, fresh tables each run",
        "backend": server.backend,
        "server_version": version,
        "sessions": args.sessions,
        "files_per_session": args.files,
        "file_kib": args.file_kb,
        "keys_per_run": expected,
        "repeats": args.repeats,
        "seconds": {str(n): values for n, values in times.items()},
        "median_seconds": {str(n): value for n, value in medians.items()},
        "workers_cpu_seconds": {str(n): values for n, values in cpu.items()},
        "speedup_2_over_1": medians[1] / medians[2],
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1_5_15_min": {"before": load_before, "after": load_after},
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the medians and speed-up, write the JSON file."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.populate", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=200, help="number of sessions (default 200)")
    parser.add_argument("--files", type=int, default=8, help="files per session directory (default 8)")
    parser.add_argument("--file-kb", type=int, default=64, help="size of each file in KiB (default 64)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per worker count (default 5)")
    parser.add_argument("--backend", choices=["mysql", "postgresql"], default=os.environ.get("DJ_BACKEND", "mysql"))
    parser.add_argument("--output", type=Path, help="JSON file (default benchmarks/results/populate-<backend>.json)")
    args = parser.parse_args(argv)
    if min(args.sessions, args.files, args.file_kb, args.repeats) < 1:
        parser.error("--sessions, --files, --file-kb and --repeats must be at least 1")

    results = run(args)
    output = args.output or Path(__file__).parent / "results" / f"populate-{results['backend']}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    median = results["median_seconds"]
    print(
        f"{results['backend']} ({results['server_version']}), {results['keys_per_run']} keys per run, "
        f"median of {results['repeats']}: 1 worker {median['1']:.2f} s, 2 workers {median['2']:.2f} s, "
        f"speed-up {results['speedup_2_over_1']:.2f}x; written to {output}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
