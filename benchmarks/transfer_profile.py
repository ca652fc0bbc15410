"""Where an import's server seconds go: the same bundle imported under fresh prefixes with one thing changed.

    python -m benchmarks.transfer_profile [--sessions 30000] [--variants plain,no_fk,...] [--out FILE]

MariaDB/MySQL only. N sessions are written (untimed) as ``benchmarks.transfer`` writes them and
exported once to a bundle. Then each variant, one after another, in one run on one server: the
workflow's schemas created under a prefix of its own (untimed), then ``import_sessions`` of the
bundle in a child process (its own connection), timed inside the child around the call and around
its parts (the comparison with stored rows, the INSERT statements); then those schemas are dropped,
so that each variant finds the server's memory as the first did. Variants:

- ``plain``: the import as it is;
- ``no_fk``: the child's session sets ``foreign_key_checks = 0`` before the import;
- ``no_unique``: ``unique_checks = 0``;
- ``no_fk_unique``: both (what a mysqldump file sets at its top);
- ``no_triggers``: the target session schema's history triggers dropped before the import (by the
  child, after its activation: activating installs them);
- ``dump_like``: all three (the server does what it does for a dump's load);
- ``autocommit``: no transaction around the import (each INSERT commits; not what the import may do);
- ``small_inserts`` / ``large_inserts``: INSERTs of about 0.2 MB / 8 MB of values instead of 2 MB;
- ``serial_inserts``: each INSERT's values escaped as it is sent (no statement prepared ahead on a
  second thread: the import before 2026-12-07);
- ``server_checks``: the rows inserted with the server's foreign-key checks on, without the import's own
  check of the references (what the import did before it switched them off on MySQL/MariaDB);
- ``baseline``: ``mysqldump --no-create-info | mysql`` of the same tables (triggers on);
- ``baseline_no_triggers``: the same into a target without its history triggers.

Each child reports seconds: ``total`` (the call), ``compare`` (reading stored rows, comparing),
``insert`` (sending the INSERTs and the server's work on them), ``client_cpu`` (its CPU during the
call; the baseline's: mysqldump's and mysql's); and ``server_cpu``: the server process's CPU seconds
during the variant (from ``/proc``, as ``benchmarks.history``), far steadier than wall time on a
shared machine. Medians where ``--repeats`` > 1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from element_session.localdb import drop_schemas

from . import transfer as bench_transfer
from .history import drop_triggers, process_cpu_seconds, server_pid
from .run import say

VARIANTS = (
    "plain", "no_fk", "no_unique", "no_fk_unique", "no_triggers", "dump_like", "autocommit", "small_inserts",
    "large_inserts", "server_checks", "serial_inserts", "baseline", "baseline_no_triggers",
)  # fmt: skip

_SETTINGS = {
    "no_fk": ["SET SESSION foreign_key_checks = 0"],
    "no_unique": ["SET SESSION unique_checks = 0"],
    "no_fk_unique": ["SET SESSION foreign_key_checks = 0", "SET SESSION unique_checks = 0"],
    "dump_like": ["SET SESSION foreign_key_checks = 0", "SET SESSION unique_checks = 0"],
}
#: Module constants of the import changed in the child, and ``autocommit``: no transaction around the import.
_PATCHES: dict[str, dict[str, Any]] = {
    "autocommit": {"autocommit": True},
    "small_inserts": {"BYTES_PER_INSERT": 200_000},
    "large_inserts": {"BYTES_PER_INSERT": 8_000_000, "ROWS_PER_INSERT": 100_000},
    "server_checks": {"server_checks": True},
    "serial_inserts": {"serial_inserts": True},
}

_CHILD = """
import json, sys, time
from element_session.transfer import importing
spent = {"compare": 0.0, "insert": 0.0}
def timed(name, fn):
    def run(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - start
    return run
importing._new_rows = timed("compare", importing._new_rows)
importing._insert = timed("insert", importing._insert)
patches = json.loads(sys.argv[3])
if patches.pop("autocommit", False):
    import contextlib, datajoint
    datajoint.Connection.transaction = property(lambda self: contextlib.nullcontext())
without_triggers = patches.pop("drop_triggers", None)
if patches.pop("serial_inserts", False):  # each statement escaped by the driver as it is sent, nothing ahead
    def insert(target, names, rows, per_insert, bar):
        connection = target.connection
        one = "(" + ", ".join(["%s"] * len(names)) + ")"
        columns = ", ".join(connection.adapter.quote_identifier(n) for n in names)
        for start in range(0, len(rows), per_insert):
            chunk = rows[start : start + per_insert]
            sql = f"INSERT INTO {target.full_table_name} ({columns}) VALUES " + ", ".join([one] * len(chunk))
            connection.query(sql, args=[value for row in chunk for value in row])
    importing._insert = insert
if patches.pop("server_checks", False):  # every table's rows inserted with the server's foreign-key checks on
    def write(connection, plan, bar):
        for step in plan:
            importing._insert(step.target, step.names, step.rows, step.per_insert, bar)
    importing._write = write
for name, value in patches.items():
    setattr(importing, name, value)
import workflow.pipeline as pipeline
connection = pipeline.session.Session.connection
if without_triggers:
    from benchmarks.history import drop_triggers
    drop_triggers(connection, without_triggers)
for statement in json.loads(sys.argv[2]):
    connection.query(statement)
start, cpu = time.perf_counter(), time.process_time()
importing.import_sessions(sys.argv[1], pipeline)
spent["total"], spent["client_cpu"] = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps(spent))
"""


def _variant(bench: Any, name: str, bundle: Path, tables: dict[str, list[str]], number: int) -> dict[str, float]:
    """One variant's seconds: wall (``total``, and parts), the server's CPU, the client's CPU."""
    prefix = f"{bench.prefix}v{number}_"
    bench_transfer.create_schemas(bench, prefix)
    connection = bench.pipeline.session.Session.connection
    patches = dict(_PATCHES.get(name, {}))
    if name in ("no_triggers", "dump_like", "baseline_no_triggers"):
        # dropped here for the baseline; for an import, by the child after its activation (which installs them)
        drop_triggers(connection, prefix + "session")
        patches["drop_triggers"] = prefix + "session"
    pid = server_pid(connection)
    server_cpu = process_cpu_seconds(pid)
    if name.startswith("baseline"):
        start, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        bench_transfer.dump_and_load(bench, tables, prefix)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "total": round(time.perf_counter() - start, 3),
            "server_cpu": round(process_cpu_seconds(pid) - server_cpu, 3),
            "client_cpu": round(after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime, 3),
        }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(bundle), json.dumps(_SETTINGS.get(name, [])), json.dumps(patches)],
        env=bench_transfer.child_env(bench, prefix),
        check=True,
        capture_output=True,
        text=True,
    )
    spent = json.loads(done.stdout.strip().splitlines()[-1])
    spent["server_cpu"] = process_cpu_seconds(pid) - server_cpu
    return {k: round(v, 3) for k, v in spent.items()}


