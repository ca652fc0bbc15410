"""The demo: a local database, the workflow pipeline, the example data set, the sessions as a table.

``python -m workflow.demo`` (``./scripts/demo`` sets up the machine first):

1. starts a private database server in ``.localdb/<backend>/`` at the repository root (MariaDB, or
   PostgreSQL with ``DJ_BACKEND=postgresql``), kept across runs and stopped at the end; where
   ``DJ_HOST`` is set, the demo uses that server through DataJoint's settings instead;
2. activates the workflow pipeline (importing :mod:`workflow.pipeline`, ``DATABASE_PREFIX`` applies);
3. ingests the example data set of ``workflow/data/`` (see its README), with its raw-data folder
   ``workflow/data/raw`` as root data directory unless ``SESSION_ROOT_DIRS`` is set;
4. prints the sessions as a table.

Every step is idempotent: a second run reports every row as already present.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import stat
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from element_session.localdb import LocalServer

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
LOCALDB = ROOT / ".localdb"
#: The lab's zone: start times in sessions.csv written without a UTC offset are local times there.
TIMEZONE = "Europe/Berlin"
#: What to ingest, in order (sessions refer to the other three).
INPUTS = (
    ("subjects", DATA / "subjects.csv"),
    ("experimenters", DATA / "experimenters.csv"),
    ("projects", DATA / "projects.yaml"),
    ("sessions", DATA / "sessions.csv"),
)


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it lies below it, for short messages."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _datadir(backend: str) -> Path:
    """Where the demo's server keeps its data: ``.localdb/<backend>`` at the repository root.

    PostgreSQL runs as its own user ``postgres`` when started by root; where that user cannot
    reach the repository (a clone in ``/root``, say), its data goes to a directory of this
    checkout under ``/var/tmp`` instead.
    """
    preferred = LOCALDB / backend
    if backend != "postgresql" or os.geteuid() != 0 or _reachable_by_all(LOCALDB.parent):
        return preferred
    tmp = Path("/var/tmp") if Path("/var/tmp").is_dir() else Path(tempfile.gettempdir())  # noqa: S108
    checkout = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
    return tmp / f"element-session-demo-{checkout}" / backend


def _reachable_by_all(path: Path) -> bool:
    """Whether every directory from the file system root down to ``path`` is searchable by anyone."""
    return all(directory.stat().st_mode & stat.S_IXOTH for directory in (path, *path.parents))


def run_demo(pipeline: ModuleType) -> pd.DataFrame:
    """Ingest the example data set into ``pipeline`` (printing one report line per file); the sessions."""
    from element_session import ingest, query

    for kind, path in INPUTS:
        report = ingest.ingest(kind, _shown(path), pipeline=pipeline, timezone=TIMEZONE)
        print(f"{kind:>13}: {report}")
    return query.session_table(pipeline.session)


def _print_table(sessions: pd.DataFrame) -> None:
    """The sessions as ``element-session sessions`` prints them (start times in their zones, missing values blank)."""
    from element_session.formats import sessions_text

    print(f"\n{len(sessions)} session(s):")
    print(sessions_text(sessions))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow.demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the local database server running at the end, to connect to it yourself",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("SESSION_ROOT_DIRS", str(DATA / "raw"))
    from element_session import _messages

    _messages.configure(verbose=False)  # DataJoint's warnings and connection line stay quiet, as in the command
    from element_session.errors import ElementSessionError
    from element_session.localdb import LocalServer, server_from_environment
    from element_session.pipeline import load, schema_names

    external = server_from_environment()
    server: LocalServer | None = None
    try:
        if external is not None:
            info = external
            print(f"Database: {info} (from DJ_HOST and DataJoint's settings)")
        else:
            backend = os.environ.get("DJ_BACKEND", "mysql")
            server = LocalServer(_datadir(backend), backend)
            info = server.start()
            info.configure_datajoint()
            datadir = _shown(server.datadir)
            print(f"Database: {info}; data directory {datadir}/ (password in {datadir}/password)")
        print(f"Raw data: SESSION_ROOT_DIRS={os.environ['SESSION_ROOT_DIRS']}")

        pipeline = load("workflow.pipeline")
        print(f"Pipeline: activated schemas {', '.join(schema_names(pipeline))}")
        _print_table(run_demo(pipeline))
    except ElementSessionError as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            if args.keep_running:
                server.detach()
                _print_connect_hint(server)
            else:
                server.stop()
    return 0


def _print_connect_hint(server: LocalServer) -> None:
    datadir = _shown(server.datadir)
    command = f"{_shown(Path(sys.executable))} -m element_session.localdb"
    print(
        f"\nThe server keeps running. To point DataJoint (and the element-session command) at it:\n"
        f'  eval "$({command} start {datadir} --backend {server.backend})"   # sets DJ_HOST, DJ_PORT, DJ_USER, ...\n'
        f"  export SESSION_ROOT_DIRS={shlex.quote(os.environ['SESSION_ROOT_DIRS'])}   # the example raw data\n"
        f"To stop it:\n  {command} stop {datadir} --backend {server.backend}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
