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

#: Issue 14's targets, each a ratio of project time to baseline time in one run, at the N it names.
INGEST_LIMIT, INGEST_AT = 1.25, 100_000  # ingest() / the raw driver's multi-row write, validation included
COMMAND_LIMIT, COMMAND_AT = 1.5, 50_000  # `element-session ingest` / the raw-driver script, each a process
TABLE_LIMIT, TABLE_GOAL, TABLE_AT = 1.5, 1.0, 100_000  # session_table() / fetching every row of the seven tables
QUERY_LIMIT, QUERY_GOAL = 1.5, 1.3  # finder latency / the same SQL with parameters, at every N
#: "Linear" (session_table) and "flat" (finder): the time per session, or the latency, at the largest N
#: at most this multiple of that at the smallest N from GROWTH_FROM (the shared machines are noisy).
GROWTH_LIMIT, GROWTH_FROM = 1.5, 1_000
#: The names of the targets in the results' "targets" (True: met, False: not met, None: not measured).
TARGET_NAMES = {
    "ingest": f"ingest_within_{INGEST_LIMIT}x_at_{INGEST_AT}",
    "command": f"command_within_{COMMAND_LIMIT}x_at_{COMMAND_AT}",
    "table": f"table_within_{TABLE_LIMIT}x_at_{TABLE_AT}",
    "table_goal": f"table_goal_{TABLE_GOAL}x_at_{TABLE_AT}",
    "table_linear": "table_linear",
    "query": f"query_within_{QUERY_LIMIT}x",
    "query_goal": f"query_goal_{QUERY_GOAL}x",
    "query_flat": "query_flat",
}


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


def targets(results: dict[str, Any]) -> dict[str, bool | None]:
    """Whether each target of issue 14 is met (None: no N in its range was run), by its name in TARGET_NAMES.

    Computed from the measured rows alone, so that results files written before a target changed are
    judged by the current targets when their Markdown is written again.
    """
    return {TARGET_NAMES[key]: value for key, value in _met(results).items()}


def _met(results: dict[str, Any]) -> dict[str, bool | None]:
    ingest, command = results.get("ingest", []), results.get("command", [])
    table, query = results.get("table", []), results.get("query", [])

    def within(rows: list[dict[str, Any]], limit: float, at: int = 0) -> bool | None:
        rows = [r for r in rows if r["n"] >= at]
        return all(r["ratio"] <= limit for r in rows) if rows else None

    return {
        "ingest": within(ingest, INGEST_LIMIT, INGEST_AT),
        "command": within(command, COMMAND_LIMIT, COMMAND_AT),
        "table": within(table, TABLE_LIMIT, TABLE_AT),
        "table_goal": within(table, TABLE_GOAL, TABLE_AT),
        "table_linear": _flat(table, "us_per_session"),
        "query": within(query, QUERY_LIMIT),
        "query_goal": within(query, QUERY_GOAL),
        "query_flat": _flat(query, "median_ms"),
    }


def _growth(rows: list[dict[str, Any]], field: str, way: str = "project") -> tuple[int, int, float] | None:
    """(smallest N, largest N, ``way``'s value at the largest / at the smallest) over the N from GROWTH_FROM."""
    rows = sorted((r for r in rows if r["n"] >= GROWTH_FROM), key=lambda r: r["n"])
    if len(rows) < 2:
        return None

    def value(row: dict[str, Any]) -> float:
        return row[f"{way}_{field}"] if f"{way}_{field}" in row else row[way][field]

    return rows[0]["n"], rows[-1]["n"], value(rows[-1]) / value(rows[0])


