"""Benchmark: the cost per key of populating with reservations, and keys per second with 1, 2 and 4 SLURM tasks.

    python -m benchmarks.cluster [--keys A,B] [--repeats R] [--tasks 1,2,4] [--no-slurm] [--backend B] [--output PATH]

Populates ``benchmarks.trivial_pipeline.Made`` (its make inserts the key, nothing else), so that what
is timed is the reservation around each make:

- **Per-key overhead.** The project's ``element_session.populate.populate`` (one worker process;
  DataJoint's jobs table, liveness by connection, puts back what a stopped worker held) against
  DataJoint's own ``Made.populate(reserve_jobs=True)`` in this process, at A and at B keys, from
  emptied tables each run, the two alternating; R runs each. The cost per key is the slope
  (median at B - median at A) / (B - A), which leaves out the fixed costs (the project's worker
  process start-up, the jobs table's refresh of pending keys is per key and stays in).
- **SLURM tasks.** ``element-session slurm populate --array T --workers 1 --wait`` for each T, at A
  and B keys, on the private single-host cluster of :mod:`element_session.localdb.slurm` (slurmctld
  and two 1-CPU nodes; ``SLURM_CONF`` set: that cluster instead), timed from the submission to the
  end of ``--wait`` (which polls every 2 s). Keys per second at B, and the cost per key (the slope)
  with T tasks: on a 2-core machine the point is that it stays flat as tasks are added, not the
  speed-up (the database server shares the same cores; at most two 1-CPU tasks run at once).

Uses the server named by ``DJ_HOST`` (and its companions) or starts a private one, as
``benchmarks/populate.py`` does; writes JSON with every run's seconds, the medians and the load
average. Everything it creates (schemas, the cluster, the server) is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.populate import bench_database

PIPELINE = "benchmarks.trivial_pipeline"
REPO = Path(__file__).resolve().parent.parent


def reset(pipeline: Any, keys: int) -> None:
    """``keys`` keys to make and nothing made: ``Made`` and its jobs emptied, ``Key`` holding 0..keys-1."""
    pipeline.Made().delete_quick()
    if pipeline.Made.jobs.is_declared:
        pipeline.Made.jobs.delete_quick()
    pipeline.Key().delete_quick()
    pipeline.Key.insert([{"key_id": i} for i in range(keys)])


def check_made(pipeline: Any, keys: int, what: str) -> None:
    made = len(pipeline.Made())
    if made != keys:
        raise SystemExit(f"{what} made {made} of {keys} keys")


def slope(medians: dict[int, float]) -> float:
    """Seconds per key between the smallest and the largest number of keys."""
    small, large = min(medians), max(medians)
    return (medians[large] - medians[small]) / (large - small)


def project(pipeline: Any, keys: int) -> float:
    """Seconds of the project's populate of every key with one worker."""
    from element_session.populate import populate

    start = time.perf_counter()
    summary = populate(pipeline, tables=["Made"], workers=1, progress=False)
    seconds = time.perf_counter() - start
    if not summary.ok or summary.done != keys:
        raise SystemExit(f"the project's populate did not make every key: {summary}")
    return seconds


def datajoint(pipeline: Any, keys: int) -> float:
    """Seconds of DataJoint's ``populate(reserve_jobs=True)`` of every key, in this process."""
    start = time.perf_counter()
    pipeline.Made.populate(reserve_jobs=True, display_progress=False)
    return time.perf_counter() - start


def measure(ways: dict[str, Callable[[int], float]], pipeline: Any, sizes: list[int], repeats: int) -> dict:
    """Each way at each size, ``repeats`` times from emptied tables, the ways alternating: seconds and medians."""
    seconds: dict[str, dict[int, list[float]]] = {name: {n: [] for n in sizes} for name in ways}
    names = list(ways)
    for repeat in range(repeats):
        for n in sizes:
            for name in names if repeat % 2 == 0 else reversed(names):
                reset(pipeline, n)
                took = ways[name](n)
                check_made(pipeline, n, name)
                seconds[name][n].append(took)
                print(f"  repeat {repeat + 1}/{repeats}: {name} {n} keys {took:6.2f} s", flush=True)
    result = {}
    for name in names:
        medians = {n: statistics.median(values) for n, values in seconds[name].items()}
        result[name] = {
            "seconds": {str(n): values for n, values in seconds[name].items()},
            "median_seconds": {str(n): value for n, value in medians.items()},
            "seconds_per_key": slope(medians),
            "keys_per_second": max(sizes) / medians[max(sizes)],
        }
    return result


@contextlib.contextmanager
def cluster_environment() -> Iterator[dict[str, str]]:
    """The SLURM variables of the cluster to submit to: ``SLURM_CONF``'s, or a private one started and stopped here."""
    if os.environ.get("SLURM_CONF"):
        yield {"SLURM_CONF": os.environ["SLURM_CONF"]}
        return
    from element_session.localdb.slurm import slurm_cluster

    with slurm_cluster(tag="es-bench-", kill_wait=20) as cluster:
        yield cluster.environment()


