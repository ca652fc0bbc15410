"""Helpers shared by the tests: reference rows, snapshots of every session table, database accounts."""

from __future__ import annotations

import types
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import datajoint as dj

from element_session import session_with_id
from element_session.errors import CollationWarning


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


Reference = str | dict[str, Any]  # a name, or a whole row of the reference table


def _rows(references: Sequence[Reference], name: str, **defaults: Any) -> list[dict[str, Any]]:
    return [{name: r, **defaults} if isinstance(r, str) else r for r in references]


def add_references(
    pipeline: ModuleType, subjects: Sequence[Reference], people: Sequence[Reference], projects: Sequence[Reference]
) -> None:
    """Insert subjects (sex U, born 2020-01-01 unless given), people and projects, by name or as rows."""
    for table, rows in (
        (pipeline.Subject, _rows(subjects, "subject", sex="U", subject_birth_date="2020-01-01")),
        (pipeline.User, _rows(people, "user")),
        (pipeline.Project, _rows(projects, "project")),
    ):
        for row in rows:  # one by one: rows given whole may have different fields
            table.insert1(row, skip_duplicates=True)


def remove_references(
    pipeline: ModuleType, subjects: Sequence[Reference], people: Sequence[Reference], projects: Sequence[Reference]
) -> None:
    """Delete those reference rows, and with them the sessions that refer to them."""
    for table, name, rows in ((pipeline.Subject, "subject", subjects), (pipeline.User, "user", people),
                              (pipeline.Project, "project", projects)):  # fmt: skip
        (table & [{name: row[name]} for row in _rows(rows, name)]).delete()


LAB_TABLES = """
@lab
class Subject(dj.Manual):
    definition = '''
    subject: varchar(32)
    ---
    sex: enum('M', 'F', 'U')
    subject_birth_date: date
    '''


@lab
class User(dj.Lookup):
    definition = "user: varchar(32)"


@lab
class Project(dj.Lookup):
    definition = "project: varchar(32)"


Experimenter = User
"""


def lab_module_text(lab_name: str, session_name: str | None = None, *, create_tables: bool = True) -> str:
    """The Python text of a linking module: the lab schema ``lab_name`` with Subject, User (also
    Experimenter) and Project, and ``session`` (``session_with_id``), activated in ``session_name`` if given."""
    text = (
        "import datajoint as dj\n"
        "from element_session import session_with_id as session\n\n"
        f"lab = dj.Schema({lab_name!r}, create_tables={create_tables})\n"
        f"{LAB_TABLES}"
    )
    if session_name is not None:
        text += f"session.activate({session_name!r}, linking_module=__name__)\n"
    return text


def declare_lab(connection, base: str, charset: str, collation: str) -> types.ModuleType:
    """A linking module whose lab and session schemas (``session_with_id``) have ``charset`` and ``collation``.

    On PostgreSQL the schemas are created by DataJoint as usual. Warnings of the session's activation
    about collations are kept in ``warned``.
    """
    lab_name, session_name = base + "lab", base + "session"
    if connection.adapter.backend == "mysql":
        for name in (lab_name, session_name):
            connection.query(f"CREATE DATABASE `{name}` CHARACTER SET {charset} COLLATE {collation}")
    linking = types.ModuleType(f"lab_{collation}")
    exec(lab_module_text(lab_name), linking.__dict__)  # noqa: S102 (the text of lab_module_text, ours)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session_with_id.activate(session_name, linking_module=linking)
    linking.warned = [str(w.message) for w in caught if issubclass(w.category, CollationWarning)]
    return linking


def create_account(
    connection: dj.Connection, user: str, password: str, schemas: list[str], privileges: str = "SELECT"
) -> None:
    """A login ``user`` on the test server holding ``privileges`` on every table of ``schemas``."""
    if connection.adapter.backend == "postgresql":
        connection.query(f'CREATE ROLE "{user}" LOGIN PASSWORD %s', args=(password,))
        for schema in schemas:
            # REFERENCES as well: PostgreSQL's information_schema shows a table's keys only to an account holding
            # some privilege other than SELECT on it, and DataJoint reads the keys there (docs/security.md)
            connection.query(f'GRANT USAGE ON SCHEMA "{schema}" TO "{user}"')
            connection.query(f'GRANT {privileges}, REFERENCES ON ALL TABLES IN SCHEMA "{schema}" TO "{user}"')
            connection.query(
                f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{schema}" GRANT {privileges}, REFERENCES ON TABLES TO "{user}"'
            )
    else:
        connection.query("CREATE USER %s@%s IDENTIFIED BY %s", args=(user, "%", password))
        for schema in schemas:
            connection.query(f"GRANT {privileges} ON `{schema}`.* TO %s@%s", args=(user, "%"))


def drop_account(connection: dj.Connection, user: str) -> None:
    """Drop the login ``user`` with its grants (default privileges included)."""
    if connection.adapter.backend == "postgresql":
        connection.query(f'DROP OWNED BY "{user}"')
        connection.query(f'DROP ROLE "{user}"')
    else:
        connection.query("DROP USER %s@%s", args=(user, "%"))


#: Set by .ci/run: a test that needs the SLURM cluster fails, rather than skips, where none can start.
REQUIRE_SLURM = "ELEMENT_SESSION_REQUIRE_SLURM"


def no_cluster(reason: str, *, required: bool) -> None:
    """End a test that needs the SLURM cluster where none can start: skipped with the reason, or failed if
    ``required`` (``ELEMENT_SESSION_REQUIRE_SLURM=1``)."""
    import pytest

    if required:
        pytest.fail(f"{REQUIRE_SLURM}=1 but no SLURM cluster can start here: {reason}")
    pytest.skip(f"no SLURM cluster can start here: {reason}")
