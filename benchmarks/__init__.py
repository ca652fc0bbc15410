"""Benchmarks of element-session against raw SQL on the same server (see README.md in this directory)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from element_session.localdb import ServerInfo

ROOT = Path(__file__).resolve().parent.parent


def child_environment(server: ServerInfo, prefix: str | None = None) -> dict[str, str]:
    """The environment of a benchmark's child process: the server (credentials in ``DJ_*`` variables, never
    on a command line), no ``datajoint.json`` search, this checkout importable, and the schema prefix if given."""
    env = {**os.environ, **server.environment(), "DJ_IGNORE_CONFIG_FILE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if prefix is not None:
        env["DATABASE_PREFIX"] = prefix
    return env
