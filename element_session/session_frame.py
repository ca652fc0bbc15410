"""The table of sessions as a typed pandas DataFrame, read with one aggregating SQL query.

:func:`~element_session.query.session_table` is the public entry; this module builds its SQL and
its columns. The query selects the restricted ``Session`` rows (DataJoint's own ``make_sql()`` of
the expression, as a derived table) and joins each satellite table to them on the session key:
the one-to-one tables (zone, directory, note) with ``LEFT JOIN``, the one-to-many tables
(experimenters, projects, attributes) as correlated JSON aggregates (``JSON_ARRAYAGG`` /
``JSON_OBJECTAGG`` on MySQL and MariaDB, ``json_agg`` / ``json_object_agg`` on PostgreSQL), so
that a name holding any character, separators included, arrives intact. The server sends one row
per session; the client decodes every JSON aggregate of a column with one ``json.loads`` and builds
each column with pandas/numpy.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from . import timezones
from .formats import ATTRIBUTE_PREFIX
from .tables import other_key

#: ``group_concat_max_len`` for the query (MariaDB cuts JSON aggregates there): 1 GiB, the largest packet.
_GROUP_CONCAT_MAX = 2**30
_INTEGER = re.compile(r"(tiny|small|medium|big)?int(eger)?\d*\b|serial", re.IGNORECASE)
_FLOAT = re.compile(r"(double|float|real)", re.IGNORECASE)
_DATETIME = re.compile(r"(datetime|timestamp)", re.IGNORECASE)


def _dtype(attribute: Any, name: str) -> Any:
    """The pandas dtype of a column of ``Session``'s heading."""
    if name == "session_datetime":
        return pd.DatetimeTZDtype("us", "UTC")
    if attribute.string:
        return pd.StringDtype()
    kind = attribute.type.split("(")[0].split()[0]  # "int unsigned" -> int, "double precision" -> double
    if _INTEGER.fullmatch(kind):
        return pd.Int64Dtype()
    if _FLOAT.fullmatch(kind):
        return np.dtype("float64")
    if _DATETIME.fullmatch(kind):
        return np.dtype("datetime64[us]")
    return np.dtype(object)


def _sql(sessions: Any, m: ModuleType) -> tuple[str, list[str]]:
    """The aggregating SELECT and the names of its columns.

    ``session_datetime`` comes as whole microseconds since 1970 (an integer the client turns into a
    datetime column without parsing text). The one-to-many tables are correlated subqueries: index
    lookups on each table's primary key per session, linear in the number of sessions whatever the
    planner's statistics say. (Aggregating them in grouped derived tables joined to the sessions was
    faster on PostgreSQL with fresh statistics, but its planner then picked nested loops over the
    derived tables when the statistics were stale after a bulk load: quadratic, minutes at 100,000.)
    """
    adapter = m.Session.connection.adapter
    q = adapter.quote_identifier
    postgres = adapter.backend == "postgresql"
    keys = list(m.Session.primary_key)
    names = list(m.Session.heading.names)
    base = sessions.proj(*[n for n in names if n not in keys]) if list(sessions.primary_key) == keys else None
    if base is None or set(base.heading.names) != set(names):
        base = m.Session & sessions
    array_agg, object_agg = ("json_agg", "json_object_agg") if postgres else ("JSON_ARRAYAGG", "JSON_OBJECTAGG")
    as_text = "::text" if postgres else ""

    def on(alias: str) -> str:
        return " AND ".join(f"{alias}.{q(k)} = s.{q(k)}" for k in keys)

    def aggregate(expression: str, table: Any, alias: str) -> str:
        return f"(SELECT {expression}{as_text} FROM {table.full_table_name} AS {alias} WHERE {on(alias)})"

    stamp = q("session_datetime")
    if postgres:
        micros = f"(EXTRACT(EPOCH FROM s.{stamp}) * 1000000)::bigint"
    else:
        micros = f"TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', s.{stamp})"
    experimenter = q(other_key(m.SessionExperimenter, m.Session))
    project = q(other_key(m.ProjectSession, m.Session))
    selected = [
        *(micros if n == "session_datetime" else f"s.{q(n)}" for n in names),
        f"z.{q('session_timezone')}",
        aggregate(f"{array_agg}(e.{experimenter})", m.SessionExperimenter, "e"),
        aggregate(f"{array_agg}(p.{project})", m.ProjectSession, "p"),
        f"d.{q('session_dir')}",
        f"n.{q('session_note')}",
        aggregate(f"{object_agg}(a.{q('attribute_name')}, a.{q('attribute_value')})", m.Session.Attribute, "a"),
    ]
    joins = " ".join(
        f"LEFT JOIN {table.full_table_name} AS {alias} ON {on(alias)}"
        for table, alias in ((m.SessionTimezone, "z"), (m.SessionDirectory, "d"), (m.SessionNote, "n"))
    )
    sql = f"SELECT {', '.join(selected)} FROM ({base.make_sql()}) AS s {joins}"
    columns = [*names, "session_timezone", "experimenters", "projects", "session_dir", "session_note", "attributes"]
    return sql, columns