def run(n: int, variants: list[str], repeats: int) -> dict[str, Any]:
    """Every variant ``repeats`` times (interleaved) at ``n`` sessions; the seconds of each run and their medians."""
    from element_session.transfer import export_sessions

    with bench_transfer.sessions_written(n, "element-session-bench-transfer-profile-") as bench:
        tables = bench_transfer.session_tables(bench)
        bundle = bench.files / "sessions.zip"
        export_sessions(bundle, bench.pipeline.session)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        number = 0
        for _ in range(repeats):
            for name in variants:
                number += 1
                load = os.getloadavg()[0]
                result = _variant(bench, name, bundle, tables, number)
                drop_schemas(f"{bench.prefix}v{number}_")  # the next variant's rows not crowded out of memory
                runs[name].append({**result, "load_1min": load})
                say(f"{name}: {result}")
        medians = {
            name: {k: round(statistics.median(r[k] for r in found), 3) for k in found[0] if k != "load_1min"}
            for name, found in runs.items()
        }
        return {"sessions": n, "date": time.strftime("%Y-%m-%d"), "runs": runs, "medians": medians}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transfer_profile", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=30_000, help="number of sessions (default 30000)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=1, help="runs of each variant, interleaved (default 1)")
    parser.add_argument("--out", type=Path, help="a JSON file for the results")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    results = run(args.sessions, variants, args.repeats)
    say(json.dumps(results["medians"], indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
