"""Web load benchmark: each page and API call under 8 concurrent clients, at N sessions, against a real server.

    python -m benchmarks.web_load [--sessions 10000,1000000] [--clients 8] [--seconds 30] [--workers 2]
                                  [--backend mysql|postgresql] [--out FILE] [--serial]

Not a timed test. For each N (smallest first) it ingests N sessions (the ingest benchmark's data
set: 100 per subject, one a day) under a prefix of its own into ``DJ_HOST``'s server or a private
one (as ``benchmarks.run`` does), starts ``element-session serve --workers W`` in a child process on
127.0.0.1 (credentials in its environment only), logs in, and then, one URL after the other, keeps
``--clients`` httpx clients (threads, each with its own connection) sending that URL for
``--seconds`` seconds. Reported per URL: requests, requests per second, p50/p95/p99 latency (ms) and
the number of answers that were not 200 (any makes the run fail). Requests go to 127.0.0.1 only and
stop by themselves. The schemas are dropped at the end.

The URLs: the baseline ``/login`` (a page that reads nothing from the database: what the server, the
machine and the load cost alone; each URL's ``p50_ratio`` is its median over this one's, in the same
run), ``/`` (50 newest sessions of all), ``/`` filtered by one subject, ``/`` filtered by a one-week
window, one session's page, one subject's page, ``/api/sessions?limit=100`` at offset 0, at
offset N/2 and after a cursor near N/2 (the ``next`` of the API's answers), and the jobs page.

``--serial`` first times the service's work for each URL (no HTTP, one request at a time, in this
process, as the server's account): the median of 5 calls after one warm-up, in ``serial_ms``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import child_environment
from .web import print_results

CLIENTS = 8


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _percentile(ordered: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of sorted values (nearest rank)."""
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _login(httpx: Any, base: str, user: str, password: str) -> dict[str, str]:
    """The cookies of a browser login as ``user``."""
    with httpx.Client(base_url=base) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[1]
        answer = client.post("/login", data={"username": user, "password": password, "csrf_token": token})
        if answer.status_code != 303:
            raise RuntimeError(f"login refused: {answer.status_code} {answer.text[:200]}")
        return dict(client.cookies)


def load(httpx: Any, base: str, path: str, clients: int, seconds: float, **client_options: Any) -> dict[str, Any]:
    """``clients`` threads sending ``GET path`` for ``seconds``; the latencies' summary."""
    latencies: list[float] = []
    failures: list[int] = []
    lock = threading.Lock()
    start_line = threading.Barrier(clients)
    deadline = [0.0]

    def client() -> None:
        mine, bad = [], []
        with httpx.Client(base_url=base, timeout=120, **client_options) as session:
            session.get(path)  # warm: a connection, the worker's account connection
            start_line.wait()
            if not deadline[0]:
                deadline[0] = time.monotonic() + seconds
            while time.monotonic() < deadline[0]:
                began = time.perf_counter()
                answer = session.get(path)
                mine.append(time.perf_counter() - began)
                if answer.status_code != 200:
                    bad.append(answer.status_code)
        with lock:
            latencies.extend(mine)
            failures.extend(bad)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "requests_per_second": len(ordered) / max(elapsed, 1e-9),
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * _percentile(ordered, 0.95),
        "p99_ms": 1000 * _percentile(ordered, 0.99),
        "failed": len(failures),
        "statuses": sorted(set(failures)),
    }


