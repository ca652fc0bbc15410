"""Helpers shared by the tests: reference rows and snapshots of every session table."""

from __future__ import annotations

from types import ModuleType
from typing import Any


def session_tables(module: ModuleType) -> dict[str, Any]:
    """Every table of a session module, by name."""
    return {
        "Session": module.Session,
        "Attribute": module.Session.Attribute,
        "SessionDirectory": module.SessionDirectory,
        "SessionExperimenter": module.SessionExperimenter,
        "SessionNote": module.SessionNote,
        "ProjectSession": module.ProjectSession,
        "SessionTimezone": module.SessionTimezone,
    }


def snapshot(pipeline: ModuleType, module: ModuleType | None = None) -> dict[str, list]:
    """The content of every session and reference table, comparable with ``==``."""
    tables = {"Subject": pipeline.Subject, "User": pipeline.User, "Project": pipeline.Project}
    tables |= session_tables(module or pipeline.session)
    return {
        name: sorted(tuple(sorted((k, repr(v)) for k, v in row.items())) for row in table().to_dicts())
        for name, table in tables.items()
    }


def add_references(pipeline: ModuleType, subjects: list[str], people: list[str], projects: list[str]) -> None:
    pipeline.Subject.insert(
        [{"subject": s, "sex": "U", "subject_birth_date": "2020-01-01"} for s in subjects], skip_duplicates=True
    )
    pipeline.User.insert([{"user": p} for p in people], skip_duplicates=True)
    pipeline.Project.insert([{"project": p} for p in projects], skip_duplicates=True)


def remove_references(pipeline: ModuleType, subjects: list[str], people: list[str], projects: list[str]) -> None:
    (pipeline.Subject & [{"subject": s} for s in subjects]).delete()
    (pipeline.User & [{"user": p} for p in people]).delete()
    (pipeline.Project & [{"project": p} for p in projects]).delete()
