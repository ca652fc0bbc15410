"""What the two session variants share: the definitions of every table but ``Session``, written once.

A DataJoint table class records its schema (and a Part its master) on the class itself, so one
class cannot serve two schemas. The definitions therefore live here as plain mixins, and each variant
module declares its own thin classes from them (``class SessionNote(tables.SessionNote, dj.Manual)``),
so that a search or go-to-definition lands on the table.

Every table's docstring ends with its attributes (name, type, meaning), generated from its definition
string by :func:`attributes_section` when the class is created: the definition is the one source.
"""

from __future__ import annotations

import re
from typing import Any

_ATTRIBUTE = re.compile(
    r"^(?P<name>[a-z][a-z0-9_]*)\s*(?:=\s*(?P<default>[^:]*?))?\s*:\s*(?P<type>[^#]+?)\s*(?:#\s*(?P<comment>.*))?$"
)
_FOREIGN_KEY = re.compile(r"^->\s*(?:\[[^\]]*\]\s*)?(?P<table>[\w.]+)")


def attributes_section(definition: str) -> str:
    """The numpydoc ``Attributes`` section of a DataJoint table ``definition``.

    One entry per line of the definition: a foreign key (``-> Subject``) as ``Subject : foreign key``,
    an attribute as ``name : type`` with ``, optional (default X)`` for a default, and its ``#`` comment as
    the description. Primary-key entries (above ``---``) say so.
    """
    lines, primary = ["Attributes", "----------"], True
    for raw in definition.splitlines():
        line = raw.strip()
        if line.startswith("---") or line.startswith("___"):
            primary = False
            continue
        key = " (primary key)" if primary else ""
        if match := _FOREIGN_KEY.match(line):
            table = match["table"]
            described = "the master table" if table == "master" else table
            lines += [f"{table} : foreign key{key}", f"    The key of {described}."]
        elif match := _ATTRIBUTE.match(line):
            default = f", optional (default {match['default']})" if match["default"] is not None else ""
            lines += [f"{match['name']} : {match['type']}{default}{key}", f"    {match['comment'] or ''}".rstrip()]
    return "\n".join(lines)


class _Documented:
    """Appends the attributes of ``definition`` to the docstring of every table class made from a mixin."""

    definition: str
    _summary = ""  # the class's own docstring, or the nearest base's, before the attributes are added

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        own_doc = cls.__dict__.get("__doc__")
        if own_doc:
            cls._summary = own_doc.strip()
        if cls._summary and getattr(cls, "definition", None):
            cls.__doc__ = f"{cls._summary}\n\n{attributes_section(cls.definition)}\n"


class SessionAttribute(_Documented):
    """One named attribute of one session: a short text value and/or any Python object."""

    definition = """
    # additional attribute of interest for a session
    -> master
    attribute_name: varchar(32)  # name of the attribute, shared across sessions
    ---
    attribute_value='': varchar(2000)  # the attribute's value as text
    attribute_blob=null: <blob>  # the attribute's value as any Python object (array, dict, list)
    """


class SessionDirectory(_Documented):
    """The raw-data directory of one session."""

    definition = """
    # relative path of the data directory of a session
    -> Session
    ---
    session_dir: varchar(256)  # path of the raw data, relative to a root data directory, '/'-separated
    """


class SessionExperimenter(_Documented):
    """One person who conducted one session."""

    definition = """
    # individual(s) conducting the session
    -> Session
    -> Experimenter
    """


class SessionNote(_Documented):
    """The free-form note of one session."""

    definition = """
    # additional notes related to a given session
    -> Session
    ---
    session_note: varchar(1024)  # free-form note
    """


class ProjectSession(_Documented):
    """One project that one session belongs to."""

    definition = """
    # link of a session to a project it belongs to
    -> Project
    -> Session
    """


class SessionTimezone(_Documented):
    """The time zone one session was recorded in (not part of the published element's layout)."""

    definition = """
    # time zone in which the session was recorded, to show its local start time
    -> Session
    ---
    session_timezone: varchar(64)  # IANA zone name (e.g. Europe/Berlin) or a fixed UTC offset (e.g. +02:00)
    """


class SessionStatus(_Documented):
    """Where one session is in its life (planned to QC'd); a session without a row is ``acquired``.

    Set only through :func:`element_session.status.set_status`, which allows the transitions of
    :data:`element_session.status.TRANSITIONS` alone.
    """

    definition = """
    # the status of a session in its life; a session without a row counts as acquired
    -> Session
    ---
    session_status: varchar(16)  # planned, acquiring, acquired, qc_passed, qc_failed or aborted
    status_set_time: datetime(6)  # when the status was set, in UTC
    status_set_by: varchar(255)  # the database account that set it (user@host on MySQL)
    status_reason='': varchar(1024)  # why, where given (required to reopen a checked session)
    """


class SessionBase(_Documented):
    """The documentation mixin of each variant's ``Session`` (whose definition differs by variant)."""


def other_key(link_table: Any, session: Any) -> str:
    """The one primary-key attribute of a link table (experimenters, projects) that is not ``session``'s."""
    (name,) = [k for k in link_table.primary_key if k not in session.primary_key]
    return name
