"""What the history of every change costs on the write path: ingest of N sessions with its triggers and without.

    python -m benchmarks.history [--sessions 100000] [--repeats 3] [--backend mysql|postgresql] [--out DIR]

On the server and pipeline of :func:`benchmarks.run.benchmark_pipeline`: the generated file of
:mod:`benchmarks.ingest` (9 rows per session in 7 tables, so 9 history rows per session with the
triggers) is ingested R times each way, alternating, every run into emptied tables (``TRUNCATE``,
which fires no trigger; the history table is emptied too). "Off" drops the schema's history triggers
(the table stays); "on" installs them again as activation does (:func:`element_session.history.install`).
The ratio on/off is the history's cost (the issue's goal: at most 1.3x). Beside the wall time, each
run's CPU seconds are recorded: this process's (the client's) and the server's (MySQL/MariaDB: the
server process, from ``@@pid_file``; PostgreSQL: the connection's backend, ``pg_backend_pid()``; both
read from ``/proc``, so the server must run on this machine, as the benchmark's own does). On a shared
machine the CPU ratio moves less than the wall-time ratio. Results go to
``DIR/history-<backend>-<date>-<N>.json`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks import ingest as bench_ingest
from benchmarks.run import benchmark_pipeline, say


def drop_triggers(connection: Any, schema_name: str) -> None:
    """Switch the history of ``schema_name`` off for the benchmark: its triggers dropped, its table kept."""
    q = connection.adapter.quote_identifier
    if connection.adapter.backend == "postgresql":
        connection.query(f"DROP FUNCTION IF EXISTS {q(schema_name)}.element_session_history() CASCADE")
        return
    for (name,) in connection.query(
        "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = %s", args=(schema_name,)
    ).fetchall():
        connection.query(f"DROP TRIGGER {q(schema_name)}.{q(name)}")


def server_pid(connection: Any) -> int:
    """The process id of the server process doing ``connection``'s work (PostgreSQL: its backend)."""
    if connection.adapter.backend == "postgresql":
        return int(connection.query("SELECT pg_backend_pid()").fetchone()[0])
    (pid_file,) = connection.query("SELECT @@pid_file").fetchone()
    return int(Path(pid_file).read_text().split()[0])


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by the process ``pid`` of this machine (from ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by this process and by the process ``pid``."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime, process_cpu_seconds(pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.history", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", choices=["mysql", "postgresql"], default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    from element_session.history import TABLE, install

    backend = args.backend or os.environ.get("DJ_BACKEND", "mysql")
    with benchmark_pipeline(backend, "element-session-bench-history-") as bench:
        session = bench.pipeline.session
        connection = session.schema.connection
        path = bench_ingest.write_sessions_csv(bench.files / "sessions.csv", args.sessions)
        bench_ingest.add_references(bench.pipeline, args.sessions)
        history_table = (
            bench_ingest.quote(bench.server, session.schema.database) + "." + bench_ingest.quote(bench.server, TABLE)
        )
        times: dict[str, list[float]] = {"on": [], "off": []}
        client_cpu: dict[str, list[float]] = {"on": [], "off": []}
        server_cpu: dict[str, list[float]] = {"on": [], "off": []}
        pid = server_pid(connection)
        for repeat in range(args.repeats):
            for mode in ("off", "on") if repeat % 2 else ("on", "off"):
                if mode == "on":
                    install(session.schema)
                else:
                    drop_triggers(connection, session.schema.database)
                bench_ingest.empty_tables(bench.raw, bench.server, bench.names)
                with bench.raw.cursor() as cursor:
                    cursor.execute(f"TRUNCATE TABLE {history_table}")
                bench.raw.commit()
                client_before, server_before = cpu_seconds(pid)
                seconds = bench_ingest.run_project(bench.pipeline, path).seconds
                client_after, server_after = cpu_seconds(pid)
                client_cpu[mode].append(client_after - client_before)
                server_cpu[mode].append(server_after - server_before)
                (count,) = connection.query(f"SELECT COUNT(*) FROM {history_table}").fetchone()
                expected = 9 * args.sessions if mode == "on" else 0
                if count != expected:
                    raise RuntimeError(f"history {mode}: {count} history rows, expected {expected}")
                times[mode].append(seconds)
                say(
                    f"history {mode}: {args.sessions} sessions in {seconds:.2f} s (CPU: client "
                    f"{client_cpu[mode][-1]:.2f} s, server {server_cpu[mode][-1]:.2f} s)"
                )
        result = {
            "backend": backend,
            "sessions": args.sessions,
            "repeats": args.repeats,
            "seconds": times,
            "median_on": statistics.median(times["on"]),
            "median_off": statistics.median(times["off"]),
            "ratio_on_off": statistics.median(times["on"]) / statistics.median(times["off"]),
            "client_cpu_seconds": client_cpu,
            "server_cpu_seconds": server_cpu,
            "median_server_cpu_on": statistics.median(server_cpu["on"]),
            "median_server_cpu_off": statistics.median(server_cpu["off"]),
            "cpu_ratio_on_off": _median_total(client_cpu, server_cpu, "on")
            / _median_total(client_cpu, server_cpu, "off"),
            "load_average_at_end": os.getloadavg(),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"history-{backend}-{dt.date.today().isoformat()}-{args.sessions}.json"
    target.write_text(json.dumps(result, indent=1) + "\n")
    say(
        f"history on/off: {result['ratio_on_off']:.2f}x wall, {result['cpu_ratio_on_off']:.2f}x CPU (client + server; "
        f"median of {args.repeats}); written to {target}"
    )
    return 0


def _median_total(client: dict[str, list[float]], server: dict[str, list[float]], mode: str) -> float:
    """The median over the runs of ``mode`` of client plus server CPU seconds."""
    return statistics.median(c + s for c, s in zip(client[mode], server[mode], strict=True))


if __name__ == "__main__":
    sys.exit(main())
