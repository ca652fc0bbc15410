"""Benchmarks of ingestion, queries, memory and populate against raw SQL, on one database server.

    python -m benchmarks.run [--sizes 1000,10000,100000] [--repeats R] [--query-runs Q] [--out DIR]
                             [--command-sizes 50000] [--backend mysql|postgresql] [--no-command]
                             [--no-memory] [--no-populate] [--profile]

Uses the server named by ``DJ_HOST`` (with ``DJ_PORT``, ``DJ_USER``, ``DJ_PASS``, ``DJ_BACKEND``) if
set, otherwise starts a private one (MariaDB, or PostgreSQL with ``DJ_BACKEND=postgresql`` or
``--backend``) with :class:`element_session.localdb.LocalServer` in a temporary directory. The
workflow pipeline is activated under a prefix of its own (``bench_<hex>_``), dropped at the end.

For each N, smallest first: ingest N sessions R times each way (project and raw SQL, alternating,
tables emptied before each run) and check that both wrote the same rows; time the finder's query
against raw SQL Q times each; measure the peak memory of ingesting the file in a fresh process.
Then, for each N of ``--command-sizes`` (default 50,000), the command end to end
(:mod:`benchmarks.command`): ``element-session ingest sessions FILE`` against the raw-driver script
:mod:`benchmarks.ingest_baseline`, each a process, R times each. Then, if
``benchmarks/populate.py`` is present, it runs on the same server (1 and 2 workers).
Results go to ``DIR/<backend>-<date>.json`` and ``.md`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from element_session.localdb import ServerInfo, database_server

from . import child_environment, report
from . import command as bench_command
from . import ingest as bench_ingest
from . import memory as bench_memory
from . import query as bench_query
from . import table as bench_table

RESULTS = Path(__file__).resolve().parent / "results"
POPULATE = Path(__file__).resolve().parent / "populate.py"


def say(text: str) -> None:
    print(text, flush=True)


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes takes whole numbers separated by commas, not {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("--sizes needs at least one number of sessions, each at least 1")
    return sizes


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=[1_000, 10_000, 100_000], help="numbers of sessions N")
    parser.add_argument("--repeats", type=int, default=3, help="ingest and command runs per way and N (default 3)")
    parser.add_argument(
        "--command-sizes",
        type=_sizes,
        default=[50_000],
        help="numbers of sessions of the end-to-end command benchmark (default 50000)",
    )
    parser.add_argument("--query-runs", type=int, default=200, help="query runs per way and N (default 200)")
    parser.add_argument("--table-runs", type=int, default=3, help="session_table runs per way and N (default 3)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"directory of the results (default {RESULTS})")
    parser.add_argument(
        "--backend",
        choices=["mysql", "postgresql"],
        default=os.environ.get("DJ_BACKEND", "mysql"),
        help="server to start when DJ_HOST is not set (default DJ_BACKEND, else mysql)",
    )
    parser.add_argument("--no-command", action="store_true", help="skip the end-to-end command benchmark")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--no-populate", action="store_true", help="skip benchmarks/populate.py")
    parser.add_argument("--populate-sessions", type=int, default=200, help="sessions of the populate run (200)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also write pyinstrument call trees of ingest and query at the largest N (its overhead inflates "
        "call-heavy code: take proportions from py-spy)",
    )
    args = parser.parse_args(argv)
    if min(args.repeats, args.query_runs, args.table_runs, args.populate_sessions) < 1:
        parser.error("--repeats, --query-runs, --table-runs and --populate-sessions must be at least 1")
    return args


def benchmark_ingest(
    pipeline: ModuleType, server: ServerInfo, raw: Any, names: dict[str, str], path: Path, n: int, repeats: int
) -> dict[str, Any]:
    """``repeats`` runs of each way, alternating which goes first; both ways must leave the same rows."""
    load = os.getloadavg()
    times: dict[str, list[bench_ingest.Timing]] = {"project": [], "baseline": []}
    states: dict[str, dict] = {}
    for repeat in range(repeats):
        for way in ("project", "baseline") if repeat % 2 == 0 else ("baseline", "project"):
            bench_ingest.empty_tables(raw, server, names)
            if way == "project":
                timing = bench_ingest.run_project(pipeline, path)
            else:
                timing = bench_ingest.run_baseline(raw, server, names, path)
            times[way].append(timing)
            say(f"  ingest N={n:,} {way:8s} run {repeat + 1}/{repeats}: {timing.seconds:8.2f} s")
            if way not in states:
                states[way] = bench_ingest.table_state(raw, server, names)
    project = statistics.median(t.seconds for t in times["project"])
    baseline = statistics.median(t.seconds for t in times["baseline"])
    baseline_write = statistics.median(t.write_seconds or 0.0 for t in times["baseline"])
    expected = bench_ingest.expected_rows(n)
    result = {
        "n": n,
        "file_mib": path.stat().st_size / 1024**2,
        "rows": {name: state["rows"] for name, state in states["project"].items()},
        "expected_rows": expected,
        "identical_rows": states["project"] == states["baseline"],
        "project": {
            "seconds": [t.seconds for t in times["project"]],
            "median_seconds": project,
            "sessions_per_second": n / project,
        },
        "baseline": {
            "seconds": [t.seconds for t in times["baseline"]],
            "write_seconds": [t.write_seconds for t in times["baseline"]],
            "median_seconds": baseline,
            "median_write_seconds": baseline_write,
            "sessions_per_second": n / baseline,
        },
        "ratio": project / baseline,
        "ratio_to_write": project / baseline_write if baseline_write else None,
        "load_average_1_5_15_min": {"before": load, "after": os.getloadavg()},
    }
    result["paired_ratios"] = report.paired_ratios(result)
    return result


def benchmark_memory(
    server: ServerInfo, prefix: str, raw: Any, names: dict[str, str], path: Path, n: int
) -> dict[str, Any]:
    result: dict[str, Any] = {"n": n, "file_mib": path.stat().st_size / 1024**2}
    for way in ("project", "baseline"):
        bench_ingest.empty_tables(raw, server, names)
        result[way] = bench_memory.measure(server, prefix, way, path)
        say(f"  memory N={n:,} {way:8s}: peak +{result[way]['peak_increase_mib']:.1f} MiB")
    result["project_kib_per_session"] = result["project"]["peak_increase_mib"] * 1024 / n
    return result


def run_populate(server: ServerInfo, out: Path, repeats: int, sessions: int, stem: str) -> dict[str, Any] | None:
    """Run ``benchmarks/populate.py`` on the same server; its results (None if it is not there)."""
    if not POPULATE.exists():
        return None
    output = out / f"{stem}-populate.json"
    env = child_environment(server)
    env["PYTHONWARNINGS"] = "ignore:MariaDB is not officially supported"  # its workers print it once each
    command = [
        sys.executable, "-W", "ignore", "-m", "benchmarks.populate",
        "--sessions", str(sessions), "--repeats", str(repeats), "--output", str(output),
    ]  # fmt: skip
    say(f"populate: {' '.join(command[3:])}")
    subprocess.run(command, env=env, check=True)
    return json.loads(output.read_text())


def profile(pipeline: ModuleType, server: ServerInfo, raw: Any, names: dict, path: Path, n: int, out: Path) -> None:
    """pyinstrument profiles of one project ingest and of 200 finder queries, as text in ``out``."""
    from pyinstrument import Profiler

    bench_ingest.empty_tables(raw, server, names)
    profiler = Profiler(interval=0.001)
    with profiler:
        bench_ingest.run_project(pipeline, path)
    (out / f"profile-ingest-{server.backend}-{n}.txt").write_text(profiler.output_text(unicode=True, show_all=False))
    arguments = bench_query.query_arguments(n)
    profiler = Profiler(interval=0.0002)
    with profiler:
        for _ in range(200):
            bench_query.project_query(pipeline.session, arguments)
    (out / f"profile-query-{server.backend}-{n}.txt").write_text(profiler.output_text(unicode=True, show_all=False))
    say(f"profiles written to {out}")


@dataclass(frozen=True)
class Bench:
    """What a benchmark run works with: the server, the workflow pipeline activated under ``prefix``,
    a scratch directory, a raw connection (one transaction) and an autocommit one, the session tables' names."""

    server: ServerInfo
    prefix: str
    pipeline: ModuleType
    files: Path
    raw: Any
    raw_query: Any
    names: dict[str, str]


