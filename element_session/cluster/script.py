"""The batch script of ``element-session slurm populate``: the template ``populate.sbatch`` filled in.

The script is meant to be read (and kept by labs that submit by hand): every value it holds is
shell-quoted, and it holds no password and no environment value, only the names of the variables
that ``sbatch --export`` passes to the tasks (:func:`exported_names`).
"""

from __future__ import annotations

import os
import re
import shlex
import string
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .._datajoint_compat import CONNECT_TIMEOUT_VARIABLE, READ_TIMEOUT_VARIABLE
from ..errors import UsageError

#: Variables that reach the tasks when set at submission (besides every ``DJ_*`` but ``DJ_PASS``).
PASSED_VARIABLES = ("DATABASE_PREFIX", "SESSION_ROOT_DIRS", CONNECT_TIMEOUT_VARIABLE, READ_TIMEOUT_VARIABLE,
                    "PYTHONPATH", "PATH", "HOME", "LANG", "LC_ALL", "TZ")  # fmt: skip
#: Never passed to SLURM, whatever the environment holds.
WITHHELD_VARIABLES = ("DJ_PASS",)

_MEMORY = re.compile(r"[1-9][0-9]*[KMGT]?", re.IGNORECASE)
#: sbatch options the script sets itself, refused in ``--sbatch-arg`` (the last of two wins in sbatch): why.
_SET_BY_THE_SCRIPT = {
    **dict.fromkeys(
        ("--export", "--export-file"),
        "the script passes the tasks only the variables it names, never DJ_PASS "
        "(an --export of ALL would keep the password in SLURM's saved job environment)",
    ),
    **dict.fromkeys(("--array", "-a"), "give the number of tasks as --array N"),
    **dict.fromkeys(("--chdir", "-D"), "the tasks run in the directory of the command (where datajoint.json is)"),
    **dict.fromkeys(("--output", "-o", "--error", "-e"), "the tasks' logs are written to --log-dir"),
    **dict.fromkeys(("--cpus-per-task", "-c"), "give --cpus-per-task"),
    **dict.fromkeys(("--time", "-t"), "give --time"),
    **dict.fromkeys(("--partition", "-p"), "give --partition"),
    "--mem": "give --mem",
    **dict.fromkeys(("--requeue", "--no-requeue"), "give --requeue (or leave it out)"),
}


class _Template(string.Template):
    delimiter = "@"  # the script's own shell variables keep their $


@dataclass(frozen=True)
class BatchOptions:
    """What ``element-session slurm populate`` puts into the batch script.

    Attributes
    ----------
    tasks : number of array tasks (each one ``element-session populate``).
    pipeline : import path of the pipeline module the tasks populate.
    workdir : the tasks' working directory (where DataJoint finds ``datajoint.json`` and ``.secrets/``).
    log_dir : directory of the tasks' logs (``populate-<array job>_<task>.log``) and of the kept script.
    workers : worker processes per task.
    partition, time_minutes, memory, cpus_per_task : SLURM's ``--partition``, ``--time`` (minutes),
        ``--mem`` (e.g. ``2G``) and ``--cpus-per-task`` (default: ``workers``).
    requeue : let SLURM requeue a task (pre-emption, node failure, ``scontrol requeue``).
    sbatch_args : further ``sbatch`` options, each written as one ``#SBATCH`` line; not those the script
        sets itself (``--export``, ``--array``, ``--chdir``, ``--output``, and those of the options above).
    tables, restrict, limit, timezone : ``populate``'s ``--table``, ``--restrict ATTR=VALUE``, ``--limit``
        (per task) and ``--timezone`` (of ``--restrict`` times).
    python : the interpreter the tasks run (default: this one).
    """

    tasks: int
    pipeline: str
    workdir: Path
    log_dir: Path
    workers: int = 1
    partition: str | None = None
    time_minutes: int | None = None
    memory: str | None = None
    cpus_per_task: int | None = None
    requeue: bool = False
    sbatch_args: Sequence[str] = ()
    tables: Sequence[str] = ()
    restrict: Sequence[tuple[str, str]] = ()
    limit: int | None = None
    timezone: str = "UTC"
    python: str = field(default_factory=lambda: sys.executable)

    def __post_init__(self) -> None:
        """Raises :class:`~element_session.errors.UsageError` (exit 2) for an option that cannot be used."""
        if self.tasks < 1:
            raise UsageError(f"--array needs a positive number of tasks, not {self.tasks}")
        if self.memory is not None and not _MEMORY.fullmatch(self.memory):
            raise UsageError(f"--mem {self.memory!r} is not a size such as 500M or 2G")
        for arg in self.sbatch_args:
            if not arg.startswith("-") or any(c in arg for c in "\r\n"):
                raise UsageError(f"--sbatch-arg {arg!r} is not one sbatch option (it must start with '-', one line)")
            name = arg.split("=", 1)[0].split()[0] if arg.startswith("--") else arg[:2]
            if name in _SET_BY_THE_SCRIPT:
                raise UsageError(f"--sbatch-arg {arg!r}: {name} is set by the script: {_SET_BY_THE_SCRIPT[name]}")
        for name, value in [
            *(("--table", t) for t in self.tables),
            *(("--restrict", f"{a}={v}") for a, v in self.restrict),
        ]:
            if "\x00" in value:
                raise UsageError(f"{name} {value!r} contains a NUL character")


def exported_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """The names of the variables ``sbatch --export`` passes to the tasks: those of :data:`PASSED_VARIABLES`
    and every ``DJ_*`` that are set, never ``DJ_PASS``."""
    environ = os.environ if environ is None else environ
    names = {n for n in environ if n.startswith("DJ_")} | {n for n in PASSED_VARIABLES if n in environ}
    return sorted(n for n in names - set(WITHHELD_VARIABLES) if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n))


def render(options: BatchOptions, environ: Mapping[str, str] | None = None) -> str:
    """The batch script's text for ``options``; ``environ`` (default ``os.environ``) decides only which
    variable *names* it exports."""
    q = shlex.quote
    directives = []
    if options.partition:
        directives.append(f"--partition={options.partition}")
    if options.time_minutes is not None:
        directives.append(f"--time={options.time_minutes}")
    if options.memory:
        directives.append(f"--mem={options.memory.upper()}")
    directives.append("--requeue" if options.requeue else "--no-requeue")
    directives.extend(options.sbatch_args)
    selection = "".join(f" --table {q(t)}" for t in options.tables) + "".join(
        f" --restrict {q(f'{a}={v}')}" for a, v in options.restrict
    )
    if options.restrict and options.timezone != "UTC":
        selection += f" --timezone {q(options.timezone)}"
    template = resources.files(__package__).joinpath("populate.sbatch").read_text(encoding="utf-8")
    return _Template(template).substitute(
        tasks=options.tasks,
        job_name="element-session-populate",
        last_task=options.tasks - 1,
        workdir=options.workdir,
        log_dir=options.log_dir,
        cpus_per_task=options.cpus_per_task or options.workers,
        export=",".join(exported_names(environ)) or "NONE",
        directives="\n".join(f"#SBATCH {d}" for d in directives),
        python=q(options.python),
        pipeline=q(options.pipeline),
        workers=options.workers,
        selection=selection,
        limit=f" --limit {options.limit}" if options.limit else "",
    )
