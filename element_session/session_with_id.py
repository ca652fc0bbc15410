"""Session tables whose sessions are identified by subject and session number.

Activate with :func:`activate`; the linking module provides ``Subject``, ``Project`` and
``Experimenter``. Every table but ``Session`` is defined once in :mod:`element_session.tables` and
shared with :mod:`element_session.session_with_datetime`.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import datajoint as dj

from . import linking, status, tables

schema = dj.Schema()


def activate(
    schema_name: str,
    *,
    create_schema: bool = True,
    create_tables: bool = True,
    linking_module: ModuleType | str | None = None,
) -> None:
    """Activate this module's tables in the database schema ``schema_name``.

    See :func:`element_session.linking.activate_schema` for the parameters, what the linking module
    must provide and the errors raised.
    """
    linking.activate_schema(
        schema, schema_name, create_schema=create_schema, create_tables=create_tables, linking_module=linking_module
    )


def in_status(*states: str) -> list[Any]:
    """A restriction to this module's sessions in one of ``states``: ``Session & in_status("qc_passed")``.

    See :func:`element_session.status.in_status` (a session without a status row is ``acquired``).
    """
    return status.in_status(*states, session_module=sys.modules[__name__])


@schema
class Session(tables.SessionBase, dj.Manual):
    """One experimental session: a subject's recording identified by its session number."""

    definition = """
    # an experimental session of a subject
    -> Subject
    session_id: int32  # session number, unique per subject
    ---
    session_datetime=null: datetime  # start time of the session, in UTC, where known
    index(session_datetime)  # newest first without reading every session
    """

    class Attribute(tables.SessionAttribute, dj.Part):
        pass


@schema
class SessionDirectory(tables.SessionDirectory, dj.Manual):
    pass


@schema
class SessionExperimenter(tables.SessionExperimenter, dj.Manual):
    pass


@schema
class SessionNote(tables.SessionNote, dj.Manual):
    pass


@schema
class ProjectSession(tables.ProjectSession, dj.Manual):
    pass


@schema
class SessionTimezone(tables.SessionTimezone, dj.Manual):
    pass


@schema
class SessionStatus(tables.SessionStatus, dj.Manual):
    pass
