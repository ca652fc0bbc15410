"""``element-session serve``: run the web application with uvicorn."""

from __future__ import annotations

import os
import secrets
import socket
import sys
from typing import Any

#: What ``serve`` hands to its worker processes, in their environment.
SECRET_ENV = "ELEMENT_SESSION_WEB_SECRET"  # noqa: S105 (a variable's name) the secret that seals logins
PIPELINE_ENV = "ELEMENT_SESSION_WEB_PIPELINE"  # the pipeline module they serve
VERBOSE_ENV = "ELEMENT_SESSION_WEB_VERBOSE"  # "1": show DataJoint's messages, as -v does
TIMEZONE_ENV = "ELEMENT_SESSION_WEB_TIMEZONE"  # the lab's zone (serve --timezone), or empty


def serve(
    pipeline: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    verbose: bool = False,
    timezone: str | None = None,
) -> None:
    """Serve ``pipeline`` (an import path) at ``host:port`` with ``workers`` processes until interrupted.

    ``timezone`` is the lab's zone, preset (and labelled so) in the add form, and the zone of a time
    without an offset where none is given (``web.service.local_zone``); without it the form's zone starts
    empty and must be chosen, and a posted row's time without an offset is refused.

    Prints the address. The worker processes share the secret that seals logins (taken from
    ``ELEMENT_SESSION_WEB_SECRET`` if set, so that logins survive a restart; otherwise a new random
    one, so that a restart ends every login). DataJoint's messages are shown only when ``verbose``,
    in every worker. Raises ``ValueError`` for a port or a number of workers out of range, and
    :class:`~element_session.errors.UsageError` for an address it cannot listen on (a port in use, a
    host that is not this machine's), before anything is printed.
    """
    import uvicorn

    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is not in 0..65535")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    _check_address(host, port)
    if not os.environ.get(SECRET_ENV):  # inherited by the worker processes
        os.environ[SECRET_ENV] = secrets.token_urlsafe(32)
    os.environ[PIPELINE_ENV] = pipeline
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    os.environ[TIMEZONE_ENV] = timezone or ""
    shown = f"[{host}]" if ":" in host else host
    print(
        f"element-session: serving {pipeline} at http://{shown}:{port}/ (Ctrl-C to stop)", file=sys.stderr, flush=True
    )
    uvicorn.run(
        "element_session.web.server:worker_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


def _check_address(host: str, port: int) -> None:
    """Raise UsageError unless ``host:port`` can be listened on now (uvicorn would exit 3 later)."""
    from ..errors import UsageError

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host, port))
    except OSError as err:
        reason = err.strerror or str(err)
        raise UsageError(f"cannot serve at {host}:{port}: {reason} (choose another --port or --host)") from None


def worker_app() -> Any:
    """The ASGI application of one worker: DataJoint's messages set up before DataJoint is imported."""
    from .. import _messages

    _messages.configure(os.environ.get(VERBOSE_ENV) == "1")
    from ..pipeline import load
    from .app import create_app

    pipeline = load(os.environ[PIPELINE_ENV], from_working_directory=True)
    return create_app(pipeline, os.environ[SECRET_ENV].encode(), timezone=os.environ.get(TIMEZONE_ENV) or None)
