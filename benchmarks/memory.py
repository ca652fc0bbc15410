"""Memory benchmark: peak resident memory of ingesting one CSV file, in a fresh child process.

The child imports and activates the workflow pipeline, notes its resident set size (``VmRSS``),
ingests the file (the project's way or the raw-SQL baseline), and reports the high-water mark
(``VmHWM``) minus that starting size: the memory the ingestion itself needed at its peak. The
parent empties the session tables before each child.

    python -m benchmarks.memory {project,baseline} FILE   # the child; prints one JSON line
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from element_session.localdb import ServerInfo

from . import child_environment


def _status_kib(field: str) -> int:
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(server: ServerInfo, prefix: str, method: str, path: Path) -> dict[str, Any]:
    """Run the child for ``method`` on ``path`` against ``server``'s schemas under ``prefix``; its report."""
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "benchmarks.memory", method, str(path)],
        env=child_environment(server, prefix),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"memory child ({method}, {path.name}) failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _child(method: str, path: Path) -> dict[str, Any]:
    import importlib
    import logging

    import datajoint as dj

    from element_session.localdb import server_from_environment

    from . import ingest as bench_ingest

    logging.getLogger("datajoint").setLevel(logging.WARNING)
    server = server_from_environment()
    if server is None:
        raise SystemExit("the memory child needs DJ_HOST (set by the parent)")
    pipeline = importlib.import_module("workflow.pipeline")
    raw = bench_ingest.connect_raw(server)
    names = bench_ingest.table_names(pipeline.session)
    dj.conn()
    # reset VmHWM to the current RSS (Linux 4.0+); elsewhere the mark may include the imports' (smaller) peak
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    if method == "project":
        bench_ingest.run_project(pipeline, path)
    elif method == "table":  # the typed table of the sessions stored (the file is not read)
        from element_session.query import session_table

        session_table(pipeline.session)
    else:
        bench_ingest.run_baseline(raw, server, names, path)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    return {
        "method": method,
        "seconds": seconds,
        "rss_before_mib": before / 1024,
        "peak_rss_mib": peak / 1024,
        "peak_increase_mib": (peak - before) / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("project", "baseline", "table"):
        raise SystemExit("usage: python -m benchmarks.memory {project,baseline,table} FILE")
    report = _child(argv[0], Path(argv[1]))
    sys.stdout.flush()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
