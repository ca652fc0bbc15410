"""Results of a benchmark run: the machine and versions, a JSON file and a Markdown table."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

INGEST_TARGET = 1.5  # ingest time / raw-SQL time, at N >= 10,000
QUERY_TARGET = 1.3  # finder latency / raw-SQL latency
INGEST_TARGET_FROM = 10_000
INGEST_BULK_TARGET = 1.25  # ingest time / raw executemany time, at N >= 100,000 (issue 14)
INGEST_BULK_FROM = 100_000
QUERY_LIMIT = 1.5  # finder latency / raw-SQL latency, the limit of issue 14 (QUERY_TARGET is its goal)
TABLE_TARGET = 1.5  # session_table() time / time of fetching every row of the seven tables (goal 1.0)


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model and operating system of this machine."""
    cpu_model = platform.processor() or platform.machine()
    memory_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = int(line.split()[1]) / 1024**2
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "cpu_model": cpu_model,
        "platform": platform.platform(),
    }


def git_commit() -> dict[str, Any]:
    """The commit of the checkout the benchmark ran from, and its tracked files with uncommitted changes."""
    root = Path(__file__).resolve().parent.parent

    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", str(root), *argv], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "uncommitted_changes": []}
    return {"commit": commit, "uncommitted_changes": changed}


def versions(server_version: str, driver: str) -> dict[str, str]:
    import datajoint as dj

    import element_session

    return {
        "python": sys.version.split()[0],
        "datajoint": dj.__version__,
        "element_session": element_session.__version__,
        "server": server_version,
        "driver": driver,
    }


def now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """Whether each target of the issue is met, from the measured medians."""
    ingest = [r for r in results["ingest"] if r["n"] >= INGEST_TARGET_FROM]
    bulk = [r for r in results["ingest"] if r["n"] >= INGEST_BULK_FROM]
    query, table = results["query"], results.get("table", [])
    return {
        "ingest_within_1.5x_from_10000": all(r["ratio"] <= INGEST_TARGET for r in ingest) if ingest else None,
        "ingest_within_1.25x_from_100000": all(r["ratio"] <= INGEST_BULK_TARGET for r in bulk) if bulk else None,
        "query_within_1.3x": all(r["ratio"] <= QUERY_TARGET for r in query) if query else None,
        "query_within_1.5x": all(r["ratio"] <= QUERY_LIMIT for r in query) if query else None,
        "table_within_1.5x": all(r["ratio"] <= TABLE_TARGET for r in table) if table else None,
    }


