"""Checks of input text against a table's columns, read from the table's heading (its database).

Each check turns text into the value to insert or raises ``ValueError`` with the reason. Nothing is
truncated or rounded: text longer than its column, a number out of range or with a fraction where
an integer is expected, an impossible date, are errors.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

import datajoint as dj

from .. import times
from .._datajoint_compat import check_key_backslashes
from ..errors import InputProblem, raise_if_problems

Check = Callable[[str], Any]

_INT_RANGES = {
    "tinyint": (-(2**7), 2**7 - 1),
    "smallint": (-(2**15), 2**15 - 1),
    "mediumint": (-(2**23), 2**23 - 1),
    "int": (-(2**31), 2**31 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
_INTEGER = re.compile(r"[+-]?[0-9]+")


def check_text(value: str, width: int | None = None) -> str:
    """Text that fits ``width`` characters and holds no NUL (which PostgreSQL cannot store)."""
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    if width is not None and len(value) > width:
        raise ValueError(f"{len(value)} characters, longer than the column's {width}")
    return value


def check_key_text(value: str, width: int | None = None) -> str:
    """Text for a primary-key column: as :func:`check_text`, and no backslash before a quote or at the end.

    (:func:`~element_session._datajoint_compat.check_key_backslashes`).
    """
    check_text(value, width)
    check_key_backslashes(value)
    if "%" in value:
        raise ValueError("a key value may not contain '%' (DataJoint 2.3's cascading delete could not delete the row)")
    return check_no_trailing_space(value)


def check_no_trailing_space(value: str) -> str:
    """Key text that does not end with a space, which MySQL/MariaDB would compare as the text without it."""
    if value.endswith(" "):
        raise ValueError("a key value may not end with a space (MySQL/MariaDB compare 'a' and 'a ' as one key)")
    return value


def check_attribute_name(name: str, width: int | None = None) -> str:
    """The name of a session attribute: key text (:func:`check_key_text`) that is not empty."""
    check_key_text(name, width)
    if not name:
        raise ValueError("an attribute needs a name")
    return name


def check_integer(value: str, low: int = -(2**31), high: int = 2**31 - 1) -> int:
    """A whole number in ``[low, high]``, written without a fraction or exponent."""
    if not _INTEGER.fullmatch(value.strip()):
        raise ValueError("not a whole number")
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"outside the column's range {low}..{high}")
    return number


def check_date(value: str) -> dt.date:
    """An ISO 8601 calendar date (YYYY-MM-DD) that exists."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value.strip()):
        raise ValueError("not an ISO 8601 date (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as err:
        raise ValueError(f"impossible date: {err}") from None


def check_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("not a number") from None
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _enum_labels(table: dj.Table, column: str, sql_type: str) -> list[str]:
    """The values of the enum ``sql_type`` of ``table``'s ``column``: from the type's text (MySQL/MariaDB), else
    from the type of the column itself in PostgreSQL's catalog (a type's name alone is not unique: each
    schema of another prefix has a type of that name, whose labels were listed too)."""
    match = re.fullmatch(r"enum\((.*)\)", sql_type, re.I)
    if match:
        return re.findall(r"'((?:[^']|'')*)'", match[1])
    rows = table.connection.query(
        "SELECT e.enumlabel FROM pg_attribute a JOIN pg_enum e ON e.enumtypid = a.atttypid "
        "WHERE a.attrelid = %s::regclass AND a.attname = %s ORDER BY e.enumsortorder",
        args=(table.full_table_name, column),
    ).fetchall()
    return [row[0] for row in rows]


def column_checks(table: dj.Table) -> dict[str, Check]:
    """One check per column of ``table`` that can be given as text (files hold no blobs)."""
    checks: dict[str, Check] = {}
    for attr in table.heading.attributes.values():
        sql_type = attr.type.lower()
        width = re.fullmatch(r"(?:var)?char(?:acter varying|acter)?\((\d+)\)", sql_type)
        base = sql_type.split("(")[0].replace(" unsigned", "").strip()
        if width:
            checks[attr.name] = functools.partial(check_text, width=int(width[1]))
        elif base in _INT_RANGES or sql_type.startswith(("int", "tinyint", "smallint", "bigint", "mediumint")):
            low, high = _INT_RANGES.get(base, _INT_RANGES["bigint"])
            if "unsigned" in sql_type:
                low, high = 0, 2 * high + 1
            checks[attr.name] = functools.partial(check_integer, low=low, high=high)
        elif base == "date":
            checks[attr.name] = check_date
        elif base in ("float", "double", "double precision", "real", "decimal", "numeric"):
            checks[attr.name] = check_float
        elif base.startswith("enum"):
            labels = _enum_labels(table, attr.name, attr.type)
            checks[attr.name] = functools.partial(_check_enum, labels=tuple(labels))
        elif base in ("text", "longtext", "mediumtext"):
            checks[attr.name] = check_text
    return checks


def _check_enum(value: str, labels: tuple[str, ...]) -> str:
    if value not in labels:
        raise ValueError(f"not one of {', '.join(labels)}")
    return value


def required_columns(table: dj.Table) -> list[str]:
    """Columns that must be given: not nullable and without a default."""
    return [a.name for a in table.heading.attributes.values() if not a.nullable and a.default is None]


def parse_key_value(name: str, value: Any, checks: Mapping[str, Check], timezone: str = "UTC") -> Any:
    """The stored value of the session-key attribute ``name`` given as ``value`` (text; a datetime or int is taken).

    ``session_datetime`` is read as a session start time (:func:`~element_session.times.parse_session_time`,
    in ``timezone`` where it has no offset) and becomes naive UTC; ``session_id`` is a whole number; a
    subject attribute passes its column's check in ``checks`` (else: text without NUL).

    Raises
    ------
    ValueError
        With the reason (:class:`~element_session.errors.TimeError` for a time).
    """
    if name == "session_datetime":
        return times.parse_session_time(value, timezone).utc
    if name == "session_id":
        return value if isinstance(value, int) else check_integer(str(value))
    if not isinstance(value, str):
        return value
    return checks[name](value) if name in checks else check_text(value)


def parse_session_key(
    session_module: ModuleType,
    params: Mapping[str, Any],
    *,
    subject: dj.Table | None = None,
    names: Sequence[str] | None = None,
    source: str = "query",
    timezone: str = "UTC",
) -> dict[str, Any]:
    """The primary key of one session (or, with ``names``, of its subject) from values given as text.

    Parameters
    ----------
    session_module : the activated session module; its ``Session`` names the key's attributes.
    params : attribute name -> value (text, as a query string or a file gives it), read by :func:`parse_key_value`.
    subject : the ``Subject`` table whose columns' checks apply to the subject attributes (default: text without NUL).
    names : the attributes to read (default: every primary-key attribute of ``Session``).
    source : the source named by the problems (``query``, ``arguments``, ...).
    timezone : the zone of a ``session_datetime`` without an offset.

    Raises
    ------
    InputError
        Naming every attribute that is missing (or empty) or cannot be used, and why.
    """
    names = list(session_module.Session.primary_key if names is None else names)
    checks = column_checks(subject) if subject is not None else {}
    named = "session" if {"session_datetime", "session_id"} & set(names) else "subject"
    problems: list[InputProblem] = []
    key: dict[str, Any] = {}
    for name in names:
        value = params.get(name)
        try:
            if value is None or value == "":
                raise ValueError(f"required to name the {named}")
            key[name] = parse_key_value(name, value, checks, timezone)
        except ValueError as err:
            problems.append(InputProblem(source, None, name, value, str(err)))
    raise_if_problems(problems)
    return key