def slurm_way(server: Any, prefix: str, tasks: int, workdir: Path, slurm_env: dict[str, str]) -> Callable[[int], float]:
    """A timer of ``element-session slurm populate --array tasks --workers 1 --wait`` in ``workdir``."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJ_PASS", "DJ_IGNORE_CONFIG_FILE")}
    env |= {**server.environment(), **slurm_env, "DATABASE_PREFIX": prefix, "PYTHONPATH": str(REPO)}
    env.pop("DJ_PASS")  # the tasks read it from .secrets/, as a lab's do

    def run(keys: int) -> float:
        command = [sys.executable, "-m", "element_session", "--pipeline", PIPELINE, "slurm", "populate",
                   "--array", str(tasks), "--workers", "1", "--wait"]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - start
        if done.returncode != 0 or f"{keys} key(s) made, 0 failed, 0 still reserved" not in done.stdout:
            raise SystemExit(f"slurm populate --array {tasks} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return seconds

    return run


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up server, pipeline (and cluster); time the runs; clean up; the results."""
    import datajoint as dj

    with contextlib.ExitStack() as stack:
        server, prefix = bench_database(stack, args.backend)
        pipeline = importlib.import_module(PIPELINE)
        load = {"before": os.getloadavg()}
        print(f"server: {server}; per-key overhead at {args.keys} keys ...", flush=True)
        overhead = measure(
            {"project": lambda n: project(pipeline, n), "datajoint": lambda n: datajoint(pipeline, n)},
            pipeline, args.keys, args.repeats,
        )  # fmt: skip
        load["after_overhead"] = os.getloadavg()
        slurm: dict[str, Any] | None = None
        if not args.no_slurm:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="es-bench-lab-")))
            (workdir / "datajoint.json").write_text("{}")
            (workdir / ".secrets").mkdir(mode=0o700)
            (workdir / ".secrets" / "database.password").write_text(server.password)
            slurm_env = stack.enter_context(cluster_environment())
            print(f"SLURM: {args.tasks} task(s) of 1 worker at {args.keys} keys ...", flush=True)
            ways = {f"{t} task(s)": slurm_way(server, prefix, t, workdir, slurm_env) for t in args.tasks}
            slurm = measure(ways, pipeline, args.keys, args.repeats)
            load["after_slurm"] = os.getloadavg()
        version = dj.conn().query("SELECT version()").fetchone()[0]

    return {
        "benchmark": "populate of a trivial table with reservations: per-key overhead, and SLURM tasks",
        "backend": server.backend,
        "server_version": version,
        "keys": args.keys,
        "repeats": args.repeats,
        "overhead": overhead,
        "overhead_ratio_per_key": overhead["project"]["seconds_per_key"] / overhead["datajoint"]["seconds_per_key"],
        "slurm": slurm,
        "slurm_note": "Not run (--no-slurm)." if slurm is None else "at most 2 tasks run at once (2 nodes of 1 CPU)",
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1_5_15_min": load,
        },
    }


def _counts(text: str) -> list[int]:
    return sorted({int(part) for part in text.split(",")})


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the figures, write the JSON file."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=_counts, default=[200, 2000], help="two numbers of keys (default 200,2000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per way and number of keys (default 3)")
    parser.add_argument("--tasks", type=_counts, default=[1, 2, 4], help="SLURM array sizes (default 1,2,4)")
    parser.add_argument("--no-slurm", action="store_true", help="only the per-key overhead")
    parser.add_argument("--backend", choices=["mysql", "postgresql"], default=os.environ.get("DJ_BACKEND", "mysql"))
    parser.add_argument("--output", type=Path, help="JSON file (default benchmarks/results/cluster-<backend>.json)")
    args = parser.parse_args(argv)
    if len(args.keys) != 2 or min(args.keys) < 1 or args.repeats < 1 or min(args.tasks) < 1:
        parser.error("--keys takes two numbers >= 1; --repeats and --tasks must be at least 1")

    results = run(args)
    output = args.output or Path(__file__).parent / "results" / f"cluster-{results['backend']}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    big = str(max(args.keys))
    lines = [f"{results['backend']} ({results['server_version']}), medians of {args.repeats}:"]
    for name, figures in [*results["overhead"].items(), *(results["slurm"] or {}).items()]:
        lines.append(
            f"  {name}: {figures['seconds_per_key'] * 1000:.2f} ms a key, {figures['keys_per_second']:.1f} keys/s "
            f"at {big} keys ({figures['median_seconds'][big]:.2f} s)"
        )
    lines.append(
        f"  per-key overhead, project / DataJoint: {results['overhead_ratio_per_key']:.2f}; written to {output}"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
