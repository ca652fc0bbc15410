"""Moving sessions to another prefix of the same server: export + import, against ``mysqldump | mysql``.

    python -m benchmarks.transfer [--sessions 100000] [--out benchmarks/results]

MariaDB/MySQL only (the baseline is mysqldump). On one private server (or ``DJ_HOST``'s), in one
run: N sessions written (untimed) under the benchmark's prefix, as ``benchmarks.ingest`` makes
them (3 attributes, experimenter, project, directory, note, zone each). Then:

- **project**: ``export_sessions`` of every session (in this process) to a bundle, then
  ``element-session import BUNDLE`` as a process of its own under another prefix (start-up,
  activation, checks, one transaction, exit);
- **baseline**: ``mysqldump --no-create-info`` of the same ten tables (the seven session tables
  and the three reference tables) of each schema piped into ``mysql`` under a third prefix.

The target schemas are created before either is timed. Both targets are checked to hold the source's
row counts. Reported: seconds of each step, the ratio project / baseline, bundle and dump sizes.
The password reaches mysqldump and mysql through ``MYSQL_PWD``, never their command lines.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import ingest as bench_ingest
from .run import benchmark_pipeline, say

RESULTS = Path(__file__).parent / "results"


def child_env(bench: Any, prefix: str) -> dict[str, str]:
    root = str(Path(__file__).parent.parent)
    env = {**os.environ, **bench.server.environment(), "DATABASE_PREFIX": prefix, "DJ_IGNORE_CONFIG_FILE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def create_schemas(bench: Any, prefix: str) -> None:
    subprocess.run([sys.executable, "-c", "import workflow.pipeline"], env=child_env(bench, prefix), check=True)


def session_tables(bench: Any) -> dict[str, list[str]]:
    """The bundle's tables (without --downstream), by schema name: the source's."""
    from element_session.transfer.export import select_rows

    pipeline = bench.pipeline
    found: dict[str, list[str]] = {}
    for chosen in select_rows(pipeline.session, pipeline, pipeline.session.Session(), downstream=False):
        found.setdefault(chosen.table.database, []).append(chosen.table.table_name)
    return found


def _counts(bench: Any, tables: dict[str, list[str]], prefix: str) -> dict[str, int]:
    counts = {}
    with bench.raw_query.cursor() as cursor:
        for database, names in tables.items():
            target = prefix + database[len(bench.prefix) :]
            for name in names:
                cursor.execute(f"SELECT COUNT(*) FROM `{target}`.`{name}`")
                counts[f"{database[len(bench.prefix) :]}.{name}"] = cursor.fetchone()[0]
    return counts


def dump_and_load(bench: Any, tables: dict[str, list[str]], prefix: str) -> int:
    """mysqldump of each schema's tables piped into mysql under ``prefix``; the bytes of the dumps."""
    server = bench.server
    env = {**os.environ, "MYSQL_PWD": server.password}
    connect = ["--protocol=TCP", "-h", server.host, "-P", str(server.port), "-u", server.user]
    size = 0
    for database, names in tables.items():
        target = prefix + database[len(bench.prefix) :]
        dump = subprocess.Popen(
            ["mysqldump", *connect, "--no-create-info", "--skip-triggers", "--single-transaction", database, *names],
            stdout=subprocess.PIPE,
            env=env,
        )
        load = subprocess.Popen(["mysql", *connect, target], stdin=subprocess.PIPE, env=env)
        assert dump.stdout is not None and load.stdin is not None
        while chunk := dump.stdout.read(1 << 20):
            size += len(chunk)
            load.stdin.write(chunk)
        load.stdin.close()
        if dump.wait() or load.wait():
            raise RuntimeError(f"mysqldump | mysql of {database} failed")
    return size


@contextlib.contextmanager
def sessions_written(n: int, files_prefix: str) -> Iterator[Any]:
    """The benchmark's private server (MariaDB/MySQL) and pipeline, with ``n`` sessions written (untimed)."""
    with benchmark_pipeline("mysql", files_prefix) as bench:
        if bench.server.backend != "mysql":
            raise SystemExit("the transfer benchmarks compare with mysqldump: run them on MariaDB/MySQL")
        path = bench_ingest.write_sessions_csv(bench.files / "sessions.csv", n)
        bench_ingest.add_references(bench.pipeline, n)
        bench_ingest.run_baseline(bench.raw, bench.server, bench.names, path)
        yield bench


def run(n: int) -> dict[str, Any]:
    """The benchmark at ``n`` sessions; its results."""
    from element_session.transfer import export_sessions

    with sessions_written(n, "element-session-bench-transfer-") as bench:
        tables = session_tables(bench)
        source = _counts(bench, tables, bench.prefix)
        project_prefix, dump_prefix = f"{bench.prefix}p_", f"{bench.prefix}d_"
        create_schemas(bench, project_prefix)
        create_schemas(bench, dump_prefix)
        say(f"{n} sessions, {sum(source.values())} rows in {len(source)} tables")

        bundle = bench.files / "sessions.zip"
        start = time.perf_counter()
        export_sessions(bundle, bench.pipeline.session)
        exported = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "element_session", "import", str(bundle), "--no-progress"],
            env=child_env(bench, project_prefix),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        imported = time.perf_counter()
        dump_bytes = dump_and_load(bench, tables, dump_prefix)
        dumped = time.perf_counter()

        if _counts(bench, tables, project_prefix) != source or _counts(bench, tables, dump_prefix) != source:
            raise RuntimeError("a target does not hold the source's rows")
        project, baseline = imported - start, dumped - imported
        return {
            "backend": bench.server.backend,
            "date": dt.date.today().isoformat(),
            "sessions": n,
            "rows": sum(source.values()),
            "export_seconds": round(exported - start, 3),
            "import_seconds": round(imported - exported, 3),
            "project_seconds": round(project, 3),
            "baseline_seconds": round(baseline, 3),
            "ratio": round(project / baseline, 2),
            "bundle_bytes": bundle.stat().st_size,
            "dump_bytes": dump_bytes,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transfer", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000, help="number of sessions (default 100000)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where transfer-<backend>-<date>.json goes")
    args = parser.parse_args(argv)
    results = run(args.sessions)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"transfer-{results['backend']}-{results['date']}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    say(json.dumps(results))
    say(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
