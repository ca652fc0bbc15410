"""Where the history's cost goes on MySQL/MariaDB: the server's CPU per row written, by trigger design.

    python -m benchmarks.history_triggers [--rows 50000] [--repeats 5] [--out DIR]

On a server of its own (:func:`element_session.localdb.database_server`, MySQL/MariaDB), N rows of a
table shaped as ``Session.Attribute`` (key of subject and start, name, text value, blob) are written
by multi-row ``INSERT`` statements of 2,000 rows in one transaction, once per variant of its ``AFTER
INSERT`` trigger, the variants in turn (reversed every other repeat), every run into emptied tables.
Measured: the CPU seconds of the server process (``/proc``; less moved by a busy machine than wall
time), as microseconds a row more than without a trigger. The variants:

- ``empty``: a trigger that does nothing; ``skip``: one that tests a session variable and skips;
- ``constant``: inserts a constant row into the history table (the cost of one ``INSERT`` in a trigger);
- ``product``: the row :mod:`element_session.history` writes (``JSON_OBJECT`` of every column, a blob
  as its MD5, ``UTC_TIMESTAMP(6)``, ``USER()``, the reason variable);
- ``json_array``: the same values as a ``JSON_ARRAY``; ``one_column``: one column's value, no JSON;
- ``statement``: the ``skip`` trigger, and after each statement one ``INSERT ... SELECT`` of the history
  rows of the statement's rows (by their keys), as a writer that records its own history would.

Results go to ``DIR/history-triggers-mysql-<date>.json`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks import ingest as bench_ingest
from benchmarks.history import process_cpu_seconds
from benchmarks.run import say
from element_session.history import _DDL

BATCH = 2_000
COLUMNS = "(changed_at, account, action, table_name, old_values, new_values, reason)"
VALUES = (
    "JSON_OBJECT('subject', {r}.subject, 'session_datetime', {r}.session_datetime, 'attribute_name', "
    "{r}.attribute_name, 'attribute_value', {r}.attribute_value, 'attribute_blob', MD5({r}.attribute_blob))"
)
ROW = "UTC_TIMESTAMP(6), USER(), 'insert', 'attribute', NULL, {json}, @element_session_reason"
PRODUCT = f"INSERT INTO h {COLUMNS} VALUES ({ROW.format(json=VALUES.format(r='NEW'))})"
SKIP = f"BEGIN IF @element_session_skip IS NULL THEN {PRODUCT}; END IF; END"
VARIANTS: dict[str, str | None] = {
    "none": None,
    "empty": "BEGIN END",
    "skip": SKIP,
    "constant": f"INSERT INTO h {COLUMNS} VALUES ('2020-01-01', 'u', 'insert', 'attribute', NULL, 'x', NULL)",
    "product": PRODUCT,
    "json_array": PRODUCT.replace(
        VALUES.format(r="NEW"),
        "JSON_ARRAY(NEW.subject, NEW.session_datetime, NEW.attribute_name, NEW.attribute_value, "
        "MD5(NEW.attribute_blob))",
    ),
    "one_column": PRODUCT.replace(VALUES.format(r="NEW"), "NEW.attribute_value"),
    "statement": SKIP,
}
TABLE = (
    "CREATE TABLE t (subject VARCHAR(16) NOT NULL, session_datetime DATETIME NOT NULL, "
    "attribute_name VARCHAR(32) NOT NULL, attribute_value VARCHAR(2000) NOT NULL DEFAULT '', "
    "attribute_blob LONGBLOB NULL, PRIMARY KEY (subject, session_datetime, attribute_name)) "
    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
)


def rows(n: int) -> list[tuple[str, dt.datetime, str, str, None]]:
    """``n`` attribute rows: 3 a session, 100 sessions a subject."""
    first = dt.datetime(2023, 1, 2, 9)
    return [
        (f"s{i // 300:05d}", first + dt.timedelta(days=i // 3), f"attr{i % 3}", f"value {i}", None) for i in range(n)
    ]


def run_once(cursor: Any, connection: Any, pid: int, variant: str, data: list[tuple[Any, ...]]) -> float:
    """Server CPU seconds of writing ``data`` with trigger ``variant``."""
    body = VARIANTS[variant]
    cursor.execute("DROP TRIGGER IF EXISTS tr")
    if body:
        cursor.execute(f"CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW {body}")
    cursor.execute("TRUNCATE t")
    cursor.execute("TRUNCATE h")
    cursor.execute("SET @element_session_skip = 1")
    before = process_cpu_seconds(pid)
    for start in range(0, len(data), BATCH):
        batch = data[start : start + BATCH]
        cursor.executemany("INSERT INTO t VALUES (%s, %s, %s, %s, %s)", batch)
        if variant == "statement":
            keys = ", ".join(connection.escape(r[:3]) for r in batch)
            cursor.execute(
                f"INSERT INTO h {COLUMNS} SELECT {ROW.format(json=VALUES.format(r='t'))} FROM t "
                f"WHERE (subject, session_datetime, attribute_name) IN ({keys})"
            )
    connection.commit()
    seconds = process_cpu_seconds(pid) - before
    cursor.execute("SELECT COUNT(*) FROM h")
    (count,) = cursor.fetchone()
    expected = 0 if variant in ("none", "empty", "skip") else len(data)
    if count != expected:
        raise RuntimeError(f"{variant}: {count} history rows, expected {expected}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.history_triggers", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    from element_session.localdb import database_server

    data = rows(args.rows)
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with database_server("mysql", tag="element-session-bench-triggers-") as server:
        connection = bench_ingest.connect_raw(server)
        try:
            with connection.cursor() as cursor:
                cursor.execute("CREATE DATABASE IF NOT EXISTS history_triggers")
                cursor.execute("USE history_triggers")
                cursor.execute("DROP TABLE IF EXISTS t, h")
                cursor.execute(TABLE)
                cursor.execute(_DDL["mysql"].format(table="h"))
                cursor.execute("SELECT @@pid_file, VERSION()")
                pid_file, version = cursor.fetchone()
                pid = int(Path(pid_file).read_text().split()[0])
                for repeat in range(args.repeats):
                    names = list(VARIANTS) if repeat % 2 == 0 else list(reversed(VARIANTS))
                    for name in names:
                        seconds[name].append(run_once(cursor, connection, pid, name, data))
                cursor.execute("DROP DATABASE history_triggers")
        finally:
            connection.close()
    base = statistics.median(seconds["none"])
    extra = {name: (statistics.median(s) - base) / args.rows * 1e6 for name, s in seconds.items()}
    for name, us in extra.items():
        say(f"{name:11s} server CPU {statistics.median(seconds[name]):.2f} s, {us:+.1f} us a row")
    result = {
        "server": version,
        "rows": args.rows,
        "repeats": args.repeats,
        "server_cpu_seconds": seconds,
        "us_per_row_more_than_none": extra,
        "us_per_row_none": base / args.rows * 1e6,
        "load_average_at_end": os.getloadavg(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"history-triggers-mysql-{dt.date.today().isoformat()}.json"
    target.write_text(json.dumps(result, indent=1) + "\n")
    say(f"written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
