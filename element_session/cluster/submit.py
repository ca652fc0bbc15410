"""Submitting the batch script with ``sbatch --parsable``; the script is kept beside the tasks' logs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ..errors import ElementSessionError
from .script import WITHHELD_VARIABLES


class SlurmError(ElementSessionError):
    """Raised when a SLURM command is missing or refuses (its own message is quoted)."""


def slurm_command(name: str) -> str:
    """The path of a SLURM client command.

    Raises
    ------
    SlurmError
        It is not installed (not on ``PATH``).
    """
    found = shutil.which(name)
    if found is None:
        raise SlurmError(f"{name} is not on PATH: run this on a machine of the SLURM cluster (a login node)")
    return found


def run_slurm(argv: list[str], environ: Mapping[str, str] | None = None) -> str:
    """Run a SLURM client command with ``environ`` minus the withheld variables; its standard output.

    Raises
    ------
    SlurmError
        The command is missing or ends with a non-zero status (its standard error is quoted).
    """
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if k not in WITHHELD_VARIABLES}
    done = subprocess.run(
        [slurm_command(argv[0]), *argv[1:]], capture_output=True, text=True, errors="replace", env=env, timeout=120
    )
    if done.returncode != 0:
        raise SlurmError(
            f"{argv[0]} failed (exit status {done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


def submit(script: str, log_dir: Path, environ: Mapping[str, str] | None = None) -> tuple[str, Path]:
    """Write ``script`` into ``log_dir``, submit it with ``sbatch --parsable``; (array job id, kept script).

    ``sbatch`` runs without ``DJ_PASS`` in its environment, so that it cannot pass it on whatever
    the script says. The script is kept as ``log_dir/populate-<job id>.sbatch``.

    Raises
    ------
    SlurmError
        ``sbatch`` is missing or refused the script.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="populate-", suffix=".sbatch", dir=log_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(script)
    path = Path(name)
    try:
        said = run_slurm(["sbatch", "--parsable", str(path)], environ).strip()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    match = re.match(r"(\d+)", said)
    if match is None:
        raise SlurmError(f"sbatch printed no job id: {said!r}")
    job_id = match.group(1)
    kept = path.with_name(f"populate-{job_id}.sbatch")
    path.replace(kept)
    return job_id, kept