def _flat(rows: list[dict[str, Any]], field: str) -> bool | None:
    growth = _growth(rows, field)
    return None if growth is None else growth[2] <= GROWTH_LIMIT


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
        f"- Medians of {s['repeats']} ingest and command run(s) per way and N (alternating order, tables emptied "
        "before each) "
        f"and of {s['query_runs']} query runs per way and N. Whole run: {_f(results['wall_seconds'] / 60, 1)} min; "
        f"load average (1, 5, 15 min) {_load(results['load_average_at_start'])} at the start, "
        f"{_load(results['load_average_at_end'])} at the end (the machine is shared: other work ran alongside).",
        "",
        "## Ingest",
        "",
        "N sessions from one CSV file, each with 3 attributes, 1 experimenter, 1 note, 1 directory, 1 project link "
        'and 1 time zone row (9 rows in 7 tables). Project: `ingest("sessions", file, pipeline=...)`, validation '
        "included. Raw SQL: the file read with `csv`, no validation, the same rows written in one transaction "
        f"({s['baseline_method']}). Target: ratio <= {INGEST_LIMIT} at N = {INGEST_AT:,}.",
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
    lines += _command_section(results)
    lines += [
        "",
        "## Query",
        "",
        f"One subject's sessions in a {results['query'][0]['window_days'] if results['query'] else 30}-day window "
        "with their notes (30 rows at every N), fetched as dicts. Project: "
        "`(find_sessions(session, subject=..., since=..., until=...) * session.SessionNote).to_dicts()`. "
        f"Raw SQL: the same join with parameters. Target: ratio <= {QUERY_LIMIT} (goal {QUERY_GOAL}) at every N, "
        "flat in N.",
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
        f"cursor, `fetchall()`, no DataFrame. Target: ratio <= {TABLE_LIMIT} (goal {TABLE_GOAL}) at N = "
        f"{TABLE_AT:,}, linear in N (microseconds per session flat).",
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
    ]
    if results["memory"]:
        lines += [
            "| N | file MiB | project peak increase MiB | raw SQL peak increase MiB | project KiB per session |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
    else:
        lines.append("Not run (--no-memory).")
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
    lines += ["", "## Targets", "", *target_lines(results), ""]
    return "\n".join(lines)


def _command_section(results: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Command end to end",
        "",
        "N sessions from the same kind of CSV file, each way a process of its own timed from start to exit, "
        "the server's credentials in its environment. Project: `element-session ingest sessions FILE` "
        "(start-up, imports, connection, activation of the workflow pipeline, reading, validation, writing, the "
        "report). Baseline: `python -m benchmarks.ingest_baseline` (the file read with `csv`, no validation, the "
        "same rows written in one transaction by the raw driver, as in Ingest). Tables emptied before each run, "
        "their contents compared after each. Header only: the same commands on the file's header line alone "
        "(what start-up, connection and activation cost). CPU: user + system seconds of the process, which the "
        f"machine's load moves less than wall time. Target: ratio <= {COMMAND_LIMIT} at N = {COMMAND_AT:,}.",
        "",
    ]
    rows = results.get("command", [])
    if not rows:
        return [*lines, results.get("command_note") or "Not run."]
    lines += [
        "| N | project s | baseline s | ratio | run by run | project CPU s | baseline CPU s "
        "| project header only s | baseline header only s | baseline read s | baseline write s | same rows |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for r in rows:
        p, b = r["project"], r["baseline"]
        paired = r["paired_ratios"]
        lines.append(
            f"| {r['n']:,} | {_f(p['median_seconds'])} | {_f(b['median_seconds'])} | **{_f(r['ratio'])}** "
            f"| {_f(min(paired))}-{_f(max(paired))} | {_f(p['median_cpu_seconds'])} | {_f(b['median_cpu_seconds'])} "
            f"| {_f(p['median_header_only_seconds'])} | {_f(b['median_header_only_seconds'])} "
            f"| {_f(b['median_read_seconds'])} | {_f(b['median_write_seconds'])} "
            f"| {'yes' if r['identical_rows'] else 'NO'} |"
        )
    return lines


def target_lines(results: dict[str, Any]) -> list[str]:
    """One Markdown line per target of issue 14: met or not, with the ratio at each N it covers."""
    t = _met(results)

    def ratios(name: str, at: int = 0) -> str:
        rows = [r for r in results.get(name, []) if r["n"] >= at]
        return "; ".join(f"{_f(r['ratio'])} at {r['n']:,}" for r in rows)

    def growth(name: str, field: str, unit: str) -> str:
        found, baseline = _growth(results.get(name, []), field), _growth(results.get(name, []), field, "baseline")
        if found is None or baseline is None:
            return ""
        return f"x{_f(found[2])} {unit}, baseline x{_f(baseline[2])}, from N = {found[0]:,} to {found[1]:,}"

    return [
        f"- Ingest within {INGEST_LIMIT}x of the raw driver's write at N = {INGEST_AT:,}: "
        f"{_yes(t['ingest'], ratios('ingest', INGEST_AT))}",
        f"- `element-session ingest` end to end within {COMMAND_LIMIT}x of the raw-driver script at "
        f"N = {COMMAND_AT:,}: {_yes(t['command'], ratios('command', COMMAND_AT))}",
        f"- Table of sessions within {TABLE_LIMIT}x of fetching the seven tables at N = {TABLE_AT:,}: "
        f"{_yes(t['table'], ratios('table', TABLE_AT))}; goal {TABLE_GOAL}x: "
        f"{_yes(t['table_goal'])}; linear in N (time per session at most "
        f"x{GROWTH_LIMIT}): {_yes(t['table_linear'], growth('table', 'us_per_session', 'per session'))}",
        f"- Finder within {QUERY_LIMIT}x of the same SQL at every N: "
        f"{_yes(t['query'], ratios('query'))}; goal {QUERY_GOAL}x: "
        f"{_yes(t['query_goal'])}; flat in N (latency at most x{GROWTH_LIMIT}): "
        f"{_yes(t['query_flat'], growth('query', 'median_ms', 'latency'))}",
    ]


def _load(values: list[float] | tuple[float, ...]) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def _yes(value: bool | None, figures: str = "") -> str:
    if value is None:
        return "not measured (no N in range)"
    return ("met" if value else "**not met**") + (f" ({figures})" if figures else "")


#: The rows of the summary table: results key (also its target's key in _met), what is measured, its
#: baseline, the limit, and the target on growth in N ("linear" or "flat") if there is one.
SUMMARY_ROWS = (
    ("ingest", "ingest (Python API)", "the same rows written by the raw driver (PyMySQL `executemany`; psycopg2 "
     "`execute_values`) in one transaction, the file read with `csv`, no validation",
     f"<= {INGEST_LIMIT} at {INGEST_AT:,}", None),
    ("command", "`element-session ingest`, end to end", "`python -m benchmarks.ingest_baseline`: that raw write "
     "in a process of its own, start to exit", f"<= {COMMAND_LIMIT} at {COMMAND_AT:,}", None),
    ("table", "`session_table()`", "`SELECT *` of the seven session tables, plain cursor, `fetchall()`",
     f"<= {TABLE_LIMIT} (goal {TABLE_GOAL}) at {TABLE_AT:,}", "linear"),
    ("query", "finder (30 rows)", "the same SQL with parameters, fetched as dicts",
     f"<= {QUERY_LIMIT} (goal {QUERY_GOAL}) at every N", "flat"),
)  # fmt: skip


def server_name(results: dict[str, Any]) -> str:
    """MariaDB, MySQL or PostgreSQL, from the server's version text."""
    if results["backend"] == "postgresql":
        return "PostgreSQL"
    return "MariaDB" if "mariadb" in results["versions"]["server"].lower() else "MySQL"


def summary(runs: list[dict[str, Any]]) -> str:
    """One Markdown table of the ratios of several runs (e.g. one per server): a row per benchmark and
    server, a column per N, the baseline and the target (met or not) beside each (benchmarks/README.md)."""
    sizes = sorted({r["n"] for results in runs for key, *_ in SUMMARY_ROWS for r in results.get(key, [])})
    lines = [
        "| what | server | " + " | ".join(f"N = {n:,}" for n in sizes) + " | baseline | target (issue 14) |",
        "| --- | --- | " + " | ".join("---:" for _ in sizes) + " | --- | --- |",
    ]
    for key, what, baseline, limit, growth in SUMMARY_ROWS:
        for results in runs:
            rows = {r["n"]: r for r in results.get(key, [])}
            if not rows:
                continue
            cells = []
            for n in sizes:
                row = rows.get(n)
                paired = row.get("paired_ratios") if row else None
                spread = f" ({_f(min(paired))}-{_f(max(paired))})" if paired else ""
                cells.append(f"{_f(row['ratio'])}{spread}" if row else "")
            met = _met(results)
            target = f"{limit}: {_yes(met[key])}" + (f"; {growth}: {_yes(met[f'{key}_{growth}'])}" if growth else "")
            lines.append(f"| {what} | {server_name(results)} | {' | '.join(cells)} | {baseline} | {target} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the Markdown of results JSON files again (e.g. after the table layout changed), or with
    ``--summary`` print one table of their ratios (the table of benchmarks/README.md)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=main.__doc__)
    parser.add_argument("json", nargs="+", type=Path, help="results files written by python -m benchmarks.run")
    parser.add_argument("--summary", action="store_true", help="print the summary table of the files instead")
    args = parser.parse_args(argv)
    if args.summary:
        print(summary([json.loads(path.read_text()) for path in args.json]), end="")
        return 0
    for path in args.json:
        md = path.with_suffix(".md")
        md.write_text(markdown(json.loads(path.read_text())))
        print(f"written: {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
