"""Search benchmark: the first page of ``/`` with a free-text ``search=``, against the same page unfiltered.

    python -m benchmarks.search [--sessions 20000] [--requests 5] [--backend mysql|postgresql] [--out FILE]

Not a timed test. Uses ``DJ_HOST``'s server or a private one (as ``benchmarks.web`` does), ingests N
sessions (the ingest benchmark's data set) under a prefix of its own, dropped at the end, and times,
alternating, ``--requests`` times each, through the ASGI application with a browser login:

- ``page``: ``GET /`` (50 sessions, newest first), the baseline of this run;
- ``search_none``: ``GET /?search=no-such-text`` (no session matches: every searched table is read);
- ``search_many``: ``GET /?search=a`` (most sessions match: counted, and one page read).

Reports the median seconds of each and its ratio to ``page``, as JSON on standard output (and in
``--out``). A substring (``LIKE '%text%'``) reads every row of the tables it searches: no index
helps it, so its cost grows with N.
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
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--backend", choices=["mysql", "postgresql"], default=os.environ.get("DJ_BACKEND", "mysql"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.requests < 1:
        parser.error("--sessions and --requests must be at least 1")

    from starlette.testclient import TestClient

    from element_session.localdb import database_server, drop_schemas
    from element_session.web import create_app

    from . import ingest as bench_ingest

    with contextlib.ExitStack() as stack:
        server = stack.enter_context(database_server(args.backend, tag="element-session-bench-db-"))
        server.configure_datajoint()
        prefix = f"bench_{secrets.token_hex(4)}_"
        os.environ["DATABASE_PREFIX"] = prefix  # the pipeline module reads it at import
        pipeline = importlib.import_module("workflow.pipeline")
        stack.callback(drop_schemas, prefix)
        files = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="element-session-bench-search-")))
        bench_ingest.add_references(pipeline, args.sessions)
        bench_ingest.run_project(pipeline, bench_ingest.write_sessions_csv(files / "sessions.csv", args.sessions))

        client = stack.enter_context(TestClient(create_app(pipeline, secrets.token_bytes(32))))
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[1]
        login = {"username": server.user, "password": server.password, "csrf_token": token}
        assert client.post("/login", data=login, follow_redirects=False).status_code == 303
        urls = {"page": "/", "search_none": "/?search=no-such-text", "search_many": "/?search=a"}
        for url in urls.values():  # warm: connections, virtual modules, templates
            assert client.get(url).status_code == 200
        times: dict[str, list[float]] = {name: [] for name in urls}
        for _ in range(args.requests):
            for name, url in urls.items():
                start = time.perf_counter()
                answer = client.get(url)
                times[name].append(time.perf_counter() - start)
                assert answer.status_code == 200, answer.text[:200]
        medians = {name: statistics.median(t) for name, t in times.items()}
        result = {
            "backend": server.backend,
            "sessions": args.sessions,
            "requests": args.requests,
            "median_seconds": medians,
            "ratio_to_page": {name: seconds / medians["page"] for name, seconds in medians.items()},
        }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
