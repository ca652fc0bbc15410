"""Pages of sessions answered by the database: capped counts, ``ORDER BY ... LIMIT``, and keyset cursors.

What stays cheap at 10^6 sessions: the keys of one page are read along an index (the primary key,
or the start-time index of :mod:`element_session.upgrade.indexes`), one more than the page holds so
that the next page is known to exist without counting; a count stops at :data:`COUNT_CAP` + 1
rows (:func:`~element_session.query.count_sessions`), so a large selection reads "more than
10,000"; and a *cursor* (``after``: the last session's key, as JSON text) starts a page after that
session with a condition on the index instead of an ``OFFSET`` that walks every earlier entry.

Values from a request reach SQL only as query parameters; column names come from the table's heading.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from ..errors import one_problem

__all__ = ["COUNT_CAP", "count_after", "cursor", "order_columns", "page_keys", "read_cursor"]

COUNT_CAP = 10_000  # sessions counted at most; beyond it a selection has "more than COUNT_CAP"


def order_columns(order: Sequence[str]) -> list[tuple[str, bool]]:
    """``ORDER BY`` items such as ``"session_datetime DESC"`` as (column, descending) pairs."""
    pairs = []
    for item in order:
        column, _, direction = item.partition(" ")
        pairs.append((column, direction.strip().upper() == "DESC"))
    return pairs


def _after_condition(quote: Any, order: list[tuple[str, bool]], key: dict[str, Any]) -> tuple[str, list[Any]]:
    """The condition "after ``key`` in ``order``" with its parameters, led by a range on the first column.

    ``(c1 > v1) OR (c1 = v1 AND ((c2 > v2) OR (c2 = v2 AND ...)))`` (``<`` where descending), and
    ``c1 >= v1`` before it, so that the server reads the first column's index from ``v1`` on.
    """
    sql, args = "", []
    for column, descending in reversed(order):
        strict = f"{quote(column)} {'<' if descending else '>'} %s"
        if not sql:
            sql, args = strict, [key[column]]
        else:
            sql, args = f"{strict} OR ({quote(column)} = %s AND ({sql}))", [key[column], key[column], *args]
    first, descending = order[0]
    return f"{quote(first)} {'<=' if descending else '>='} %s AND ({sql})", [key[first], *args]


def _selected(found: Any, order: Sequence[str], after: dict[str, Any] | None) -> tuple[str, list[Any]]:
    """``FROM ... WHERE ...`` of ``found``, "after ``after`` in ``order``" added, and its parameters."""
    where, args = found.where_clause(), list[Any]()
    if after is not None:
        condition, args = _after_condition(found.connection.adapter.quote_identifier, order_columns(order), after)
        where = f"{where} AND ({condition})" if where else f" WHERE {condition}"
    return f"{found.from_clause()}{where}", args


def page_keys(
    found: Any, names: list[str], order: Sequence[str], limit: int, offset: int = 0, after: dict[str, Any] | None = None
) -> list[tuple]:
    """Up to ``limit`` + 1 keys (tuples in ``names``' order) of ``found`` in ``order``, from ``offset`` after ``after``.

    ``found`` is a restriction of ``Session`` (:func:`~element_session.query.find_sessions`);
    ``order`` is ``ORDER BY`` items over columns of ``Session`` (``"session_datetime DESC"``), whose
    last items make the order total; ``after`` a row of those columns. One statement: the
    server orders, skips and limits, reading the key columns only (a covering index scan).
    The row beyond ``limit`` tells that a next page exists.
    """
    quote = found.connection.adapter.quote_identifier
    selected, args = _selected(found, order, after)
    columns = ", ".join(quote(n) for n in names)
    by = ", ".join(f"{quote(c)}{' DESC' if d else ''}" for c, d in order_columns(order))
    sql = f"SELECT {columns} FROM {selected} ORDER BY {by} LIMIT {int(limit) + 1} OFFSET {int(offset)}"
    return [tuple(row) for row in found.connection.query(sql, args=tuple(args)).fetchall()]


def count_after(found: Any, order: Sequence[str], after: dict[str, Any] | None, cap: int) -> int:
    """How many rows of ``found`` come after ``after`` in ``order`` (all, without ``after``), counted up to ``cap``."""
    selected, args = _selected(found, order, after)
    sql = f"SELECT count(*) FROM (SELECT 1 AS one FROM {selected} LIMIT {int(cap)}) AS counted"
    return int(found.connection.query(sql, args=tuple(args)).fetchone()[0])


def cursor(key: Sequence[Any]) -> str:
    """The ``after`` text of a session's key (values in primary-key order; times as UTC ISO text)."""
    return json.dumps([v.isoformat() + "Z" if isinstance(v, dt.datetime) else v for v in key], ensure_ascii=False)


def read_cursor(text: str, names: list[str]) -> dict[str, str]:
    """The key values (as text, by attribute name) of ``after`` text made by :func:`cursor`.

    Raises :class:`InputError` naming ``after`` when it is not such text for a key of ``names``.
    """
    reason = "not a cursor of this list: give the 'after' of a previous answer's 'next'"
    try:
        values = json.loads(text)
    except ValueError:
        raise one_problem("query", "after", text, reason) from None
    if not isinstance(values, list) or len(values) != len(names) or any(isinstance(v, list | dict) for v in values):
        raise one_problem("query", "after", text, reason)
    if any(v is None for v in values):
        raise one_problem("query", "after", text, reason)
    return {name: v if isinstance(v, str) else json.dumps(v) for name, v in zip(names, values, strict=True)}
