"""The states of an array job's tasks, read from ``scontrol show job`` (there may be no ``sacct``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .submit import SlurmError, run_slurm

#: States after which a task runs no more (unless requeued, which makes it PENDING again).
ENDED = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
)
#: Ended states that are not a success.
BAD = ENDED - {"COMPLETED"}
#: Shown when SLURM no longer knows the job (ended more than ``MinJobAge`` seconds ago).
UNKNOWN = "UNKNOWN"

_FIELD = re.compile(r"(\w+)=(\S*)")


@dataclass(frozen=True)
class TaskState:
    """One array task: its index, SLURM state, exit code (``status:signal``), reason and restarts."""

    task: int
    state: str
    exit_code: str = ""
    reason: str = ""
    restarts: int = 0

    @property
    def ended(self) -> bool:
        """True once the task runs no more."""
        return self.state in ENDED or self.state == UNKNOWN


def _task_ids(text: str) -> list[int]:
    """``"0-3,7"`` or ``"0-3%2"`` (a pending array's remainder) as task indices."""
    ids: list[int] = []
    for part in text.split("%")[0].split(","):
        if "-" in part:
            first, last = part.split("-", 1)
            ids.extend(range(int(first), int(last) + 1))
        elif part.isdigit():
            ids.append(int(part))
    return ids


def parse_show_job(text: str) -> dict[int, TaskState]:
    """The tasks of ``scontrol show job -o`` output (one record a line) by index."""
    tasks: dict[int, TaskState] = {}
    for line in text.splitlines():
        fields: Mapping[str, str] = dict(_FIELD.findall(line))
        if "JobState" not in fields or "ArrayTaskId" not in fields:
            continue
        for task in _task_ids(fields["ArrayTaskId"]):
            tasks[task] = TaskState(
                task,
                fields["JobState"],
                fields.get("ExitCode", ""),
                "" if fields.get("Reason") in (None, "None") else fields["Reason"],
                int(fields.get("Restarts", "0") or 0),
            )
    return tasks


def task_states(job_id: str, tasks: int) -> list[TaskState]:
    """The state of each of the ``tasks`` tasks of array job ``job_id`` (UNKNOWN for those SLURM forgot).

    Raises
    ------
    SlurmError
        ``scontrol`` is missing or fails for another reason than a job it no longer knows.
    """
    try:
        found = parse_show_job(run_slurm(["scontrol", "show", "job", "-o", job_id]))
    except SlurmError as err:
        if "Invalid job id" not in str(err):
            raise
        found = {}
    return [found.get(i, TaskState(i, UNKNOWN)) for i in range(tasks)]


def counts(states: list[TaskState]) -> tuple[int, int, int]:
    """(pending, running, ended) tasks."""
    ended = sum(s.ended for s in states)
    pending = sum(s.state in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED") for s in states)
    return pending, len(states) - ended - pending, ended
