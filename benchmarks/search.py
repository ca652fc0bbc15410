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

import statistics
import time


def main(argv: list[str] | None = None) -> int:
    from .web import arguments, print_results, served

    args = arguments("search", __doc__ or "", argv, 20_000, 5)

    with served(args.backend, args.sessions) as (server, _pipeline, client):
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
    print_results(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
