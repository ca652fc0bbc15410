"""The command end to end: ``element-session ingest sessions FILE`` against a raw-driver script, each a process.

Project: the ``element-session`` executable installed beside the running Python (else ``python -m
element_session``), as a user runs it: start-up, imports, connection, activation of the workflow
pipeline, reading, validation, writing, the report, exit. Baseline: ``python -m
benchmarks.ingest_baseline`` (:mod:`benchmarks.ingest_baseline`): the same file read with ``csv`` and
the same rows written with PyMySQL ``executemany`` / psycopg2 ``execute_values`` in one transaction.
Both are timed from process start to exit, with the server's credentials in their environment only.
Every run starts from emptied session tables; after every run the tables' contents (row counts and
a digest of the sorted rows) must be the same for all runs of both ways. Runs alternate which way
goes first. The fixed cost of each way (the same commands on a file with the header only) is
measured too, so that what start-up costs is visible beside what N sessions cost.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from element_session.localdb import ServerInfo

from . import ROOT, child_environment, report
from . import ingest as bench_ingest

WAYS = ("project", "baseline")


def project_command(path: Path) -> list[str]:
    """``element-session ingest sessions FILE``: the installed executable if there is one."""
    script = Path(sys.executable).with_name("element-session")
    start = [str(script)] if script.exists() else [sys.executable, "-m", "element_session"]
    return [*start, "ingest", "sessions", str(path)]


def shown(command: list[str]) -> str:
    """``command`` as the results show it: the program without its directory, FILE for the file."""
    program = "python" if command[0] == sys.executable else Path(command[0]).name
    return " ".join([program, *command[1:-1], "FILE"])


def baseline_command(names: dict[str, str], path: Path) -> list[str]:
    return [sys.executable, "-m", "benchmarks.ingest_baseline", "--tables", json.dumps(names), str(path)]


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Seconds from the start of ``command`` to its exit, the CPU seconds (user + system) the process used,
    and its standard output; an error if it failed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... exited with {result.returncode}:\n{result.stderr[-3000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return seconds, cpu, result.stdout


def header_only(path: Path) -> Path:
    """A copy of the CSV file ``path`` with its header line only, beside it."""
    empty = path.with_name(f"{path.stem}-header-only.csv")
    with path.open(encoding="utf-8", newline="") as file:
        empty.write_text(file.readline(), encoding="utf-8", newline="")
    return empty


def run(
    server: ServerInfo,
    raw: Any,
    names: dict[str, str],
    prefix: str,
    path: Path,
    n: int,
    repeats: int,
    say: Any = print,
) -> dict[str, Any]:
    """``repeats`` runs of each way on the file of ``n`` sessions at ``path``, and as many on its header alone."""
    load = os.getloadavg()
    env = child_environment(server, prefix)
    commands = {"project": project_command(path), "baseline": baseline_command(names, path)}
    empty = header_only(path)
    empty_commands = {"project": project_command(empty), "baseline": baseline_command(names, empty)}
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    cpu_seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    empty_seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    baseline_parts: list[dict[str, float]] = []
    states, project_report = [], ""
    for repeat in range(repeats):
        for way in WAYS if repeat % 2 == 0 else WAYS[::-1]:
            bench_ingest.empty_tables(raw, server, names)
            elapsed, cpu, output = timed(commands[way], env)
            seconds[way].append(elapsed)
            cpu_seconds[way].append(cpu)
            if way == "baseline":
                baseline_parts.append(json.loads(output.strip().splitlines()[-1]))
            else:
                project_report = output.strip()
            states.append(bench_ingest.table_state(raw, server, names))
            say(f"  command N={n:,} {way:8s} run {repeat + 1}/{repeats}: {elapsed:8.2f} s")
    for repeat in range(repeats):  # the fixed cost: the tables hold the N sessions; the file adds none
        for way in WAYS if repeat % 2 == 0 else WAYS[::-1]:
            empty_seconds[way].append(timed(empty_commands[way], env)[0])
    empty.unlink()
    times = {
        way: {
            "seconds": seconds[way],
            "median_seconds": statistics.median(seconds[way]),
            "sessions_per_second": n / statistics.median(seconds[way]),
            "cpu_seconds": cpu_seconds[way],
            "median_cpu_seconds": statistics.median(cpu_seconds[way]),
            "header_only_seconds": empty_seconds[way],
            "median_header_only_seconds": statistics.median(empty_seconds[way]),
        }
        for way in WAYS
    }
    result: dict[str, Any] = {
        "n": n,
        "file_mib": path.stat().st_size / 1024**2,
        "project_command": shown(commands["project"]),
        "baseline_command": "python -m benchmarks.ingest_baseline --tables JSON FILE",
        "project_report": project_report,
        "rows": {name: state["rows"] for name, state in states[0].items()},
        "expected_rows": bench_ingest.expected_rows(n),
        "identical_rows": all(state == states[0] for state in states),
        "runs_checked": len(states),
        "project": times["project"],
        "baseline": {
            **times["baseline"],
            "read_seconds": [part["read_seconds"] for part in baseline_parts],
            "write_seconds": [part["write_seconds"] for part in baseline_parts],
            "median_read_seconds": statistics.median(part["read_seconds"] for part in baseline_parts),
            "median_write_seconds": statistics.median(part["write_seconds"] for part in baseline_parts),
        },
        "ratio": times["project"]["median_seconds"] / times["baseline"]["median_seconds"],
        "cpu_ratio": times["project"]["median_cpu_seconds"] / times["baseline"]["median_cpu_seconds"],
        "load_average_1_5_15_min": {"before": load, "after": os.getloadavg()},
    }
    result["paired_ratios"] = report.paired_ratios(result)
    return result
