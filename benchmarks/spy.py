"""Where the time goes: py-spy profiles of the finder, ``session_table`` and ingest, and table scaling.

    python -m benchmarks.spy [--backend mysql|postgresql] [--out DIR] [--table-sizes 1000,10000,...]

Starts a private server (or uses ``DJ_HOST``, as :mod:`benchmarks.run` does) and, in this order:

1. ``ingest`` of 20,000 sessions through the Python API into empty tables, under py-spy;
2. stores 100,000 sessions with the raw driver (untimed), then runs the finder (``find_sessions`` of one
   subject's 30-day window joined with ``SessionNote``, ``to_dicts()``) for 15 seconds under py-spy, and
   times its steps and the raw parameterised query without the profiler;
3. ``session_table()`` of the 100,000 sessions, 3 times under py-spy;
4. with ``--table-sizes``: ``session_table`` seconds and peak memory at each size (tables refilled by the
   raw driver for each size), one run each after one warm-up at sizes up to 10^5.

py-spy (``pip install py-spy``) samples this process from outside at 200 Hz, idle samples included
(``--idle``), so waiting for the server counts. Each sample is put in one category by its innermost
frame that belongs to a known package; frames of the standard library and builtins count for the
nearest such caller. Results: ``DIR/spy-<backend>.json`` and the raw stacks ``DIR/spy-<backend>-*.txt``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import linecache
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import ingest as bench_ingest
from . import memory as bench_memory
from . import query as bench_query
from . import report
from .run import RESULTS, benchmark_pipeline, say

SERVER = "server wait (socket read)"
SEND = "driver: socket send"
DRIVER = "driver: protocol, conversion"
C_DRIVER = "driver in C + server wait (psycopg2)"
OWN = "own code (element_session)"
DJ_BUILD = "DataJoint expression/SQL building"
DJ_FETCH = "DataJoint fetch/decoding"
DJ_QUERY = "DataJoint connection/query"
DJ_INSERT = "DataJoint insert/transaction"
PANDAS = "pandas/numpy"
OTHER = "other (interpreter, stdlib)"

#: What each workload's stacks must contain (py-spy's --idle also samples other threads and the harness).
WORKLOADS = {"ingest": "run_project (", "finder": "project_query (", "table": "session_table ("}


#: Phases of ingest: the outermost frame matching one of these decides (root first).
INGEST_PHASES = [
    ("reading the file", "/element_session/readers.py"),
    ("validation (_SessionPlan.prepare)", "_SessionPlan.prepare ("),
    ("writing (element_session.ingest.bulk: literals or COPY text, driver, server)", "/element_session/ingest/bulk.py"),
]


def _phase(stack: list[str]) -> str:
    for frame in stack:
        for name, marker in INGEST_PHASES:
            if marker in frame:
                return name
    return "the rest (chunk loop, existence checks, transaction)"


def _datajoint(frame: str, outer: list[str]) -> str:
    """The DataJoint category of the innermost DataJoint frame ``frame``, given the frames outside it."""
    function = frame.split(" (")[0]
    if "/datajoint/connection.py" in frame or "/datajoint/adapters/" in frame:
        return DJ_QUERY
    if "/datajoint/codecs" in frame or "/datajoint/fetch.py" in frame or ".to_dicts" in function:
        return DJ_FETCH
    if "/datajoint/table.py" in frame:
        return DJ_INSERT
    if "/datajoint/heading.py" in frame or "/datajoint/settings.py" in frame:
        # a heading lookup counts for the DataJoint code that asked for it
        for caller in reversed(outer):
            if "/datajoint/" in caller and "/heading.py" not in caller and "/settings.py" not in caller:
                return _datajoint(caller, [])
    return DJ_BUILD


def classify(stack: list[str]) -> tuple[str, str]:
    """The category of one sampled stack (root first) and the frame that decided it.

    The innermost frame of a known package decides; frames of the standard library and builtins count
    for the nearest such caller, except a socket read (waiting for the server). A stack that ends in
    line calling a cursor's method (DataJoint's ``cursor.execute``, the project's ``copy_expert``) ran
    psycopg2's C code (py-spy shows no C frames): the driver's work and the wait for the server, which
    the profile cannot tell apart. (PyMySQL is Python: its frames show.)
    """
    if stack and _calls_c_cursor(stack[-1]):
        return C_DRIVER, stack[-1]
    for index in range(len(stack) - 1, -1, -1):
        frame = stack[index]
        if "/socket.py" in frame:
            return SERVER, frame
        if "/pymysql/" in frame:
            return (SEND if "_write_bytes" in frame else DRIVER), frame
        if "/psycopg2/" in frame:
            return C_DRIVER, frame
        if "/datajoint/" in frame:
            return _datajoint(frame, stack[:index]), frame
        if "/pandas/" in frame or "/numpy/" in frame:
            return PANDAS, frame
        if "/element_session/" in frame:
            return OWN, frame
        if "/benchmarks/" in frame:
            return "benchmark harness", frame
    return OTHER, stack[-1] if stack else "?"


def _calls_c_cursor(frame: str) -> bool:
    """Whether the source line of ``frame`` (``function (path:line)``) calls a psycopg2 cursor in C."""
    location = frame.rsplit(" (", 1)[-1].rstrip(")")
    path, _, line = location.rpartition(":")
    if not line.isdigit():
        return False
    text = linecache.getline(path, int(line))
    return "cursor.execute(" in text or ".copy_expert(" in text


def summarise(raw_file: Path, keep: str, top: int = 15) -> dict[str, Any]:
    """Shares of the samples of a ``py-spy -f raw`` file by category and by deciding frame.

    Only stacks containing ``keep`` (the workload's function) count.
    """
    categories: collections.Counter[str] = collections.Counter()
    frames: collections.Counter[str] = collections.Counter()
    phases: collections.Counter[str] = collections.Counter()
    for line in raw_file.read_text().splitlines():
        stack_text, _, count = line.rpartition(" ")
        if keep not in stack_text or not count.isdigit():
            continue
        stack = stack_text.split(";")
        category, frame = classify(stack)
        categories[category] += int(count)
        frames[f"{category} | {_short(frame)}"] += int(count)
        phases[_phase(stack)] += int(count)
    total = sum(categories.values()) or 1
    result = {
        "samples": total,
        "categories": {name: count / total for name, count in categories.most_common()},
        "top_frames": {name: count / total for name, count in frames.most_common(top)},
    }
    if keep == WORKLOADS["ingest"]:
        result["phases"] = {name: count / total for name, count in phases.most_common()}
    return result


def _short(frame: str) -> str:
    """``function (…/package/module.py:line)`` without the site-packages part of the path."""
    for marker in ("site-packages/", "/element_session/", "/benchmarks/", "/lib/python3"):
        head, sep, tail = frame.partition(marker)
        if sep:
            name = head.split(" (")[0]
            return f"{name} ({marker.strip('/') + '/' if marker != 'site-packages/' else ''}{tail}"
    return frame


@contextlib.contextmanager
def spied(output: Path, rate: int = 200):
    """Run py-spy on this process while the block runs; raw stacks into ``output``."""
    command = [
        str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(os.getpid()), "--idle",
        "--full-filenames", "--nonblocking", "-r", str(rate), "-f", "raw", "-o", str(output),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        if not output.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')}")


def finder_steps(session_module: Any, raw: Any, sql: str, arguments: dict, runs: int = 300) -> dict[str, float]:
    """Median ms of the finder's steps, and of the raw parameterised query, without the profiler.

    Each run, in turn: ``find_sessions`` (builds the restricted expression), ``* SessionNote`` (the join),
    ``make_sql`` (the SQL text, which ``to_dicts`` builds again), ``to_dicts`` (SQL, send, fetch, decode),
    DataJoint's ``Connection.query`` of that SQL text with a dict cursor and ``fetchall`` (no decoding),
    the raw driver on that SQL text fetched as dicts, and the benchmark's raw parameterised query.
    """
    import datajoint as dj

    from element_session.query import find_sessions

    connection = dj.conn()
    timings: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(runs):
        t0 = time.perf_counter()
        found = find_sessions(session_module, **arguments)
        t1 = time.perf_counter()
        joined = found * session_module.SessionNote
        t2 = time.perf_counter()
        text = joined.make_sql()
        t3 = time.perf_counter()
        joined.to_dicts()
        t4 = time.perf_counter()
        connection.query(text, as_dict=True).fetchall()
        t5 = time.perf_counter()
        with raw.cursor() as cursor:
            cursor.execute(text)
            names = [d[0] for d in cursor.description]
            [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        t6 = time.perf_counter()
        bench_query.baseline_query(raw, sql, arguments)
        t7 = time.perf_counter()
        timings["find_sessions (restriction built)"].append(t1 - t0)
        timings["* SessionNote (join built)"].append(t2 - t1)
        timings["make_sql (SQL text)"].append(t3 - t2)
        timings["to_dicts (SQL built again, sent, fetched, decoded)"].append(t4 - t3)
        timings["DataJoint Connection.query of the SQL text, dict cursor, fetchall"].append(t5 - t4)
        timings["raw driver, DataJoint's SQL text, dicts"].append(t6 - t5)
        timings["raw parameterised query, dicts"].append(t7 - t6)
    medians = {name: statistics.median(values) * 1000 for name, values in timings.items()}
    medians["whole finder call"] = sum(medians[name] for name in list(medians)[:2]) + medians[list(medians)[3]]
    return medians


def refill(raw: Any, server: Any, names: dict, files: Path, n: int) -> None:
    bench_ingest.empty_tables(raw, server, names)
    bench_ingest.write_baseline(raw, server, names, bench_ingest.baseline_rows(_csv(files, n)))


def _csv(files: Path, n: int) -> Path:
    path = files / f"sessions-{n}.csv"
    return path if path.exists() else bench_ingest.write_sessions_csv(path, n)


def table_scaling(
    pipeline: Any, raw: Any, server: Any, prefix: str, names: dict, files: Path, sizes: list[int]
) -> list[dict]:
    from element_session.query import session_table

    results = []
    for n in sizes:
        start = time.perf_counter()
        refill(raw, server, names, files, n)
        load = time.perf_counter() - start
        if n <= 100_000:
            session_table(pipeline.session)  # warm-up
        start = time.perf_counter()
        frame = session_table(pipeline.session)
        seconds = time.perf_counter() - start
        frame_bytes = int(frame.memory_usage(deep=True).sum())
        del frame
        memory = bench_memory.measure(server, prefix, "table", _csv(files, n))  # a fresh process
        result = {
            "n": n,
            "seconds": seconds,
            "us_per_session": seconds / n * 1e6,
            "fresh_process_seconds": memory["seconds"],
            "peak_increase_mib": memory["peak_increase_mib"],
            "peak_bytes_per_session": memory["peak_increase_mib"] * 1024**2 / n,
            "frame_bytes_per_session": frame_bytes / n,
            "load_seconds_raw_driver": load,
            "warm_up": n <= 100_000,
            "load_average_1_min": os.getloadavg()[0],
        }
        say(f"  table N={n:,}: {seconds:.2f} s, {result['us_per_session']:.1f} us a session, "
            f"peak +{result['peak_increase_mib']:.0f} MiB (load {result['load_average_1_min']:.1f})")  # fmt: skip
        results.append(result)
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    import datajoint as dj

    from element_session.query import session_table

    logging.getLogger("datajoint").setLevel(logging.WARNING)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"date": report.now(), "git": report.git_commit(), "machine": report.machine()}
    with contextlib.ExitStack() as stack:
        bench = stack.enter_context(benchmark_pipeline(args.backend, "element-session-spy-"))
        server, prefix, pipeline, files = bench.server, bench.prefix, bench.pipeline, bench.files
        raw, raw_query, names = bench.raw, bench.raw_query, bench.names
        backend = server.backend
        results["backend"] = backend
        results["versions"] = report.versions(
            dj.conn().query("SELECT version()").fetchone()[0], bench_ingest.driver_version(server)
        )
        sizes = sorted({100_000, *args.table_sizes})
        bench_ingest.add_references(pipeline, max(sizes))
        profiles: dict[str, Any] = {}

        if not args.scaling_only:
            path = _csv(files, 20_000)
            bench_ingest.empty_tables(raw, server, names)
            bench_ingest.run_project(pipeline, _csv(files, 1_000))  # warm-up: imports, headings
            bench_ingest.empty_tables(raw, server, names)
            with spied(out / f"spy-{backend}-ingest.txt"):
                timing = bench_ingest.run_project(pipeline, path)
            profiles["ingest"] = {
                "n": 20_000,
                "seconds": timing.seconds,
                **summarise(out / f"spy-{backend}-ingest.txt", WORKLOADS["ingest"]),
            }
            bench_ingest.empty_tables(raw, server, names)
            start = time.perf_counter()
            baseline = bench_ingest.run_baseline(raw, server, names, path)
            profiles["ingest"]["baseline_seconds"] = baseline.seconds
            profiles["ingest"]["baseline_write_seconds"] = baseline.write_seconds
            say(f"ingest 20,000: project {timing.seconds:.2f} s, raw {time.perf_counter() - start:.2f} s")

            refill(raw, server, names, files, 100_000)
            arguments = bench_query.query_arguments(100_000)
            sql = bench_query.baseline_sql(server, pipeline.session)
            for _ in range(20):
                bench_query.project_query(pipeline.session, arguments)
            calls = 0
            with spied(out / f"spy-{backend}-finder.txt"):
                end = time.perf_counter() + 15
                while time.perf_counter() < end:
                    bench_query.project_query(pipeline.session, arguments)
                    calls += 1
            profiles["finder"] = {
                "n": 100_000,
                "calls": calls,
                **summarise(out / f"spy-{backend}-finder.txt", WORKLOADS["finder"]),
            }
            profiles["finder"]["steps_median_ms"] = finder_steps(pipeline.session, raw_query, sql, arguments)
            say(f"finder: {json.dumps(profiles['finder']['steps_median_ms'], indent=1)}")

            session_table(pipeline.session)
            start = time.perf_counter()
            with spied(out / f"spy-{backend}-table.txt"):
                for _ in range(3):
                    session_table(pipeline.session)
            seconds = (time.perf_counter() - start) / 3
            profiles["session_table"] = {
                "n": 100_000,
                "runs": 3,
                **summarise(out / f"spy-{backend}-table.txt", WORKLOADS["table"]),
            }
            profiles["session_table"]["seconds_per_run_under_py_spy"] = seconds
            results["profiles"] = profiles
        if args.table_sizes:
            results["table_scaling"] = table_scaling(
                pipeline, raw, server, prefix, names, files, sorted(args.table_sizes)
            )
    results["load_average_at_end"] = os.getloadavg()
    path = out / f"spy-{results['backend']}{'-scaling' if args.scaling_only else ''}.json"
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    say(f"written: {path}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spy", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["mysql", "postgresql"], default=os.environ.get("DJ_BACKEND", "mysql"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--table-sizes",
        type=lambda text: [int(part.replace("_", "")) for part in text.split(",") if part.strip()],
        default=[],
        help="session_table sizes to time and measure (e.g. 1000,10000,100000,1000000)",
    )
    parser.add_argument("--scaling-only", action="store_true", help="only the --table-sizes measurement")
    parser.add_argument(
        "--resummarise", type=Path, metavar="JSON", help="recompute the summaries of JSON from its raw stacks, no run"
    )
    parser.add_argument("--plot", type=Path, metavar="JSON", help="plot the table scaling of JSON into a PNG beside it")
    args = parser.parse_args(argv)
    if args.plot:
        plot_scaling(args.plot)
    elif args.resummarise:
        resummarise(args.resummarise)
    else:
        run(args)
    return 0


def plot_scaling(path: Path) -> Path:
    """``session_table`` microseconds and peak bytes per session against N, as ``<JSON stem>.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads(path.read_text())
    rows = results["table_scaling"]
    sizes = [row["n"] for row in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2), constrained_layout=True)
    left.plot(sizes, [row["us_per_session"] for row in rows], "o-", label="in process")
    left.plot(sizes, [row["fresh_process_seconds"] / row["n"] * 1e6 for row in rows], "s--", label="fresh process")
    left.set(xscale="log", xlabel="sessions N", ylabel="us per session", ylim=(0, None), title="session_table time")
    left.legend()
    right.plot(sizes, [row["peak_bytes_per_session"] / 1024 for row in rows], "o-", label="peak RSS increase")
    right.plot(sizes, [row["frame_bytes_per_session"] / 1024 for row in rows], "s--", label="DataFrame")
    right.set(xscale="log", xlabel="sessions N", ylabel="KiB per session", ylim=(0, None), title="memory")
    right.legend()
    figure.suptitle(f"{results['backend']}, commit {results['git']['commit']}, 2 shared cores", fontsize=9)
    png = path.with_suffix(".png")
    figure.savefig(png, dpi=90)
    return png


def resummarise(path: Path) -> None:
    """Recompute the profile summaries of a ``spy-<backend>.json`` from the raw stacks beside it."""
    results = json.loads(path.read_text())
    for name, profile in results["profiles"].items():
        workload = "table" if name == "session_table" else name
        raw_file = path.with_name(f"spy-{results['backend']}-{workload}.txt")
        profile.update(summarise(raw_file, WORKLOADS[workload]))
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