def write(results: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``results`` as ``<backend>-<date>.json`` and ``.md`` in ``out``; the two paths."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{results['backend']}-{results['date'][:10]}"
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path


def paired_ratios(ingest: dict[str, Any]) -> list[float]:
    """Project / baseline seconds of each repeat (the two runs of a repeat ran back to back)."""
    return [p / b for p, b in zip(ingest["project"]["seconds"], ingest["baseline"]["seconds"], strict=True)]


def _f(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown: context, then one table per benchmark."""
    m, v, s = results["machine"], results["versions"], results["settings"]
    lines = [
        f"# element-session benchmarks: {results['backend']}, {results['date']}",
        "",
        f"- Machine: {m['cores']} cores, {_f(m['memory_gib'], 1)} GiB, {m['cpu_model']}; {m['platform']}",
        f"- Python {v['python']}, DataJoint {v['datajoint']}, element-session {v['element_session']} "
        f"(commit {results['git']['commit'] or 'unknown'}), server {v['server']}, baseline driver {v['driver']}",
        *(
            [f"- Uncommitted changes in: {', '.join(results['git']['uncommitted_changes'])}"]
            if results["git"]["uncommitted_changes"]
            else []
        ),
        f"- Server: {results['server']}",
        f"- Medians of {s['repeats']} ingest run(s) per way and N (alternating order, tables emptied before each) "
        f"and of {s['query_runs']} query runs per way and N. Whole run: {_f(results['wall_seconds'] / 60, 1)} min; "
        f"load average (1, 5, 15 min) {_load(results['load_average_at_start'])} at the start, "
        f"{_load(results['load_average_at_end'])} at the end (the machine is shared: other work ran alongside).",
        "",
        "## Ingest",
        "",
        "N sessions from one CSV file, each with 3 attributes, 1 experimenter, 1 note, 1 directory, 1 project link "
        'and 1 time zone row (9 rows in 7 tables). Project: `ingest("sessions", file, pipeline=...)`, validation '
        "included. Raw SQL: the file read with `csv`, no validation, the same rows written in one transaction "
        f"({s['baseline_method']}). Target: ratio <= {INGEST_TARGET} from N = {INGEST_TARGET_FROM:,}.",
        "",
        "Ratio: of the medians; run by run: the range of the ratios of the two runs of each repeat, which ran "
        "back to back (how much the machine's load moved the result).",
        "",
        "| N | project s | project sessions/s | raw SQL s | raw SQL sessions/s | ratio | run by run "
        "| raw write only s | ratio to write only | same rows |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for r in results["ingest"]:
        p, b = r["project"], r["baseline"]
        paired = paired_ratios(r)
        lines.append(
            f"| {r['n']:,} | {_f(p['median_seconds'])} | {_f(p['sessions_per_second'], 0)} "
            f"| {_f(b['median_seconds'])} | {_f(b['sessions_per_second'], 0)} | **{_f(r['ratio'])}** "
            f"| {_f(min(paired))}-{_f(max(paired))} | {_f(b['median_write_seconds'])} | {_f(r['ratio_to_write'])} "
            f"| {'yes' if r['identical_rows'] else 'NO'} |"
        )
    lines += [
        "",
        "## Query",
        "",
        f"One subject's sessions in a {results['query'][0]['window_days'] if results['query'] else 30}-day window "
        "with their notes (30 rows at every N), fetched as dicts. Project: "
        "`(find_sessions(session, subject=..., since=..., until=...) * session.SessionNote).to_dicts()`. "
        f"Raw SQL: the same join with parameters. Target: ratio <= {QUERY_TARGET}, flat in N.",
        "",
        "| N | rows | project median ms | raw SQL median ms | ratio | project p90 ms | raw SQL p90 ms | same rows |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for r in results["query"]:
        p, b = r["project"], r["baseline"]
        lines.append(
            f"| {r['n']:,} | {r['rows']} | {_f(p['median_ms'])} | {_f(b['median_ms'])} | **{_f(r['ratio'])}** "
            f"| {_f(p['p90_ms'])} | {_f(b['p90_ms'])} | {'yes' if r['identical_rows'] else 'NO'} |"
        )
    growth = results.get("query_growth")
    if growth:
        lines += [
            "",
            f"Growth from N = {growth['from_n']:,} to {growth['to_n']:,}: project x{_f(growth['project'])}, "
            f"raw SQL x{_f(growth['baseline'])} (median latency at the largest N / at the smallest).",
        ]
    lines += [
        "",
        "## Table of sessions",
        "",
        "Every session as a typed DataFrame. Project: `session_table(session)` (one aggregating query, typed "
        "pandas columns). Baseline: `SELECT *` of each of the seven session tables on the raw driver's plain "
        f"cursor, `fetchall()`, no DataFrame. Target: ratio <= {TABLE_TARGET} (goal 1.0), linear in N "
        "(microseconds per session flat).",
        "",
        "| N | project median s | raw fetch median s | ratio | project us/session | raw us/session "
        "| DataFrame bytes/session |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results.get("table", []):
        lines.append(
            f"| {r['n']:,} | {_f(r['project']['median_seconds'])} | {_f(r['baseline']['median_seconds'])} "
            f"| **{_f(r['ratio'])}** | {_f(r['project_us_per_session'], 1)} | {_f(r['baseline_us_per_session'], 1)} "
            f"| {_f(r['frame_bytes_per_session'], 0)} |"
        )
    lines += [
        "",
        "## Memory",
        "",
        "Peak resident memory of ingesting the file of N sessions in a fresh process, above its size after "
        "importing and activating the pipeline (VmHWM - VmRSS).",
        "",
        "| N | file MiB | project peak increase MiB | raw SQL peak increase MiB | project KiB per session |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["memory"]:
        lines.append(
            f"| {r['n']:,} | {_f(r['file_mib'])} | {_f(r['project']['peak_increase_mib'], 1)} "
            f"| {_f(r['baseline']['peak_increase_mib'], 1)} | {_f(r['project_kib_per_session'], 2)} |"
        )
    populate = results.get("populate")
    lines += ["", "## Populate", ""]
    if populate:
        median = populate["median_seconds"]
        lines += [
            f"`benchmarks.populate` on the same server: {populate['keys_per_run']} keys per run "
            f"({populate['sessions']} sessions x {populate['files_per_session']} files of {populate['file_kib']} KiB), "
            f"median of {populate['repeats']}.",
            "",
            "| workers | median s |",
            "| ---: | ---: |",
            *(f"| {w} | {_f(t)} |" for w, t in median.items()),
            "",
            f"Speed-up of 2 workers over 1: x{_f(populate['speedup_2_over_1'])}.",
        ]
    else:
        lines.append(results.get("populate_note") or "Not run.")
    t = results["targets"]
    lines += [
        "",
        "## Targets",
        "",
        f"- Ingest within {INGEST_TARGET}x raw SQL from N = {INGEST_TARGET_FROM:,}: "
        f"{_yes(t['ingest_within_1.5x_from_10000'])}",
        f"- Ingest within {INGEST_BULK_TARGET}x raw SQL from N = {INGEST_BULK_FROM:,}: "
        f"{_yes(t.get('ingest_within_1.25x_from_100000'))}",
        f"- Query within {QUERY_LIMIT}x raw SQL: {_yes(t.get('query_within_1.5x'))}; goal {QUERY_TARGET}x: "
        f"{_yes(t['query_within_1.3x'])}",
        f"- Table of sessions within {TABLE_TARGET}x of fetching the seven tables: {_yes(t.get('table_within_1.5x'))}",
        "",
    ]
    return "\n".join(lines)


def _load(values: list[float] | tuple[float, ...]) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def _yes(value: bool | None) -> str:
    return "not measured (no N in range)" if value is None else ("met" if value else "**not met**")


def main(argv: list[str] | None = None) -> int:
    """Write the Markdown of results JSON files again (e.g. after the table layout changed)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=main.__doc__)
    parser.add_argument("json", nargs="+", type=Path, help="results files written by python -m benchmarks.run")
    for path in parser.parse_args(argv).json:
        md = path.with_suffix(".md")
        md.write_text(markdown(json.loads(path.read_text())))
        print(f"written: {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
