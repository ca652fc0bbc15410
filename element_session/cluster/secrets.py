"""Where the tasks of a SLURM array will read the database password from: DataJoint's own secrets, never SLURM.

``slurmctld`` saves each job's script and submission environment on disk, so the password must
reach neither. DataJoint 2.3 reads it (``datajoint.settings``), when ``DJ_PASS`` is not set, from
``.secrets/database.password`` beside the ``datajoint.json`` it finds from the working directory
upward, else from ``/run/secrets/datajoint/database.password``, or from ``datajoint.json`` itself;
none of these is read when ``DJ_IGNORE_CONFIG_FILE`` is true.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import UsageError

_TRUE = {"1", "true", "yes", "on"}


class PasswordOnlyInEnvironmentError(UsageError):
    """Raised when the submitter has the database password only in ``DJ_PASS``: the tasks could not read it."""


def password_source(workdir: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """The file from which DataJoint, started in ``workdir`` with ``environ`` minus ``DJ_PASS``, reads the
    password; None if it reads none."""
    from datajoint.settings import SYSTEM_SECRETS_DIR, find_config_file, find_secrets_dir

    environ = os.environ if environ is None else environ
    if environ.get("DJ_IGNORE_CONFIG_FILE", "").strip().lower() in _TRUE:
        return None
    config = find_config_file(workdir)
    if config is not None:
        try:
            if json.loads(config.read_text()).get("database", {}).get("password"):
                return config
        except (OSError, ValueError, AttributeError):
            pass  # DataJoint warns about an unreadable file itself
    secrets = find_secrets_dir(config)
    for directory in (secrets, SYSTEM_SECRETS_DIR):
        if directory is not None and (directory / "database.password").is_file():
            return directory / "database.password"
    return None


def password_only_in_environment(workdir: Path, environ: Mapping[str, str] | None = None) -> str | None:
    """Why the tasks of an array submitted from ``workdir`` would find no password, and how to store it
    where DataJoint reads it in each task (a shell line to run); None where they find one, or none is used.

    That is: ``DJ_PASS`` is set, and DataJoint, without it, reads no password (:func:`password_source`).
    """
    environ = os.environ if environ is None else environ
    if not environ.get("DJ_PASS") or password_source(workdir, environ) is not None:
        return None
    if environ.get("DJ_IGNORE_CONFIG_FILE", "").strip().lower() in _TRUE:
        return (
            "the database password is only in DJ_PASS, and DJ_IGNORE_CONFIG_FILE stops DataJoint from reading "
            "its secrets; the password never goes to SLURM: unset DJ_IGNORE_CONFIG_FILE and store it as "
            "docs/cluster.md says"
        )
    from datajoint.settings import find_config_file

    config = find_config_file(workdir)
    where = (config.parent if config else workdir) / ".secrets" / "database.password"
    make_config = "" if config else f"echo '{{}}' > {workdir / 'datajoint.json'}; "
    return (
        "the database password is only in DJ_PASS, which never goes to SLURM (slurmctld keeps each job's "
        "environment on disk); store it where DataJoint reads it in each task:\n"
        f"  {make_config}mkdir -p -m 700 {where.parent} && (umask 077; printf '%s' \"$DJ_PASS\" > {where})\n"
        "or in /run/secrets/datajoint/database.password (docs/cluster.md, 'The password never enters SLURM')"
    )


def check_password_reaches_tasks(workdir: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """The file the tasks will read the password from (None: no password is used).

    Raises
    ------
    PasswordOnlyInEnvironmentError
        ``DJ_PASS`` is set and the tasks would find no password in DataJoint's secrets: the message
        says how to store it (:func:`password_only_in_environment`; nothing is submitted).
    """
    problem = password_only_in_environment(workdir, environ)
    if problem is not None:
        raise PasswordOnlyInEnvironmentError(f"{problem}\nthen submit again (nothing was submitted)")
    return password_source(workdir, environ)
