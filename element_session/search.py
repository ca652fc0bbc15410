"""Free-text search over sessions: one condition for every entry point.

:func:`search_condition` is what ``find_sessions(search=...)`` adds, and so what the web interface's
search field, ``/api/sessions?search=`` and ``element-session sessions --search`` select: sessions whose
subject, note, one of their experimenters or projects, or one of their attributes' text values
contains the text, compared without regard to letter case (MySQL/MariaDB: ``LOWER(column) LIKE
LOWER(pattern)``, whatever the column's collation; PostgreSQL: ``ILIKE``, the column's collation
deciding what a letter's other case is: every letter with a libc or ICU locale, ASCII letters alone
with ``C``).

The text matches as written: ``%``, ``_`` and ``\\`` in it are escaped (``\\`` is the escape
character) so that they match themselves, and the pattern reaches the SQL as a literal quoted by the
database driver (``cursor.mogrify``, which follows the connection's own quoting rules: MySQL's
``NO_BACKSLASH_ESCAPES``, PostgreSQL's ``standard_conforming_strings``). A ``LIKE '%text%'`` reads
every row of the tables searched: no index helps a substring.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

import datajoint as dj

from .formats import subject_attributes
from .tables import other_key

#: Column types that hold text, searched (a subject key that is a number is not).
_TEXT = re.compile(r"(?:var)?char|character|(?:tiny|medium|long)?text")


def like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE``, with ``\\``, ``%`` and ``_`` of ``text`` escaped by ``\\`` (they match themselves)."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


def sql_literal(connection: dj.Connection, text: str) -> str:
    """``text`` as an SQL string literal, quoted by the connection's driver (pymysql, psycopg2) as its parameters."""
    cursor = connection.adapter.get_cursor(connection._conn)
    try:
        quoted = cursor.mogrify("%s", (text,))
    finally:
        cursor.close()
    return quoted.decode() if isinstance(quoted, bytes) else quoted


def _contains(connection: dj.Connection, column: str, pattern: str) -> str:
    """The condition: ``column`` contains the LIKE ``pattern`` (an SQL literal), letter case ignored."""
    name = connection.adapter.quote_identifier(column)
    escape = sql_literal(connection, "\\")
    if connection.adapter.backend == "postgresql":
        return f"{name} ILIKE {pattern} ESCAPE {escape}"
    return f"LOWER({name}) LIKE LOWER({pattern}) ESCAPE {escape}"


def _is_text(table: Any, column: str) -> bool:
    return bool(_TEXT.match(table.heading[column].type.lower()))


def search_condition(session_module: ModuleType, text: str) -> list[Any]:
    """The restriction of ``Session`` to sessions containing ``text`` (any of the places searched: an OR list).

    Each part is a restriction DataJoint composes: the subject's text key attributes on ``Session``
    itself, and a semijoin with each of ``SessionNote``, ``SessionExperimenter``, ``ProjectSession``
    and ``Session.Attribute`` restricted to rows that contain the text.
    """
    m = session_module
    connection = m.Session.connection
    pattern = sql_literal(connection, like_pattern(text))
    places: list[Any] = [
        _contains(connection, name, pattern) for name in subject_attributes(m.Session) if _is_text(m.Session, name)
    ]
    searched = [
        (m.SessionNote, "session_note"),
        (m.SessionExperimenter, other_key(m.SessionExperimenter, m.Session)),
        (m.ProjectSession, other_key(m.ProjectSession, m.Session)),
        (m.Session.Attribute, "attribute_value"),
    ]
    places += [table & _contains(connection, column, pattern) for table, column in searched if _is_text(table, column)]
    return places