def _json_column(values: Sequence[str | bytes | None]) -> list[Any]:
    """The JSON texts of a column (None for SQL NULL) decoded with one parser call."""
    texts = ("null" if v is None else v.decode() if isinstance(v, bytes) else v for v in values)
    return json.loads("[" + ",".join(texts) + "]")


def _iso_offset(seconds: int) -> str:
    """``+HH:MM`` (``+HH:MM:SS`` where needed) of a UTC offset, as ``datetime.isoformat`` writes it."""
    return dt.datetime(2000, 1, 1, tzinfo=dt.timezone(dt.timedelta(seconds=int(seconds)))).isoformat()[19:]


def local_times(utc: pd.Series, zones: pd.Series) -> pd.Series:
    """ISO 8601 text with offset of each start time in its own zone (UTC where none is recorded).

    ``utc`` is ``datetime64[us, UTC]``, ``zones`` text (IANA names or fixed offsets); the result is
    pandas ``string``, ``<NA>`` where the time is missing or the stored zone cannot be used, and
    equal to ``datetime.isoformat()`` of :func:`element_session.timezones.local_time`. Works per
    distinct zone, not per row.
    """
    result = pd.Series(pd.NA, index=utc.index, dtype=pd.StringDtype())
    zones = zones.fillna("UTC")
    naive_utc = utc.dt.tz_localize(None)
    for zone in pd.unique(zones[utc.notna()]):
        try:
            info = timezones.zone_info(zone)
        except timezones.TimeError:
            continue  # a stored zone that cannot be used: <NA> (formats.session_problems names the session)
        rows = (zones == zone) & utc.notna()
        local = utc[rows].dt.tz_convert(info).dt.tz_localize(None)
        offsets = ((local - naive_utc[rows]) // pd.Timedelta(seconds=1)).to_numpy()
        text = np.datetime_as_string(local.to_numpy(), unit="s").astype(object)
        micro = (local.dt.microsecond).to_numpy()
        fraction = np.where(micro != 0, np.char.mod(".%06d", micro), "").astype(object)
        suffix = pd.Series(offsets).map({o: _iso_offset(o) for o in np.unique(offsets)}).to_numpy(dtype=object)
        result[rows] = text + fraction + suffix
    return result


def session_frame(sessions: Any, m: ModuleType) -> pd.DataFrame:
    """The table of sessions of the ``Session`` expression ``sessions`` of module ``m``.

    See :func:`element_session.query.session_table` for the columns and their dtypes.
    """
    sql, columns = _sql(sessions, m)
    connection = m.Session.connection
    if connection.adapter.backend != "postgresql":
        # MariaDB cuts JSON aggregates at group_concat_max_len (a warning, not an error)
        connection.query(f"SET SESSION group_concat_max_len = {_GROUP_CONCAT_MAX}")
    rows = connection.query(sql).fetchall()
    data = dict(zip(columns, zip(*rows, strict=True), strict=True)) if rows else {c: () for c in columns}
    keys = list(m.Session.primary_key)
    frame = pd.DataFrame(
        {
            name: pd.Series(list(data[name]), dtype=_dtype(m.Session.heading[name], name))
            if name != "session_datetime"
            else _utc_column(data[name])
            for name in m.Session.heading.names
        }
    )
    frame["session_timezone"] = pd.Series(list(data["session_timezone"]), dtype=pd.StringDtype())
    frame["session_datetime_local"] = local_times(frame["session_datetime"], frame["session_timezone"])
    for column in ("experimenters", "projects"):
        lists = _json_column(data[column])
        for names in lists:
            if names is not None and len(names) > 1:
                names.sort()  # in place: no new list per session
        frame[column] = pd.Series([[] if names is None else names for names in lists], dtype=object)
    for column in ("session_dir", "session_note"):
        frame[column] = pd.Series(list(data[column]), dtype=pd.StringDtype())
    attributes = pd.DataFrame.from_records([a or {} for a in _json_column(data["attributes"])], index=frame.index)
    attributes = attributes.reindex(columns=sorted(attributes.columns)).astype(pd.StringDtype())
    for name in attributes.columns:
        frame[ATTRIBUTE_PREFIX + name] = attributes[name]
    return frame.sort_values(keys, na_position="last", kind="stable", ignore_index=True)


def _utc_column(micros: Sequence[int | None]) -> pd.Series:
    """Microseconds since 1970 in UTC (None where missing) as ``datetime64[us, UTC]``."""
    counts = pd.array(list(micros), dtype=pd.Int64Dtype()).to_numpy(dtype="int64", na_value=np.iinfo("int64").min)
    return pd.Series(counts.view("datetime64[us]")).dt.tz_localize("UTC")  # int64's minimum is NaT
