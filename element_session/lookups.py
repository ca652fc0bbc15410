"""The one check of lookup values: what a caller gives to find rows, before it reaches SQL.

Every entry point that looks rows up by values from a person passes them through
:func:`check_lookups`: :func:`~element_session.query.find_sessions` (and so the web interface's
filters and ``element-session sessions``), the restrictions of
:func:`~element_session.populate.populate`, :func:`~element_session.jobs.list_jobs` and
:func:`~element_session.jobs.clear_jobs` (``--restrict`` on the command line), and
:func:`~element_session.paths.get_session_directory`.

DataJoint writes a dict restriction's values into the SQL text: a float NaN (what pandas gives for
an empty cell) becomes the bare word ``nan`` ("Unknown column 'nan'"), a list becomes the text of
the list, a ``numpy.datetime64`` invalid SQL. So a lookup value must be one of:

- text without a NUL character (no server compares it; PostgreSQL cannot receive it);
- a whole number, a finite real number, a ``bool`` or a ``decimal.Decimal`` (numpy's scalars included);
- a ``datetime.date``, ``datetime.datetime`` or ``datetime.time`` (``pandas.Timestamp`` included);
- a ``uuid.UUID``.

A time is looked up as the instant it names (:func:`as_stored`): DataJoint writes it into the SQL as
its text, offset included, and both servers drop the offset, so an aware time in the lab's zone would
look up (and a status change would change) the session of its wall-clock time read as UTC.

A *missing value* (float NaN, ``numpy.nan``, ``pandas.NA``, ``pandas.NaT``, ``numpy.datetime64('NaT')``,
``Decimal('NaN')``) is refused everywhere: it never means "not given", since a cell that pandas read
as empty is more often a mistake than a wish to select everything. ``None`` means "not given" for a
keyword argument (``find_sessions(project=None)`` restricts nothing); inside a restriction dict it
means SQL ``IS NULL`` (as in DataJoint, e.g. sessions without a start time); in a key that must name
one row (``get_session_directory``) it is refused.

A value is also read as the attribute it is looked up in holds it (:func:`attribute_value`, by the same entry
points): text for a number attribute must be a number, and a number for a text attribute is refused.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import numbers
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from datajoint.declare import TYPE_PATTERN

from .errors import InputProblem, one_problem, raise_if_problems
from .times import time_argument

#: Key attributes that hold text, by their DataJoint or server type (a number given for one is refused).
_TEXT_TYPE = re.compile(r"(var)?char|character|enum|(tiny|medium|long)?text", re.IGNORECASE)
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def holds_nul(value: Any) -> bool:
    """Whether a lookup value (text, or a list or dict of values) holds a NUL character."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(holds_nul(v) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return any(holds_nul(v) for v in value)
    return False


def is_missing(value: Any) -> bool:
    """Whether ``value`` is a missing value of pandas or numpy (NaN, ``pandas.NA``, ``NaT``), not None."""
    if value is None or isinstance(value, str):
        return False
    if isinstance(value, numbers.Real | decimal.Decimal):
        try:
            return math.isnan(value)
        except (TypeError, ValueError):
            return False
    if isinstance(value, np.datetime64 | np.timedelta64):
        return bool(np.isnat(value))
    kind = type(value)
    return kind.__module__.startswith("pandas") and kind.__name__ in ("NAType", "NaTType")


def lookup_problem(value: Any, *, required: bool = False) -> str | None:
    """Why ``value`` cannot be a lookup value (the module's rules), or None if it can.

    ``required``: None is refused too (a key that must name one row).
    """
    if value is None:
        return "a value is required here (None was given)" if required else None
    if is_missing(value):
        return (
            "a missing value (NaN, as pandas gives for an empty cell) cannot be looked up: "
            "give a value, or leave the argument out to select every row"
        )
    if isinstance(value, str):
        return "contains a NUL character" if "\x00" in value else None
    if isinstance(value, numbers.Integral | np.bool_ | dt.date | dt.time | uuid.UUID):
        return None
    if isinstance(value, numbers.Real | decimal.Decimal):
        return "not a finite number" if math.isinf(value) else None
    kind = type(value)
    shown = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    return f"not a single value but a {shown}: give text, a number or a time"


def check_lookups(
    source: str, values: Mapping[str, Any], *, required: bool = False, several: frozenset[str] = frozenset()
) -> None:
    """Refuse every lookup value of ``values`` (argument or attribute name -> value) that cannot be looked up.

    Parameters
    ----------
    source : str
        The source the problems name: ``arguments``, ``restriction``, ``query``.
    values : Mapping
        Name -> value. A name in ``several`` may also hold a list, tuple or set of values, each a value
        or a dict of values (e.g. ``find_sessions(subject=[...])``); a dict's items are checked under
        ``name.key``.
    required : bool
        Refuse None as well (a key naming one row); otherwise None means "not given" or ``IS NULL``.

    Raises
    ------
    InputError
        One problem per value refused, naming the argument (or attribute), the value and why.
    """
    raise_if_problems(lookup_problems(source, values, required=required, several=several))