def _urls(n: int) -> dict[str, str]:
    from urllib.parse import quote

    from . import ingest as bench_ingest

    subject = bench_ingest.subject_name(bench_ingest.subject_count(n) // 2)
    start = bench_ingest.session_start(10)
    week = f"since={start:%Y-%m-%d}&until={start.replace(day=min(start.day + 6, 28)):%Y-%m-%d}"
    session = f"subject={subject}&session_datetime={start:%Y-%m-%dT%H:%M:%S}Z"
    after = quote(json.dumps([subject, f"{start:%Y-%m-%dT%H:%M:%S}Z"]))  # a cursor in the middle of the key order
    return {
        "baseline: /login": "/login",
        "/": "/",
        "/ by subject": f"/?subject={subject}",
        "/ by a week": f"/?{week}",
        "session page": f"/session?{session}",
        "subject page": f"/subject?subject={subject}",
        "api offset 0": "/api/sessions?limit=100",
        "api offset N/2": f"/api/sessions?limit=100&offset={n // 2}",
        "api after a cursor": f"/api/sessions?limit=100&after={after}",
        "jobs page": "/jobs",
    }


def settle(server: Any, prefix: str) -> None:
    """PostgreSQL: ``VACUUM ANALYZE`` the schemas' tables after the bulk load, as autovacuum would later.

    A table just filled by ``COPY`` has no visibility map (an index-only scan then reads the heap
    too) and no statistics; autovacuum would fix both within minutes, the benchmark does it at once.
    MySQL/MariaDB: nothing (InnoDB keeps its statistics itself).
    """
    if server.backend != "postgresql":
        return
    from . import ingest as bench_ingest

    raw = bench_ingest.connect_raw(server, autocommit=True)
    try:
        with raw.cursor() as cursor:
            cursor.execute(
                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables "
                "WHERE table_schema LIKE %s AND table_type = 'BASE TABLE'",
                (prefix.replace("_", "\\_") + "%",),
            )
            for (table,) in cursor.fetchall():
                cursor.execute(f"VACUUM ANALYZE {table}")
    finally:
        raw.close()


def serial(pipeline: Any, server: Any, n: int, repeats: int = 5) -> dict[str, float]:
    """The service's work for each URL but the baseline, one call at a time in this process: median ms."""
    from urllib.parse import parse_qsl, urlsplit

    from element_session.errors import InputError
    from element_session.web import service
    from element_session.web.accounts import Accounts, Credentials

    def work(user: Any, url: str) -> Any:
        path, query = urlsplit(url).path, parse_qsl(urlsplit(url).query)
        if path == "/":
            return service.session_page(user, service.parse_selection(query, 50), newest_first=True)
        if path == "/session":
            return service.session_detail(user, service.parse_session_key(user, dict(query)))
        if path == "/subject":
            return service.subject_sessions(user, dict(query))
        if path == "/jobs":
            return service.jobs_view(user, None)
        found = service.session_page(user, service.parse_selection(query, 100))
        return service.session_records(user, found.rows, found.keys)

    accounts = Accounts(pipeline, pipeline.session.Session.connection, b"bench")
    timed: dict[str, float] = {}
    try:
        with accounts.use(Credentials(server.user, server.password)) as user:
            for name, url in _urls(n).items():
                if url == "/login":
                    continue
                spent = []
                try:
                    for _ in range(repeats + 1):
                        began = time.perf_counter()
                        work(user, url)
                        spent.append(time.perf_counter() - began)
                except InputError as err:  # a parameter this version does not know (measuring an older one)
                    print(f"  serial {name:18} refused: {err}", file=sys.stderr, flush=True)
                    continue
                timed[name] = 1000 * statistics.median(spent[1:])
                print(f"  serial {name:18} {timed[name]:8.1f} ms", file=sys.stderr, flush=True)
    finally:
        accounts.close()
    return timed


def _serve(env: dict[str, str], workers: int, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    command = [sys.executable, "-m", "element_session", "serve", "--port", str(port), "--workers", str(workers)]
    with log.open("w") as out:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return child, f"http://127.0.0.1:{port}"
        except OSError:
            if child.poll() is not None:
                break
            time.sleep(0.3)
    child.kill()
    raise RuntimeError(f"the server did not start: {log.read_text()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.web_load", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", default="10000", help="numbers of sessions, comma-separated")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--seconds", type=float, default=30.0, help="per URL (0: no load, with --serial)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", choices=["mysql", "postgresql"], default=os.environ.get("DJ_BACKEND", "mysql"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--serial", action="store_true", help="also time each URL's service work alone, no HTTP")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sessions.split(","))
    bad = min(sizes) < 100 or args.clients < 1 or args.workers < 1
    if bad or args.seconds < 0 or not (args.seconds or args.serial):
        parser.error("--sessions at least 100 each; --clients and --workers positive; --seconds 0 only with --serial")

    import httpx2 as httpx

    from element_session.localdb import database_server, drop_schemas

    from . import ingest as bench_ingest

    results: dict[str, Any] = {"clients": args.clients, "seconds": args.seconds, "workers": args.workers, "runs": []}
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(database_server(args.backend, tag="element-session-bench-db-"))
        server.configure_datajoint()
        results["backend"] = server.backend
        prefix = f"bench_{secrets.token_hex(4)}_"
        os.environ["DATABASE_PREFIX"] = prefix  # the pipeline module reads it at import
        pipeline = importlib.import_module("workflow.pipeline")
        stack.callback(drop_schemas, prefix)
        files = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="element-session-bench-web-")))
        have = 0
        for n in sizes:
            bench_ingest.add_references(pipeline, n)
            path = bench_ingest.write_sessions_csv(files / "sessions.csv", n)  # the first `have` are stored
            ingested = bench_ingest.run_project(pipeline, path).seconds
            print(f"{n:,} sessions stored ({n - have:,} ingested in {ingested:.0f} s)", file=sys.stderr, flush=True)
            have = n
            settle(server, prefix)
            timed = serial(pipeline, server, n) if args.serial else {}
            if not args.seconds:  # --serial alone
                results["runs"].append({"sessions": n, "urls": {}, "serial_ms": timed, "load_average": os.getloadavg()})
                continue
            child, base = _serve(child_environment(server, prefix), args.workers, files / "serve.log")
            try:
                cookies = _login(httpx, base, server.user, server.password)
                run: dict[str, Any] = {"sessions": n, "urls": {}, "serial_ms": timed}
                for name, url in _urls(n).items():
                    options = {"auth": (server.user, server.password)} if url.startswith("/api/") else {}
                    summary = load(httpx, base, url, args.clients, args.seconds, cookies=cookies, **options)
                    summary["load_average_after"] = os.getloadavg()
                    run["urls"][name] = {"url": url, **summary}
                    print(f"  {name:16} p50 {summary['p50_ms']:8.1f} ms  p95 {summary['p95_ms']:8.1f} ms  p99 "
                          f"{summary['p99_ms']:8.1f} ms  {summary['requests_per_second']:7.1f}/s  failed "
                          f"{summary['failed']}", file=sys.stderr, flush=True)  # fmt: skip
                floor = run["urls"]["baseline: /login"]["p50_ms"]
                for summary in run["urls"].values():
                    summary["p50_ratio"] = summary["p50_ms"] / floor
                run["load_average"] = os.getloadavg()
                results["runs"].append(run)
            finally:
                child.terminate()
                child.wait(timeout=60)
    print_results(results, args.out)
    failed = sum(u["failed"] for run in results["runs"] for u in run["urls"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