@contextlib.contextmanager
def benchmark_pipeline(backend: str, files_prefix: str) -> Iterator[Bench]:
    """The server (:func:`database_server`) with the workflow pipeline activated under a prefix of its own
    (``bench_<8 hex>_``), whose schemas are dropped at the end, with a scratch directory and two raw connections.

    Raises ``RuntimeError`` if ``workflow.pipeline`` is already activated in this process.
    """
    import datajoint as dj

    from element_session.localdb import drop_schemas

    with contextlib.ExitStack() as stack:
        server = stack.enter_context(database_server(backend, tag="element-session-bench-db-"))
        server.configure_datajoint()
        dj.config["safemode"] = False
        prefix = f"bench_{secrets.token_hex(4)}_"
        os.environ["DATABASE_PREFIX"] = prefix  # the pipeline module reads it at import
        if "workflow.pipeline" in sys.modules:
            raise RuntimeError("workflow.pipeline is already activated in this process: run the benchmark on its own")
        pipeline = importlib.import_module("workflow.pipeline")
        stack.callback(drop_schemas, prefix)
        files = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=files_prefix)))
        raw = bench_ingest.connect_raw(server)
        stack.callback(raw.close)
        raw_query = bench_ingest.connect_raw(server, autocommit=True)
        stack.callback(raw_query.close)
        names = bench_ingest.table_names(pipeline.session)
        yield Bench(server, prefix, pipeline, files, raw, raw_query, names)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start or find the server, run every benchmark, clean up; the results."""
    import datajoint as dj

    logging.getLogger("datajoint").setLevel(logging.WARNING)
    started = time.perf_counter()
    date = report.now()
    results: dict[str, Any] = {"date": date, "git": report.git_commit(), "machine": report.machine()}
    results["load_average_at_start"] = os.getloadavg()
    with contextlib.ExitStack() as stack:
        bench = stack.enter_context(benchmark_pipeline(args.backend, "element-session-bench-files-"))
        server, prefix, pipeline, files = bench.server, bench.prefix, bench.pipeline, bench.files
        raw, raw_query, names = bench.raw, bench.raw_query, bench.names
        server_version = dj.conn().query("SELECT version()").fetchone()[0]
        say(f"server: {server} ({server_version}); schemas {prefix}*; sizes {args.sizes}")
        command_sizes = [] if args.no_command else args.command_sizes
        bench_ingest.add_references(pipeline, max(args.sizes + command_sizes))

        results["ingest"], results["query"], results["table"], results["memory"] = [], [], [], []
        for n in args.sizes:
            path = bench_ingest.write_sessions_csv(files / f"sessions-{n}.csv", n)
            results["ingest"].append(benchmark_ingest(pipeline, server, raw, names, path, n, args.repeats))
            # the tables now hold the N sessions (both ways wrote the same rows)
            result = bench_query.run(server, raw_query, pipeline.session, n, args.query_runs)
            say(
                f"  query  N={n:,}: project {result['project']['median_ms']:.2f} ms, "
                f"raw SQL {result['baseline']['median_ms']:.2f} ms"
            )
            results["query"].append(result)
            table = bench_table.run(raw_query, pipeline.session, n, args.table_runs)
            say(
                f"  table  N={n:,}: project {table['project']['median_seconds']:.2f} s, "
                f"raw fetch {table['baseline']['median_seconds']:.2f} s"
            )
            results["table"].append(table)
            if not args.no_memory:
                results["memory"].append(benchmark_memory(server, prefix, raw, names, path, n))
            if args.profile and n == args.sizes[-1]:
                args.out.mkdir(parents=True, exist_ok=True)
                profile(pipeline, server, raw, names, path, n, args.out)
        results["command"] = []
        if args.no_command:
            results["command_note"] = "Not run (--no-command)."
        for n in command_sizes:
            path = files / f"sessions-{n}.csv"
            if not path.exists():
                bench_ingest.write_sessions_csv(path, n)
            result = bench_command.run(server, raw, names, prefix, path, n, args.repeats, say)
            say(
                f"  command N={n:,}: project {result['project']['median_seconds']:.2f} s, "
                f"baseline {result['baseline']['median_seconds']:.2f} s, ratio {result['ratio']:.2f}"
            )
            results["command"].append(result)
        results["backend"] = server.backend
        results["server"] = str(server)
        results["versions"] = report.versions(server_version, bench_ingest.driver_version(server))
        results["populate"] = None
        if args.no_populate:
            results["populate_note"] = "Not run (--no-populate)."
        else:
            stem = f"{server.backend}-{date[:10]}"
            results["populate"] = run_populate(server, args.out, args.repeats, args.populate_sessions, stem)
            if results["populate"] is None:
                results["populate_note"] = "Not run: benchmarks/populate.py is not there."
    if len(results["query"]) > 1:
        first, last = results["query"][0], results["query"][-1]
        results["query_growth"] = {
            "from_n": first["n"],
            "to_n": last["n"],
            "project": last["project"]["median_ms"] / first["project"]["median_ms"],
            "baseline": last["baseline"]["median_ms"] / first["baseline"]["median_ms"],
        }
    results["settings"] = {
        "sizes": args.sizes,
        "command_sizes": command_sizes,
        "repeats": args.repeats,
        "query_runs": args.query_runs,
        "table_runs": args.table_runs,
        "sessions_per_subject": bench_ingest.SESSIONS_PER_SUBJECT,
        "baseline_method": (
            "psycopg2 execute_values, 5,000 rows per statement"
            if results["backend"] == "postgresql"
            else "PyMySQL executemany (multi-row INSERTs)"
        ),
    }
    results["targets"] = report.targets(results)
    results["wall_seconds"] = time.perf_counter() - started
    results["load_average_at_end"] = os.getloadavg()
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    results = run(args)
    json_path, md_path = report.write(results, args.out)
    say("")
    say(report.markdown(results))
    say(f"written: {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
