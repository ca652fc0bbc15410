"""The table of sessions as a typed pandas DataFrame, read with a fixed number of SQL statements.

:func:`~element_session.query.session_table` is the public entry; this module reads the rows and
builds the typed columns. The first statement selects the restricted ``Session`` rows (DataJoint's
own ``make_sql()`` of the expression, as a derived table) with the one-to-one tables (zone,
directory, note) joined on the session key by ``LEFT JOIN``. The one-to-many tables
(experimenters, projects, attributes) are read the way each server does fastest:

- **MySQL, MariaDB**: in that same statement, as correlated JSON aggregates (``JSON_ARRAYAGG`` /
  ``JSON_OBJECTAGG``), decoded with one ``json.loads`` per column: the server sends one row per
  session, and PyMySQL, which parses every value in Python, decodes far fewer values than the
  tables hold (0.43x the plain fetch of the seven tables at 100,000 sessions).
- **PostgreSQL**, for a page of sessions given by their keys (at most :data:`AGGREGATED_KEYS`): the
  same one statement (``json_agg`` / ``json_object_agg``): no pandas, no second statement, no
  snapshot; half the time of the way below for 50 or 100 sessions (benchmarks/README.md, "a page
  in one statement").
- **PostgreSQL**, otherwise: their rows themselves, in one ``COPY (SELECT ...) TO STDOUT`` in CSV parsed by
  pandas' C reader, put in place by the session key on the client. Aggregating on the server cost
  more than the whole plain fetch: each correlated subplan about 3 us a session, plus JIT
  compilation of the costly plan (2.7x the plain fetch at 100,000 sessions); grouped derived
  tables cost as much in hashing and JSON building, and let the planner go quadratic on stale
  statistics. Scans, ``LEFT JOIN``s on the key and semi-joins have only linear plans.

Names holding any character (separators, quotes, newlines, any NUL-free unicode) arrive intact
either way: JSON on MySQL, CSV read with no NA, type or whitespace conversion on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from . import times
from ._collector import cycle_collection_paused
from .columns import ATTRIBUTE_PREFIX
from .database import is_mariadb
from .status import DEFAULT_STATUS
from .tables import other_key

#: ``group_concat_max_len`` for the query (MariaDB cuts JSON aggregates there): 1 GiB, the largest packet.
_GROUP_CONCAT_MAX = 2**30
#: PostgreSQL: sessions given by keys read by :func:`_read_aggregated` up to this many, by :func:`_read_postgresql`
#: beyond. At 3 us a session and correlated subplan the aggregates stay far below the planner's
#: ``jit_above_cost`` (100,000), so no JIT compilation starts without the ``SET LOCAL jit = off`` of a
#: transaction; a web page holds at most 100 sessions unless the API asks for more.
AGGREGATED_KEYS = 1000
_SAVEPOINT = "element_session_table"
_ONE_TO_ONE = ("session_timezone", "session_dir", "session_note", "session_status")
_INTEGER = re.compile(r"(tiny|small|medium|big)?int(eger)?\d*\b|serial", re.IGNORECASE)
_FLOAT = re.compile(r"(double|float|real)", re.IGNORECASE)
_DATETIME = re.compile(r"(datetime|timestamp)", re.IGNORECASE)


@dataclass
class _Read:
    """What a reader returns: one entry per session, in the order of the rows it read."""

    columns: dict[str, Sequence[Any]]  # Session's heading (session_datetime in microseconds), zone, dir, note, status
    lists: dict[str, list[list[str]]]  # experimenters, projects: the names of each session, sorted
    attributes: Mapping[str, Sequence[Any] | np.ndarray]  # attribute name -> each session's text value, None: absent


@dataclass(frozen=True)
class SessionRows:
    """Sessions as the columns of :func:`~element_session.query.session_table`, sorted by key, with plain values.

    The one definition of a session's row: :func:`session_frame` types these columns, the web pages
    and the API read them as they are (:meth:`records`). ``columns`` maps each column name of
    ``session_table``, in its order (``attr.<name>`` sorted), to a numpy ``object`` array of one value
    a session: text, integers, lists of names, ``None`` where missing; ``session_datetime`` as whole
    microseconds since 1970 in UTC (an ``int``, or ``None``).
    """

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def records(self) -> list[dict[str, Any]]:
        """One dict a session (column name -> value), ``session_datetime`` an aware UTC ``datetime`` or None."""
        names = list(self.columns)
        values = [
            [None if v is None else _EPOCH + dt.timedelta(microseconds=v) for v in column.tolist()]
            if name == "session_datetime"
            else column.tolist()
            for name, column in self.columns.items()
        ]
        return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def session_rows(sessions: Any, m: ModuleType, keys: Sequence[Sequence[Any]] | None = None) -> SessionRows:
    """The sessions of the ``Session`` expression ``sessions`` of module ``m`` as :class:`SessionRows`.

    With ``keys`` (tuples of ``Session``'s primary-key values in its order, ``session_datetime``
    naive UTC, as fetched), ``sessions`` is not read: the sessions are those of the keys, selected by
    one ``IN`` condition whose values are query parameters (no restriction built per key); a key
    that is no session is left out. Leaves the connection's settings and transaction as they were
    (see :func:`_postgresql_snapshot`).
    """
    if keys is None:
        base = _base(sessions, m)
        source = _Sessions(f"({base.make_sql()}) AS s", (), base, "", ())
    else:
        connection, names = m.Session.connection, m.Session.primary_key
        listed, args = key_condition(connection, names, keys, row_list=True)
        sql = f"(SELECT * FROM {m.Session.full_table_name}{along_primary_key(connection)} WHERE {listed}) AS s"
        source = _Sessions(sql, args, None, *key_condition(connection, names, keys))
    postgresql = m.Session.connection.adapter.backend == "postgresql"
    read = _read_postgresql if postgresql and (keys is None or len(keys) > AGGREGATED_KEYS) else _read_aggregated
    with cycle_collection_paused():  # a sixth of the time at 100,000 sessions otherwise
        if keys is not None and not keys:
            return _rows(_Read({n: () for n in [*m.Session.heading.names, *_ONE_TO_ONE]}, {}, {}), m)
        return _rows(read(source, m), m)


@dataclass(frozen=True)
class _Sessions:
    """The sessions a reader reads."""

    sql: str  # a FROM item of the sessions, with Session's heading, named s
    args: tuple  # its query parameters
    base: Any  # their expression of Session; None where they are given by keys
    condition: str  # the keys' condition on a table holding Session's key; "" with base
    condition_args: tuple  # its query parameters


def session_frame(sessions: Any, m: ModuleType) -> pd.DataFrame:
    """The table of sessions of the ``Session`` expression ``sessions`` of module ``m``.

    See :func:`element_session.query.session_table` for the columns and their dtypes: the typed
    columns of :func:`session_rows`. Leaves the connection's settings and transaction as they were.
    """
    rows = session_rows(sessions, m)
    with cycle_collection_paused():
        return _frame(rows, m)


def key_condition(
    connection: Any, names: Sequence[str], keys: Sequence[Sequence[Any]], *, row_list: bool = False
) -> tuple[str, tuple]:
    """The condition that the columns ``names`` hold one of ``keys`` (tuples of their values, in that order),
    and its query parameters.

    MySQL/MariaDB, and PostgreSQL with ``row_list``: ``(a, b) IN ((%s, %s), ...)``, the keys' values
    flattened. PostgreSQL: ``(a, b) IN (SELECT * FROM unnest(%s, %s))``, one array a column: a table
    holding several rows a key (attributes, experimenters, projects) or a jobs table is read with an
    index scan a key, where its planner turned a list of 50 row constructors into a 50-arm
    ``BitmapOr`` a table (1.7 ms of planning for 0.4 ms of execution at 10^4 sessions; 5.6 ms for the
    page's three tables). ``row_list`` is for ``Session`` itself: there the list is planned in 0.5 ms
    along its start-time index, where the arrays' semi-join scans the table (1.9 ms at 10^4). No keys:
    a condition that holds for no row.
    """
    if not keys:
        return "1 = 0", ()
    quote = connection.adapter.quote_identifier
    columns = ", ".join(quote(n) for n in names)
    if connection.adapter.backend == "postgresql" and not row_list:
        arrays = ", ".join(["%s"] * len(names))
        return f"({columns}) IN (SELECT * FROM unnest({arrays}))", tuple(map(list, zip(*keys, strict=True)))
    row = f"({', '.join(['%s'] * len(names))})"
    return f"({columns}) IN ({', '.join([row] * len(keys))})", tuple(v for key in keys for v in key)


def along_primary_key(connection: Any) -> str:
    """MySQL/MariaDB: `` FORCE INDEX (PRIMARY)``, to follow a table's name whose rows :func:`key_condition`
    selects by their primary key (PostgreSQL: ``""``).

    With a secondary index that also holds the key's columns (the start-time index), MariaDB's
    optimizer weighs both for a list of keys and picks the secondary one: 100 keys of one subject
    took 21 ms instead of 5 ms along the primary key (10^4 sessions).
    """
    return "" if connection.adapter.backend == "postgresql" else " FORCE INDEX (PRIMARY)"


def _base(sessions: Any, m: ModuleType) -> Any:
    """``sessions`` as an expression with ``Session``'s heading: its own projection, else a restriction of it."""
    keys = list(m.Session.primary_key)
    names = list(m.Session.heading.names)
    base = sessions.proj(*[n for n in names if n not in keys]) if list(sessions.primary_key) == keys else None
    return base if base is not None and set(base.heading.names) == set(names) else m.Session & sessions


def _select(source: str, m: ModuleType, extra: Sequence[str]) -> str:
    """The SELECT of the sessions of ``source`` (``... AS s``) with their zone, directory, note and status, then
    ``extra``.

    ``session_datetime`` comes as whole microseconds since 1970 (an integer the client turns into a
    datetime column without parsing text). The one-to-one tables are joined on their primary key,
    so that every plan the planner may pick is linear in the number of sessions.
    """
    adapter = m.Session.connection.adapter
    q = adapter.quote_identifier
    stamp = q("session_datetime")
    if adapter.backend == "postgresql":
        micros = f"(EXTRACT(EPOCH FROM s.{stamp}) * 1000000)::bigint"
    else:
        micros = f"TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', s.{stamp})"
    selected = [
        *(micros if n == "session_datetime" else f"s.{q(n)}" for n in m.Session.heading.names),
        *(f"{alias}.{q(name)}" for alias, name in zip("zdnt", _ONE_TO_ONE, strict=True)),
        *extra,
    ]
    joins = " ".join(
        f"LEFT JOIN {table.full_table_name} AS {alias} ON {_on(alias, m)}"
        for table, alias in (
            (m.SessionTimezone, "z"),
            (m.SessionDirectory, "d"),
            (m.SessionNote, "n"),
            (m.SessionStatus, "t"),
        )
    )
    return f"SELECT {', '.join(selected)} FROM {source} {joins}"


def _on(alias: str, m: ModuleType) -> str:
    q = m.Session.connection.adapter.quote_identifier
    return " AND ".join(f"{alias}.{q(k)} = s.{q(k)}" for k in m.Session.primary_key)


def _columns(rows: Sequence[tuple], width: int) -> list[tuple]:
    """The columns of the fetched ``rows`` (``width`` empty columns for no rows)."""
    return list(zip(*rows, strict=True)) if rows else [()] * width


# -- MySQL and MariaDB, and a page of PostgreSQL: one statement with correlated JSON aggregates -----
def _read_aggregated(source: _Sessions, m: ModuleType) -> _Read:
    """The sessions of ``source`` with their experimenters, projects and attributes as JSON aggregates."""
    connection = m.Session.connection
    q = connection.adapter.quote_identifier
    postgresql = connection.adapter.backend == "postgresql"
    array, members = ("json_agg({})::text", "json_object_agg({}, {})::text") if postgresql else _MYSQL_AGGREGATES

    def aggregate(function: str, table: Any, alias: str, *columns: str) -> str:
        expression = function.format(*(f"{alias}.{q(c)}" for c in columns))
        return f"(SELECT {expression} FROM {table.full_table_name} AS {alias} WHERE {_on(alias, m)})"

    names = [*m.Session.heading.names, *_ONE_TO_ONE]
    sql = _select(
        source.sql,
        m,
        [
            aggregate(array, m.SessionExperimenter, "e", other_key(m.SessionExperimenter, m.Session)),
            aggregate(array, m.ProjectSession, "p", other_key(m.ProjectSession, m.Session)),
            aggregate(members, m.Session.Attribute, "a", "attribute_name", "attribute_value"),
        ],
    )
    # MariaDB cuts JSON aggregates at group_concat_max_len (a warning, not an error): raised for this
    # statement alone (one round trip), or on MySQL for the session and set back after it
    if postgresql:
        rows = connection.query(sql, args=source.args).fetchall()
    elif is_mariadb(connection):
        sql = f"SET STATEMENT group_concat_max_len = {_GROUP_CONCAT_MAX} FOR {sql}"
        rows = connection.query(sql, args=source.args).fetchall()
    else:
        with _mysql_session_variable(connection, "group_concat_max_len", _GROUP_CONCAT_MAX):
            rows = connection.query(sql, args=source.args).fetchall()
    *values, experimenters, projects, attributes = _columns(rows, len(names) + 3)
    objects = _json_column(attributes)
    attribute_names = sorted({name for found in objects if found for name in found})
    return _Read(
        columns=dict(zip(names, values, strict=True)),
        lists={"experimenters": _sorted_lists(experimenters), "projects": _sorted_lists(projects)},
        attributes={a: [found.get(a) if found else None for found in objects] for a in attribute_names},
    )


_MYSQL_AGGREGATES = ("JSON_ARRAYAGG({})", "JSON_OBJECTAGG({}, {})")


@contextlib.contextmanager
def _mysql_session_variable(connection: Any, name: str, value: int) -> Iterator[None]:
    """The session variable ``name`` set to the integer ``value`` inside, and back to its own value after."""
    (before,) = connection.query(f"SELECT @@SESSION.{name}").fetchone()
    connection.query(f"SET SESSION {name} = {int(value)}")
    try:
        yield
    finally:
        connection.query(f"SET SESSION {name} = {int(before)}")


def _sorted_lists(values: Sequence[str | bytes | None]) -> list[list[str]]:
    """The JSON arrays of a column (None for SQL NULL: no names), each sorted in place."""
    lists = _json_column(values)
    for i, names in enumerate(lists):
        if names is None:
            lists[i] = []
        elif len(names) > 1:
            names.sort()
    return lists


def _json_column(values: Sequence[str | bytes | None]) -> list[Any]:
    """The JSON texts of a column (None for SQL NULL) decoded with one parser call."""
    texts = ("null" if v is None else v.decode() if isinstance(v, bytes) else v for v in values)
    return json.loads("[" + ",".join(texts) + "]")


# -- PostgreSQL: the sessions, then the one-to-many rows in one COPY, put in place by key -------------
def _read_postgresql(source: _Sessions, m: ModuleType) -> _Read:
    """The sessions of ``source`` with zone, directory and note, then the one-to-many rows of those sessions.

    The one-to-many rows come in one ``COPY`` (:func:`_copy`): a ``UNION ALL`` of each table's rows,
    tagged by table and restricted to the sessions by DataJoint's semi-join with their expression,
    or by the keys' condition where they are given by keys; not restricted when they are every
    session (then the one-to-one tables are merge-joined, see
    :func:`_postgresql_snapshot`). The session key comes as text from both statements
    (PostgreSQL's output of each key value) and places every row by a hash lookup of its key among
    the sessions' keys (``pandas.MultiIndex.get_indexer``). Keys compare by their text:
    PostgreSQL's collations are deterministic (two texts are equal only if their bytes are), so a
    foreign key holds the same text as the key it refers to. A row whose session was not read
    (only inside a caller's READ COMMITTED transaction, when another one commits between the two
    statements) is left out, as its session is.
    """
    keys = list(m.Session.primary_key)
    heading = list(m.Session.heading.names)
    names = [*heading, *_ONE_TO_ONE]
    q = m.Session.connection.adapter.quote_identifier
    sql = _select(source.sql, m, [f"s.{q(k)}::text" for k in keys])
    base = source.base
    everything = base is not None and base.make_sql() == m.Session().proj(*heading[len(keys) :]).make_sql()
    satellites = {  # tag: table and its value columns (at most two)
        0: (m.SessionExperimenter, [other_key(m.SessionExperimenter, m.Session)]),
        1: (m.ProjectSession, [other_key(m.ProjectSession, m.Session)]),
        2: (m.Session.Attribute, ["attribute_name", "attribute_value"]),
    }
    union = " UNION ALL ".join(
        f"SELECT {tag}, x.*{', NULL' * (2 - len(fields))} "
        f"FROM ({(table() if everything or base is None else table() & base).make_sql([*keys, *fields])}) AS x"
        + (f" WHERE {source.condition}" if base is None else "")
        for tag, (table, fields) in satellites.items()
    )
    connection = m.Session.connection
    with _postgresql_snapshot(connection, merge_joins=everything):
        cursor = connection.query(sql, args=source.args)
        rows = cursor.fetchall()
        copied = _copy(connection, cursor, union, source.condition_args * len(satellites), len(keys) + 3)
        tags, *satellite_keys, first, second = copied
    n = len(rows)
    columns = _columns(rows, len(names) + len(keys))
    index = pd.MultiIndex.from_arrays([np.asarray(column, dtype=object) for column in columns[len(names) :]])
    positions = index.get_indexer(pd.MultiIndex.from_arrays(satellite_keys))

    def rows_of(tag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        chosen = (tags == tag) & (positions >= 0)
        return positions[chosen], first[chosen], second[chosen]

    values = dict(zip(names, columns, strict=False))
    lists = {name: _lists(*rows_of(tag)[:2], n) for tag, name in ((0, "experimenters"), (1, "projects"))}
    return _Read(columns=values, lists=lists, attributes=_pivot(*rows_of(2), n))


@contextlib.contextmanager
def _postgresql_snapshot(connection: Any, merge_joins: bool) -> Iterator[None]:
    """The statements inside see one snapshot, without JIT compilation (and with merge joins only).

    JIT compilation cost 0.4 s of the 1.5 s of server time of the correlated aggregates at 100,000
    sessions; the planner turns it on by estimated cost alone, and these plans gain nothing from it. With
    ``merge_joins`` (for every session) the ``LEFT JOIN``s of the one-to-one tables are merge
    joins of scans in key order, whatever the planner's statistics say: linear, and a third of the
    server's time of its hash joins. (Not for a restriction: a merge join reads the whole index of
    a joined table, which would make one subject's sessions cost as much as all of them.)

    Outside a transaction this is a ``REPEATABLE READ READ ONLY`` transaction, rolled back at the
    end; inside the caller's transaction, a savepoint rolled back to and released at the end (the
    statements see what the caller's transaction sees, and a failing one does not abort it).
    Either way every ``SET LOCAL`` ends with it: the connection's settings, and its transaction,
    are as they were.
    """
    from psycopg2.extensions import TRANSACTION_STATUS_IDLE

    idle = connection.query("SELECT 1").connection.info.transaction_status == TRANSACTION_STATUS_IDLE
    settings = ["jit = off", *(["enable_hashjoin = off", "enable_nestloop = off"] if merge_joins else [])]
    if idle:
        begin, end = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "ROLLBACK"
    else:
        begin, end = f"SAVEPOINT {_SAVEPOINT}", f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}"
    try:
        connection.query("; ".join([begin, *(f"SET LOCAL {setting}" for setting in settings)]))  # one round trip
        yield
    except BaseException:
        with contextlib.suppress(Exception):  # the error that brought us here is the one to report
            connection.query(end)
        raise
    connection.query(end)


def _copy(connection: Any, cursor: Any, sql: str, args: tuple, width: int) -> list[np.ndarray]:
    """The ``width`` columns of ``sql`` (its parameters ``args``) by ``COPY ... TO STDOUT`` in CSV: the first
    integers, the rest text.

    pandas' C reader keeps each text exactly as the server wrote it: no NA detection, type
    inference or whitespace stripping (the server quotes a value holding separators, quotes or
    newlines, and the empty text). The first column being an integer, no text can start the data
    with what a reader would take for a byte order mark. A NULL arrives as the empty text: only
    where the query pads a row.
    """
    # DataJoint writes a '%' of a condition as '%%' for the driver's parameter formatting, which
    # copy_expert does not do: format the statement (and its parameters) as query(sql, args) would
    statement = cursor.mogrify(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, ENCODING 'UTF8')", args).decode()
    buffer = io.BytesIO()
    try:
        cursor.copy_expert(statement, buffer)
    except Exception as err:
        raise connection.adapter.translate_error(err, statement) from err
    if not buffer.tell():
        return [np.empty(0, dtype="int64"), *[np.empty(0, dtype=object)] * (width - 1)]
    buffer.seek(0)
    types = {0: np.dtype("int64"), **dict.fromkeys(range(1, width), np.dtype(object))}
    frame = pd.read_csv(buffer, header=None, dtype=types, na_filter=False, skip_blank_lines=False, encoding="utf-8")
    return [frame[i].to_numpy() for i in frame.columns]


def _lists(positions: np.ndarray, values: np.ndarray, n: int) -> list[list[str]]:
    """The sorted ``values`` of each of ``n`` sessions (``positions``: the session of each value)."""
    counts = np.bincount(positions, minlength=n)
    ends = np.cumsum(counts)
    flat = values[np.argsort(positions, kind="stable")].tolist()
    lists = [flat[start:end] for start, end in zip((ends - counts).tolist(), ends.tolist(), strict=True)]
    for i in np.flatnonzero(counts > 1).tolist():
        lists[i].sort()
    return lists


def _pivot(positions: np.ndarray, names: np.ndarray, values: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """One column per distinct name, of ``n`` rows: the value of each (position, name), None where absent."""
    codes, uniques = pd.factorize(names)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    columns = {}
    for i, name in enumerate(uniques):
        rows = order[bounds[i] : bounds[i + 1]]
        column = np.full(n, None, dtype=object)
        column[positions[rows]] = values[rows]
        columns[name] = column
    return columns


# -- the rows, then the typed frame, the same for every server ---------------------------------------
def _rows(read: _Read, m: ModuleType) -> SessionRows:
    """What a reader read as :class:`SessionRows`: session_table's columns, each session's local start time and
    status (``acquired`` where none is stored), sorted by key."""
    data = read.columns
    columns = {name: _objects(data[name]) for name in m.Session.heading.names}
    columns["session_timezone"] = _objects(data["session_timezone"])
    columns["session_datetime_local"] = local_times(columns["session_datetime"], columns["session_timezone"])
    for name in ("experimenters", "projects"):
        columns[name] = _objects(read.lists.get(name, ()))
    for name in ("session_dir", "session_note"):
        columns[name] = _objects(data[name])
    status = _objects(data["session_status"])
    status[pd.isna(status)] = DEFAULT_STATUS
    columns["status"] = status
    for name in sorted(read.attributes):
        column = _objects(read.attributes[name])
        column[pd.isna(column)] = None  # a reader's NaN where absent
        columns[ATTRIBUTE_PREFIX + name] = column
    order = _key_order([columns[k] for k in m.Session.primary_key])
    if order is not None:
        columns = {name: column[order] for name, column in columns.items()}
    return SessionRows(columns)


def _objects(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """``values`` as a one-dimensional numpy ``object`` array (a list stays one cell)."""
    return np.fromiter(values, dtype=object, count=len(values))


def _key_order(keys: list[np.ndarray]) -> np.ndarray | None:
    """The positions of the sessions in key order (:func:`~element_session.query.session_sort_key`: values as Python
    compares them, a missing one last), stable; None where they are in that order already."""
    ranks = []
    for column in keys:
        codes, _ = pd.factorize(column, sort=True)  # equal values share a rank; None is -1
        ranks.append(np.where(codes < 0, len(column), codes))
    if not ranks or len(ranks[0]) < 2:
        return None
    order = np.lexsort(ranks[::-1])
    return None if (order[1:] > order[:-1]).all() else order


def _frame(rows: SessionRows, m: ModuleType) -> pd.DataFrame:
    """The typed DataFrame of :class:`SessionRows` (the dtypes of ``session_table``)."""
    data = rows.columns
    frame = pd.DataFrame(
        {
            name: _utc_column(data[name])
            if name == "session_datetime"
            else pd.Series(data[name], dtype=_dtype(m.Session.heading[name], name))
            for name in m.Session.heading.names
        }
    )
    for name, column in data.items():
        if name not in frame.columns:
            kind = object if name in ("experimenters", "projects") else pd.StringDtype()
            frame[name] = pd.Series(column, dtype=kind)
    return frame


def key_frame(rows: Sequence[Mapping[str, Any]], m: ModuleType) -> pd.DataFrame:
    """``Session``'s primary-key values of ``rows`` as typed columns, the dtypes of ``session_table``.

    ``rows`` are dicts as DataJoint fetches them (``session_datetime`` naive, in UTC); the result has
    one column per key attribute of ``m.Session``, in order, and ``len(rows)`` rows in their order.
    """
    columns = {}
    for name in m.Session.primary_key:
        values = [row[name] for row in rows]
        if name == "session_datetime":
            columns[name] = pd.Series(np.array(values, dtype="datetime64[us]")).dt.tz_localize("UTC")
        else:
            columns[name] = pd.Series(values, dtype=_dtype(m.Session.heading[name], name))
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))


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


def _utc_column(micros: np.ndarray) -> pd.Series:
    """Microseconds since 1970 in UTC (None where missing) as ``datetime64[us, UTC]``."""
    return pd.Series(_micros(micros).view("datetime64[us]")).dt.tz_localize("UTC")  # int64's minimum is NaT


def _micros(micros: np.ndarray) -> np.ndarray:
    """Microseconds (None where missing) as ``int64``, missing as int64's minimum (numpy's NaT)."""
    return pd.array(micros, dtype=pd.Int64Dtype()).to_numpy(dtype="int64", na_value=np.iinfo("int64").min)


def _iso_offset(seconds: int) -> str:
    """``+HH:MM`` (``+HH:MM:SS`` where needed) of a UTC offset, as ``datetime.isoformat`` writes it."""
    return dt.datetime(2000, 1, 1, tzinfo=dt.timezone(dt.timedelta(seconds=int(seconds)))).isoformat()[19:]


#: The number of start times :func:`local_times` converts one by one (more: per zone, with numpy).
_FEW = 200


def _local_times_one_by_one(micros: np.ndarray, zones: np.ndarray) -> np.ndarray:
    """:func:`local_times` by :func:`element_session.times.local_time`, one start time after the other."""
    result = np.full(len(micros), None, dtype=object)
    for i, (count, zone) in enumerate(zip(micros.tolist(), zones.tolist(), strict=True)):
        if count is None:
            continue
        try:
            result[i] = times.local_time(_NAIVE_EPOCH + dt.timedelta(microseconds=count), zone).isoformat()
        except times.TimeError:
            continue  # a stored zone that cannot be used: None (formats.session_problems names the session)
    return result


_NAIVE_EPOCH = dt.datetime(1970, 1, 1)


def local_times(micros: np.ndarray, zones: np.ndarray) -> np.ndarray:
    """ISO 8601 text with offset of each start time in its own zone (UTC where none is recorded).

    ``micros`` are start times as microseconds since 1970 in UTC (None where missing), ``zones``
    text (IANA names or fixed offsets; None: UTC); the result is a numpy ``object`` array of text,
    None where the time is missing or the stored zone cannot be used, each equal to
    ``datetime.isoformat()`` of :func:`element_session.times.local_time`: that function itself for
    up to :data:`_FEW` times (a page; numpy and pandas cost more to start than to convert a page),
    else per distinct zone, not per row.
    """
    if len(micros) <= _FEW:
        return _local_times_one_by_one(micros, zones)
    naive = _micros(micros).view("datetime64[us]")
    present = ~np.isnat(naive)
    zone_of = zones.copy()
    zone_of[pd.isna(zone_of)] = "UTC"
    result = np.full(len(naive), None, dtype=object)
    for zone in pd.unique(zone_of[present]):
        try:
            info = times.zone_info(zone)
        except times.TimeError:
            continue  # a stored zone that cannot be used: None (formats.session_problems names the session)
        rows = np.flatnonzero((zone_of == zone) & present)
        local = pd.DatetimeIndex(naive[rows]).tz_localize("UTC").tz_convert(info).tz_localize(None).to_numpy()
        offsets, codes = np.unique((local - naive[rows]) // np.timedelta64(1, "s"), return_inverse=True)
        micro = (local - local.astype("datetime64[s]")).astype("int64")
        fraction = np.full(len(rows), "", dtype=object)
        fraction[micro != 0] = np.char.mod(".%06d", micro[micro != 0]).astype(object)
        suffix = np.array([_iso_offset(o) for o in offsets], dtype=object)[codes]
        result[rows] = np.datetime_as_string(local, unit="s").astype(object) + fraction + suffix
    return result
