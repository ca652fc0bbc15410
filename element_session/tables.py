"""What the two session variants share: every table but ``Session`` itself, written once.

A DataJoint table class records its schema (and a Part its master) on the class itself, so one
class cannot serve two schemas. The definitions and docstrings therefore live here as plain
mixins, and :func:`declare_shared_tables` makes fresh table classes from them for each variant.
"""

from __future__ import annotations

import sys
from typing import Any

import datajoint as dj


class SessionAttribute:
    """One named attribute of one session: a short text value and/or any Python object."""

    definition = """
    # additional attribute of interest for a session
    -> master
    attribute_name: varchar(32)  # name of the attribute, shared across sessions
    ---
    attribute_value='': varchar(2000)  # the attribute's value as text
    attribute_blob=null: <blob>  # the attribute's value as any Python object (array, dict, list)
    """


class SessionDirectory:
    """The raw-data directory of one session."""

    definition = """
    # relative path of the data directory of a session
    -> Session
    ---
    session_dir: varchar(256)  # path of the raw data, relative to a root data directory, '/'-separated
    """


class SessionExperimenter:
    """One person who conducted one session."""

    definition = """
    # individual(s) conducting the session
    -> Session
    -> Experimenter
    """


class SessionNote:
    """The free-form note of one session."""

    definition = """
    # additional notes related to a given session
    -> Session
    ---
    session_note: varchar(1024)  # free-form note
    """


class ProjectSession:
    """One project that one session belongs to."""

    definition = """
    # link of a session to a project it belongs to
    -> Project
    -> Session
    """


class SessionTimezone:
    """The time zone one session was recorded in (not part of the published element's layout)."""

    definition = """
    # time zone in which the session was recorded, to show its local start time
    -> Session
    ---
    session_timezone: varchar(64)  # IANA zone name (e.g. Europe/Berlin) or a fixed UTC offset (e.g. +02:00)
    """


SHARED_TABLES = (SessionDirectory, SessionExperimenter, SessionNote, ProjectSession, SessionTimezone)


def attribute_part() -> type[dj.Part]:
    """A fresh ``Session.Attribute`` part class, to be nested in a variant's ``Session``."""
    return type("Attribute", (SessionAttribute, dj.Part), {"__doc__": SessionAttribute.__doc__})


def declare_shared_tables(schema: dj.Schema, module_name: str) -> tuple[type[dj.Manual], ...]:
    """Declare the shared Manual tables in ``schema`` for the variant module ``module_name``.

    Foreign keys resolve in that module's namespace (its ``Session``) merged, at activation,
    with the linking module's (``Experimenter``, ``Project``).
    """
    module = sys.modules[module_name]
    context: dict[str, Any] = vars(module)
    return tuple(
        schema(
            type(mixin.__name__, (mixin, dj.Manual), {"__doc__": mixin.__doc__, "__module__": module_name}),
            context=context,
        )
        for mixin in SHARED_TABLES
    )
