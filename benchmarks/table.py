"""Table benchmark: the typed table of every session against fetching every row of its seven tables.

The project's way is :func:`element_session.query.session_table` of the whole session module: one
aggregating query, decoded into typed pandas columns. The baseline is the least a client can do to
have the same information: ``SELECT *`` of each of the seven tables (``Session``, its
``Attribute`` part, ``SessionExperimenter``, ``ProjectSession``, ``SessionDirectory``,
``SessionNote``, ``SessionTimezone``) on the raw driver's plain (tuple) cursor, ``fetchall()``, no
DataFrame. The two run alternately; the result is the median of each, the ratio of the medians,
the seconds per session (flat in N means linear) and the bytes per session of the DataFrame.
"""

from __future__ import annotations

import statistics
import time
from types import ModuleType
from typing import Any

from .ingest import table_names


def baseline_fetch(raw: Any, names: dict[str, str]) -> int:
    """Fetch every row of the seven tables with a plain cursor; the number of rows."""
    rows = 0
    with raw.cursor() as cursor:
        for full in names.values():
            cursor.execute(f"SELECT * FROM {full}")
            rows += len(cursor.fetchall())
    return rows


def project_table(session_module: ModuleType) -> Any:
    from element_session.query import session_table

    return session_table(session_module)


def run(raw: Any, session_module: ModuleType, n: int, runs: int) -> dict[str, Any]:
    """Median seconds of both ways over ``runs`` alternating runs (after one warm-up run of each).

    ``raw`` is an autocommit connection of the raw driver.
    """
    names = table_names(session_module)
    frame = project_table(session_module)
    rows = baseline_fetch(raw, names)
    times: dict[str, list[float]] = {"project": [], "baseline": []}
    ways = {"project": lambda: project_table(session_module), "baseline": lambda: baseline_fetch(raw, names)}
    for i in range(runs):
        for name in ("project", "baseline") if i % 2 == 0 else ("baseline", "project"):
            start = time.perf_counter()
            ways[name]()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "n": n,
        "sessions": len(frame),
        "baseline_rows": rows,
        "runs": runs,
        "project": {"seconds": times["project"], "median_seconds": medians["project"]},
        "baseline": {"seconds": times["baseline"], "median_seconds": medians["baseline"]},
        "ratio": medians["project"] / medians["baseline"],
        "project_us_per_session": medians["project"] / n * 1e6,
        "baseline_us_per_session": medians["baseline"] / n * 1e6,
        "frame_bytes_per_session": int(frame.memory_usage(deep=True).sum()) / n,
        "dtypes": {column: str(dtype) for column, dtype in frame.dtypes.items()},
    }
