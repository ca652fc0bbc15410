"""Web benchmark: the first page of ``/api/sessions`` and of ``/`` over N sessions, against the finder.

    python -m benchmarks.web [--sessions 100000] [--requests 10] [--backend mysql|postgresql] [--out FILE]

Not a timed test. Uses ``DJ_HOST``'s server or a private one (as ``benchmarks.run`` does), ingests N
sessions (the ingest benchmark's data set) under a prefix of its own, dropped at the end, and then
times, alternating, ``--requests`` times each in this one process:

- ``api``: ``GET /api/sessions`` (first page, 100 sessions, no filter) through the ASGI application
  (Starlette's TestClient: the server's own time, no network), logged in with HTTP Basic;
- ``page``: ``GET /`` (first page, 50 sessions, newest first) with a browser login;
- ``finder``: what every first page needs at least: ``find_sessions`` and the keys of all N sessions
  fetched, then ``session_table`` of 100 of them, on the server account's own connection.

Reports the median seconds of each and the peak of Python's allocations during one request
(tracemalloc), as JSON on standard output (and in ``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any


def _median_seconds(run: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_mib(run: Any) -> float:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@contextlib.contextmanager
def served(backend: str, sessions: int) -> Iterator[tuple[Any, ModuleType, Any]]:
    """A database server (``DJ_HOST``'s or a private one), the workflow pipeline under a prefix of its own
    holding ``sessions`` sessions (the ingest benchmark's data set), and a Starlette TestClient of the web
    application logged in with the server's account; the prefix's schemas are dropped at the end."""
    from starlette.testclient import TestClient

    from element_session.localdb import database_server, drop_schemas
    from element_session.web import create_app

    from . import ingest as bench_ingest

    with contextlib.ExitStack() as stack:
        server = stack.enter_context(database_server(backend, tag="element-session-bench-db-"))
        server.configure_datajoint()
        prefix = f"bench_{secrets.token_hex(4)}_"
        os.environ["DATABASE_PREFIX"] = prefix  # the pipeline module reads it at import
        pipeline = importlib.import_module("workflow.pipeline")
        stack.callback(drop_schemas, prefix)
        files = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="element-session-bench-web-")))
        bench_ingest.add_references(pipeline, sessions)
        path = bench_ingest.write_sessions_csv(files / "sessions.csv", sessions)
        ingested = bench_ingest.run_project(pipeline, path).seconds
        print(f"ingested {sessions:,} sessions in {ingested:.1f} s", file=sys.stderr)

        client = stack.enter_context(TestClient(create_app(pipeline, secrets.token_bytes(32))))
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert token, "the login form has no CSRF token"
        login = {"username": server.user, "password": server.password, "csrf_token": token[1]}
        assert client.post("/login", data=login, follow_redirects=False).status_code == 303
        yield server, pipeline, client


def arguments(module: str, doc: str, argv: list[str] | None, sessions: int, requests: int) -> argparse.Namespace:
    """The options of a web benchmark ``python -m benchmarks.<module>``: ``--sessions``, ``--requests``
    (defaults given), ``--backend``, ``--out``."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{module}", description=doc.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=sessions)
    parser.add_argument("--requests", type=int, default=requests)
    parser.add_argument("--backend", choices=["mysql", "postgresql"], default=os.environ.get("DJ_BACKEND", "mysql"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.requests < 1:
        parser.error("--sessions and --requests must be at least 1")
    return args


def print_results(result: dict[str, Any], out: Path | None) -> None:
    """Print a benchmark's results as JSON, and write them to ``out`` where given."""
    text = json.dumps(result, indent=1)
    print(text)
    if out:
        out.write_text(text + "\n")


def main(argv: list[str] | None = None) -> int:
    args = arguments("web", __doc__ or "", argv, 100_000, 10)

    from element_session.query import find_sessions, session_table

    with served(args.backend, args.sessions) as (server, pipeline, client):
        auth = (server.user, server.password)

        def api() -> None:
            answer = client.get("/api/sessions", auth=auth)
            assert answer.status_code == 200 and answer.json()["total"] == args.sessions, answer.text[:200]

        def page() -> None:
            answer = client.get("/")
            assert answer.status_code == 200 and f">{args.sessions}<" in answer.text

        def finder() -> None:
            found = find_sessions(pipeline.session)
            keys = found.proj().to_dicts()
            session_table(found & keys[:100], pipeline.session)

        runs = {"api": api, "page": page, "finder": finder}
        for run in runs.values():
            run()  # warm: connections, virtual modules, templates
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.requests):
            for name, run in runs.items():
                times[name].append(_median_seconds(run, 1))
        result = {
            "backend": server.backend,
            "sessions": args.sessions,
            "requests": args.requests,
            "median_seconds": {name: statistics.median(t) for name, t in times.items()},
            "peak_python_mib": {name: _peak_mib(run) for name, run in runs.items()},
        }
    print_results(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
