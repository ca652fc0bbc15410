"""Copy: export from this process's server, import on a target named by a DataJoint settings file.

The import runs in a child process (``element-session import``) whose DataJoint settings come from
the target's settings file alone: every ``DJ_*`` variable of this process is left out of the
child's environment, its ``datajoint.json`` is ignored, and the password comes from
``DJ_TARGET_PASS`` or the ``.secrets/database.password`` beside the target's file. The child
activates the pipeline under the target's prefix (creating its schemas where missing) on either
backend, and imports the bundle in one transaction.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..database import SETTINGS_FILE_VARIABLE
from ..errors import UsageError
from .export import ExportReport, export_sessions

#: The environment variable holding the target's password (never a command-line argument).
TARGET_PASSWORD_ENV = "DJ_TARGET_PASS"  # noqa: S105 (the name of a variable, not a password)
_SECRET = Path(".secrets") / "database.password"
_SECRET_USER = Path(".secrets") / "database.user"


def _target_settings(path: Path) -> dict[str, Any]:
    """The ``database`` settings of the target's file, nested (``{"database": {"host": ...}}``) or flat
    (``{"database.host": ...}``) as DataJoint reads either; ``backend`` filled in (default ``mysql``).

    Raises
    ------
    UsageError
        The file cannot be read or is no settings file, names no host, or a port or backend that cannot be.
    """
    shown = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UsageError(f"the target settings file {shown!r} cannot be read: {err}") from None
    nested = data.get("database", {}) if isinstance(data, dict) else None
    if not isinstance(nested, dict):
        raise UsageError(
            f"the target settings file {shown!r} is not DataJoint's settings (a JSON object of database.*)"
        )
    database = {key.split(".", 1)[1]: value for key, value in data.items() if key.startswith("database.")} | nested
    if not database.get("host"):
        raise UsageError(f"the target settings file {shown!r} names no database.host")
    database.setdefault("backend", "mysql")
    if database["backend"] not in ("mysql", "postgresql"):
        raise UsageError(
            f"the target settings file {shown!r}: database.backend is mysql or postgresql, not {database['backend']!r}"
        )
    port = database.get("port")
    if port is not None and not (str(port).isdigit() and 0 < int(port) < 65536):
        raise UsageError(f"the target settings file {shown!r}: database.port is not a port number ({port!r})")
    return database


def target_environment(
    settings_file: str | os.PathLike, prefix: str, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a process that works on the target: ``environ`` without its ``DJ_*`` settings,
    with the target's from ``settings_file`` (``{"database": {"host", "port", "user", "backend"}}``).

    Raises
    ------
    UsageError
        The file cannot be read, lacks the host, or no account or no password is found for the target.
    """
    environ = os.environ if environ is None else environ
    path = Path(settings_file)
    database = _target_settings(path)
    password = environ.get(TARGET_PASSWORD_ENV)
    secret = path.parent / _SECRET
    if password is None and secret.is_file():
        password = secret.read_text(encoding="utf-8").strip()
    if password is None:
        raise UsageError(f"no password for the target: set {TARGET_PASSWORD_ENV} or write it to {str(secret)!r}")
    user = database.get("user")
    if user is None and (path.parent / _SECRET_USER).is_file():  # DataJoint's secrets may hold the account too
        user = (path.parent / _SECRET_USER).read_text(encoding="utf-8").strip()
    if not user:  # not a guess (root): the account is said where the password is
        raise UsageError(
            f"the target settings file {str(path)!r} names no account: set database.user in it "
            f"or write the account to {str(path.parent / _SECRET_USER)!r}"
        )
    backend = database["backend"]
    env = {k: v for k, v in environ.items() if not k.startswith("DJ_") and k != "DATABASE_PREFIX"}
    env |= {
        "DJ_HOST": str(database["host"]),
        "DJ_PORT": str(database.get("port", 5432 if backend == "postgresql" else 3306)),
        "DJ_USER": str(user),
        "DJ_PASS": password,
        "DJ_BACKEND": backend,
        "DJ_IGNORE_CONFIG_FILE": "true",
        "DATABASE_PREFIX": prefix,
        SETTINGS_FILE_VARIABLE: str(path),  # a failure to connect names the file, not DJ_HOST
    }
    if database.get("use_tls") is not None:
        env["DJ_USE_TLS"] = str(database["use_tls"]).lower()
    if database.get("name") is not None:  # PostgreSQL's database (DataJoint's default: postgres)
        env["DJ_DATABASE_NAME"] = str(database["name"])
    return env


@dataclass
class CopyReport:
    """What a copy did: the export's report and the exit status of the import (0: done)."""

    exported: ExportReport
    status: int


def copy_sessions(
    settings_file: str | os.PathLike,
    *,
    to_prefix: str,
    pipeline: ModuleType | str,
    session_module: ModuleType | None = None,
    downstream: bool = False,
    dry_run: bool = False,
    progress: bool | None = False,
    **selection: Any,
) -> CopyReport:
    """Export the selected sessions and import them on the target of ``settings_file`` under ``to_prefix``.

    Parameters
    ----------
    settings_file : the target's DataJoint settings (``datajoint.json`` form); the password from
        ``DJ_TARGET_PASS`` or ``.secrets/database.password`` beside it.
    to_prefix : the target's schema prefix (``DATABASE_PREFIX`` of the pipeline there).
    pipeline : the pipeline module (or its import path), importable in a child process.
    session_module, downstream, **selection : as :func:`~element_session.transfer.export_sessions`.
    dry_run : check the import and report what would be written; write no row on the target. The
        import activates the pipeline there all the same, which creates its missing schemas and
        their empty tables (docs/transfer.md).
    progress : progress bars on standard error (None: only where it is a terminal).

    Returns
    -------
    CopyReport
        The export's report and the import's exit status (its report and errors went to standard
        output and error: 1 for a refused bundle or a conflict, 3 unreachable, 4 refused account).

    Raises
    ------
    UsageError
        The settings file cannot be used (see :func:`target_environment`).
    """
    name = pipeline if isinstance(pipeline, str) else pipeline.__name__
    env = target_environment(settings_file, to_prefix)
    module = None if isinstance(pipeline, str) else pipeline
    with tempfile.TemporaryDirectory(prefix="element-session-copy-") as directory:
        bundle = Path(directory, "sessions.zip")
        exported = export_sessions(
            bundle, session_module, pipeline=module, downstream=downstream, progress=progress, **selection
        )
        command = [sys.executable, "-m", "element_session", "--pipeline", name, "import", str(bundle)]
        command += ["--dry-run"] * dry_run + ["--no-progress"] * (progress is False)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
        live = progress and sys.stderr.isatty()  # the import draws its bar on this terminal, as export did
        errors = None if live else subprocess.PIPE
        done = subprocess.run(command, env=env, check=False, stdout=subprocess.PIPE, stderr=errors)
        sys.stdout.write(done.stdout.decode("utf-8"))
        sys.stderr.write((done.stderr or b"").decode("utf-8"))
    return CopyReport(exported, done.returncode)
