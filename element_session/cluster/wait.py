"""``--wait``: follow an array job until every task ended, with the keys made and failed from the database."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType

from ..database import database_errors
from ..jobs import JobRecord, Restriction, list_jobs, read_restriction, restricted, select_tables
from .follow import BAD, TaskState, counts, task_states


@dataclass
class ArrayOutcome:
    """How an array job ended: each task's state, the keys made during the wait, failed keys, reservations left."""

    tasks: list[TaskState]
    made: int = 0
    failed: list[JobRecord] = field(default_factory=list)
    reserved: list[JobRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every task COMPLETED, no failed key, no reservation left."""
        return all(t.state == "COMPLETED" for t in self.tasks) and not self.failed and not self.reserved

    @property
    def bad_tasks(self) -> list[TaskState]:
        """Tasks that ended FAILED, CANCELLED, OUT_OF_MEMORY, TIMEOUT, ... (or that SLURM forgot)."""
        return [t for t in self.tasks if t.state in BAD or t.state == "UNKNOWN"]


class _Keys:
    """Keys made (rows of the selected tables) and failed (their jobs' errors), polled from the database."""

    def __init__(self, pipeline: ModuleType, tables: Sequence[str] | None, restriction: Restriction) -> None:
        self.pipeline, self.names = pipeline, list(tables) if tables else None
        self.tables = [t() for t in select_tables(pipeline, self.names).values()]
        self.restriction = read_restriction(restriction, [type(t) for t in self.tables], "UTC")
        self.raw_restriction = restriction
        self.start = self.rows()

    def rows(self) -> int:
        with database_errors():
            return sum(len(restricted(t, self.restriction)) for t in self.tables)

    def failed(self) -> int:
        with database_errors():
            return sum(len(restricted(t.jobs.errors, self.restriction)) for t in self.tables)

    def records(self) -> list[JobRecord]:
        with database_errors():
            return list_jobs(self.pipeline, tables=self.names, restriction=self.raw_restriction)


def follow(
    job_id: str,
    tasks: int,
    pipeline: ModuleType,
    *,
    tables: Sequence[str] | None = None,
    restriction: Restriction = None,
    interval: float = 2.0,
    report: Callable[[str], None] = print,
) -> ArrayOutcome:
    """Poll the array job ``job_id`` until each of its ``tasks`` tasks ended; report progress lines when they change.

    Parameters
    ----------
    job_id, tasks : the array job and its number of tasks.
    pipeline, tables, restriction : what the tasks populate (as ``populate``'s options), for the key counts.
    interval : seconds between two polls.
    report : called with each new progress line (``tasks: P pending, R running, D done; keys: M made, F failed``).

    Raises
    ------
    DatabaseUnreachableError, PermissionDeniedError
        The database cannot be reached or refused the queries.
    SlurmError
        ``scontrol`` fails.
    """
    keys = _Keys(pipeline, tables, restriction)
    said = ""
    while True:
        states = task_states(job_id, tasks)
        pending, running, ended = counts(states)
        line = (
            f"tasks: {pending} pending, {running} running, {ended} done; "
            f"keys: {keys.rows() - keys.start} made, {keys.failed()} failed"
        )
        if line != said:
            report(line)
            said = line
        if ended == tasks:
            break
        time.sleep(interval)
    records = keys.records()
    return ArrayOutcome(
        states,
        made=keys.rows() - keys.start,
        failed=[r for r in records if r.status == "error"],
        reserved=[r for r in records if r.status == "reserved"],
    )
