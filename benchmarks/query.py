"""Query benchmark: one subject's sessions in a 30-day window, with their notes, fetched.

The project's way is :func:`element_session.query.find_sessions` joined with ``SessionNote`` and
fetched with ``to_dicts()``; the baseline is the same query written in SQL with parameters,
executed on the raw driver and fetched as dicts. The two run alternately, so that both see the
same state of a noisy machine; the result is the median latency of each.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from types import ModuleType
from typing import Any

from element_session.localdb import ServerInfo

from .ingest import SESSIONS_PER_SUBJECT, TABLES, quote, session_start, subject_count, subject_name, table_names

WINDOW_DAYS = 30
COLUMNS = ("subject", "session_datetime", "session_id", "session_note")


def query_arguments(n: int) -> dict[str, Any]:
    """The subject (the middle one) and the 30-day window in the middle of its sessions."""
    first_day = (SESSIONS_PER_SUBJECT - WINDOW_DAYS) // 2
    since = session_start(first_day).date()
    return {
        "subject": subject_name(subject_count(n) // 2),
        "since": since,
        "until": since + dt.timedelta(days=WINDOW_DAYS),
    }


def project_query(session_module: ModuleType, arguments: dict[str, Any]) -> list[dict]:
    from element_session.query import find_sessions

    # ``until`` as midnight, a time: excluded, as in the baseline's SQL (a date alone would include that day)
    until = dt.datetime.combine(arguments["until"], dt.time())
    sessions = find_sessions(session_module, **{**arguments, "until": until})
    return (sessions * session_module.SessionNote).to_dicts()


def baseline_sql(server: ServerInfo, session_module: ModuleType) -> str:
    names = table_names(session_module)
    key = TABLES["Session"][:2]
    on = " AND ".join(f"n.{quote(server, k)} = s.{quote(server, k)}" for k in key)
    columns = ", ".join(f"s.{quote(server, c)}" for c in COLUMNS[:3]) + f", n.{quote(server, COLUMNS[3])}"
    return (
        f"SELECT {columns} FROM {names['Session']} AS s JOIN {names['SessionNote']} AS n ON {on} "
        f"WHERE s.{quote(server, 'subject')} = %s AND s.{quote(server, 'session_datetime')} >= %s "
        f"AND s.{quote(server, 'session_datetime')} < %s"
    )


def baseline_query(raw: Any, sql: str, arguments: dict[str, Any]) -> list[dict]:
    since = dt.datetime.combine(arguments["since"], dt.time())
    until = dt.datetime.combine(arguments["until"], dt.time())
    with raw.cursor() as cursor:
        cursor.execute(sql, (arguments["subject"], since, until))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def as_set(rows: list[dict]) -> set[tuple]:
    return {tuple(row[c] for c in COLUMNS) for row in rows}


def run(
    server: ServerInfo, raw: Any, session_module: ModuleType, n: int, runs: int, warmup: int = 10
) -> dict[str, Any]:
    """Median latencies (ms) of both ways over ``runs`` alternating runs, after ``warmup`` runs of each.

    ``raw`` is an autocommit connection of the raw driver, as DataJoint's own connection is.
    """
    arguments = query_arguments(n)
    sql = baseline_sql(server, session_module)
    project_rows = project_query(session_module, arguments)
    baseline_rows = baseline_query(raw, sql, arguments)
    for _ in range(warmup):
        project_query(session_module, arguments)
        baseline_query(raw, sql, arguments)
    times: dict[str, list[float]] = {"project": [], "baseline": []}
    ways = {
        "project": lambda: project_query(session_module, arguments),
        "baseline": lambda: baseline_query(raw, sql, arguments),
    }
    for i in range(runs):
        for name in ("project", "baseline") if i % 2 == 0 else ("baseline", "project"):
            start = time.perf_counter()
            ways[name]()
            times[name].append((time.perf_counter() - start) * 1000)
    medians = {name: statistics.median(values) for name, values in times.items()}
    from element_session.query import find_sessions

    return {
        "n": n,
        "subject": arguments["subject"],
        "since": arguments["since"].isoformat(),
        "until": arguments["until"].isoformat(),
        "window_days": WINDOW_DAYS,
        "rows": len(project_rows),
        "identical_rows": as_set(project_rows) == as_set(baseline_rows) and len(project_rows) == len(baseline_rows),
        "runs": runs,
        "project": {"median_ms": medians["project"], "p90_ms": _quantile(times["project"], 0.9)},
        "baseline": {"median_ms": medians["baseline"], "p90_ms": _quantile(times["baseline"], 0.9)},
        "ratio": medians["project"] / medians["baseline"],
        "project_sql": (find_sessions(session_module, **arguments) * session_module.SessionNote).make_sql(),
        "baseline_sql": sql,
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
