"""The command benchmark's baseline as a process of its own: a CSV file of sessions written with the raw driver.

    python -m benchmarks.ingest_baseline --tables JSON FILE

What a hand-written loader that trusts its input does, started from a shell like ``element-session
ingest``: read FILE with the ``csv`` module and write its rows into the session tables in one
transaction (:func:`benchmarks.ingest.baseline_rows` and :func:`benchmarks.ingest.write_baseline`:
PyMySQL ``executemany``, psycopg2 ``execute_values``). ``--tables`` maps the names of
:data:`benchmarks.ingest.TABLES` to their full SQL names. The server and its credentials come from
the environment (``DJ_HOST``, ``DJ_PORT``, ``DJ_USER``, ``DJ_PASS``, ``DJ_BACKEND``), never from the
command line. Prints one JSON line: the seconds spent reading the file and writing the rows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from element_session.localdb import server_from_environment

from .ingest import TABLES, baseline_rows, connect_raw, write_baseline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest_baseline", description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=json.loads, required=True, help="JSON object: table name -> full SQL name")
    parser.add_argument("file", type=Path, help="CSV file of sessions (benchmarks.ingest.write_sessions_csv)")
    args = parser.parse_args(argv)
    if not isinstance(args.tables, dict) or set(args.tables) != set(TABLES):
        parser.error(f"--tables must name exactly these tables: {', '.join(TABLES)}")
    server = server_from_environment()
    if server is None:
        parser.error("DJ_HOST is not set: the server comes from DJ_HOST, DJ_PORT, DJ_USER, DJ_PASS, DJ_BACKEND")
    start = time.perf_counter()
    rows = baseline_rows(args.file)
    read = time.perf_counter()
    raw = connect_raw(server)
    try:
        write_baseline(raw, server, args.tables, rows)
    finally:
        raw.close()
    end = time.perf_counter()
    print(json.dumps({"read_seconds": read - start, "write_seconds": end - read}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