def lookup_problems(
    source: str, values: Mapping[str, Any], *, required: bool = False, several: frozenset[str] = frozenset()
) -> list[InputProblem]:
    """The problems :func:`check_lookups` raises, as a list (empty if every value can be looked up)."""
    problems: list[InputProblem] = []
    for name, value in values.items():
        items = value if name in several and isinstance(value, list | tuple | set | frozenset) else [value]
        for item in items:
            parts = item.items() if name in several and isinstance(item, Mapping) else [(None, item)]
            for key, part in parts:
                reason = lookup_problem(part, required=required)
                if reason:
                    problems.append(InputProblem(source, None, name if key is None else f"{name}.{key}", part, reason))
    return problems


def check_restriction(source: str, restriction: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
    """:func:`check_lookups` of a restriction: a dict of attribute values, or a list of such dicts.

    A value None means ``IS NULL``, as in DataJoint.

    Raises
    ------
    InputError
        As :func:`check_lookups`, naming each attribute.
    """
    items = [restriction] if isinstance(restriction, Mapping) else restriction
    raise_if_problems([problem for values in items for problem in lookup_problems(source, values)])


def as_stored(
    table: Any, values: Mapping[str, Any], source: str = "arguments", argument: str | None = None
) -> dict[str, Any]:
    """``values`` (attribute name -> lookup value) as ``table``'s attributes hold them (:func:`attribute_value`);
    names that are not attributes of ``table`` stay as they are.

    Raises
    ------
    InputError
        Naming ``source`` and the attribute (as ``argument['name']`` where the values are the dict
        ``argument`` of a call), as :func:`attribute_value` does.
    """
    heading = table.heading
    return {
        name: attribute_value(f"{argument}[{name!r}]" if argument else name, value, heading[name], source)
        if name in heading.names
        else value
        for name, value in values.items()
    }


def attribute_value(name: str, value: Any, attribute: Any, source: str = "restriction", timezone: str = "UTC") -> Any:
    """``value`` as the key attribute ``attribute`` (DataJoint's heading entry) named ``name`` holds it.

    A time of a time attribute (a session's start) becomes its stored form, naive in UTC
    (:func:`~element_session.times.time_argument`): DataJoint writes a restriction's time into the SQL
    as its text, offset included, and both servers drop the offset (MariaDB with a warning,
    PostgreSQL's ``timestamp`` silently), so ``09:08:09+02:00`` would look up 09:08:09 UTC. An aware
    ``datetime`` (a ``pandas.Timestamp`` too) or ISO 8601 text with an offset becomes the UTC time of its
    instant; a naive time, or text without an offset, is read in ``timezone`` (UTC: as stored).

    The servers compare a number with text as numbers (MySQL: ``'abc'`` is 0, ``'3x'`` is 3, so
    ``item=abc`` selects item 0) or not at all (PostgreSQL: "operator does not exist"). So text given
    for a number attribute (what ``--restrict`` gives) must be a number, a whole one for an integer
    attribute, and is read as one; a number given for a text attribute (pandas reads ``001`` as 1) is
    refused. None (``IS NULL``) and any other value are returned as they are.

    Raises
    ------
    InputError
        Naming ``source`` and ``name``, the value and the type the attribute holds (or a time that is not one).
    """
    if value is not None and attribute.type.startswith(("datetime", "timestamp")):
        return time_argument(name, value, timezone, source=source)
    if attribute.numeric and isinstance(value, str):
        text = value.strip()
        if TYPE_PATTERN["INTEGER"].match(attribute.type):
            if _WHOLE_NUMBER.fullmatch(text):
                return int(text)
            raise one_problem(source, name, value, "not a whole number, which this attribute holds")
        try:
            number = decimal.Decimal(text)
        except decimal.InvalidOperation:
            number = decimal.Decimal("NaN")
        if not number.is_finite():
            raise one_problem(source, name, value, "not a number, which this attribute holds")
        return number
    is_number = isinstance(value, numbers.Number | decimal.Decimal) and not isinstance(value, bool | np.bool_)
    if is_number and _TEXT_TYPE.match(attribute.original_type or attribute.type):
        raise one_problem(
            source, name, value, "a number for a text attribute: give the text as it is stored (1 may be '01')"
        )
    return value
