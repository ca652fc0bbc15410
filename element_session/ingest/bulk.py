"""Bulk insert of rows that ingestion has already validated, by the fastest path each server offers.

DataJoint's ``Table.insert`` prepares every value of every row in Python (codecs, lineage,
placeholders); for plain columns of text, numbers and dates that work is already done by
validation. Here the rows go through DataJoint's own connection, so inside its transaction:

- **PostgreSQL**: ``COPY table (columns) FROM STDIN`` (text format) through the psycopg2 cursor's
  ``copy_expert``: the server parses tab-separated lines instead of SQL, and no statement is built.
  Where the planner's statistics say the table holds fewer rows than were just written (never
  analysed, or emptied since), the table is ``ANALYZE``d in the same transaction, as PostgreSQL's
  guide to populating a database advises: with the statistics of an empty table the planner
  picks nested loops over sequential scans, and the next join of the table is quadratic.
- **MySQL / MariaDB**: multi-row ``INSERT`` statements, as many rows per statement as fit in the
  server's ``max_allowed_packet`` (read from the server) for the widest values the columns allow.
  The values are written as SQL literals by PyMySQL's own public escaping
  (``pymysql.converters.escape_string`` for text, ``escape_item`` for other types), with the two
  most common types (text, naive datetimes) formatted directly rather than through PyMySQL's
  per-value type dispatch; where the session's ``sql_mode`` has ``NO_BACKSLASH_ESCAPES`` (which
  that escaping does not follow) the values travel as query parameters instead.
  ``LOAD DATA LOCAL INFILE`` is not used: DataJoint 2.3.5 opens its PyMySQL connection without
  the ``CLIENT_LOCAL_FILES`` capability, so the server refuses it on the connection that holds the
  transaction, whatever its ``local_infile`` setting.

Rows are tuples in the order of their ``columns`` (or dicts, turned into such tuples once). Each
distinct text, integer or naive datetime is formatted once per :class:`Literals`: a caller writing
the rows of several tables that share key values (a session's subject and start in each of its
tables) passes one ``Literals`` to every :func:`insert`, and each key is formatted once, not once a table.

Columns with codecs, blobs, JSON or UUIDs go through ``Table.insert`` as before. A ``COPY`` error
is translated as DataJoint translates its own (the adapter's ``translate_error``).

When the server refuses a batch (see :func:`element_session.database.refused`), the batch is
undone to a savepoint taken before it, and the first row the server refuses is found by inserting
halves of the batch, each inside a savepoint of its own; the error names that row. PostgreSQL
needs the savepoint anyway: after a failed statement it accepts nothing else in the transaction.
"""

from __future__ import annotations

import datetime as dt
import io
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Protocol, cast

from pymysql.converters import escape_item, escape_string

from ..database import is_refusal, refused

MAX_ROWS = 20_000  # rows per statement at most (a chunk of ingest is smaller)
PACKET_HEADROOM = 64 * 2**10  # bytes of max_allowed_packet kept for the statement's own text
COPY_BUFFER = 2**20  # characters psycopg2 reads from the COPY text at a time
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")

_MEMO_TYPES = (str, int, dt.datetime)  # formatted once per Literals (see Literals.__missing__)


class Located(Protocol):
    """Where a row came from (e.g. :class:`element_session.readers.Record`)."""

    @property
    def source(self) -> str: ...

    @property
    def row(self) -> int | None: ...


#: Where each row came from: ``where[i]`` is the origin of ``rows[i]``.
Where = Sequence[Located]


def _plain(table: Any, columns: list[str]) -> bool:
    heading = table.heading
    return all(
        name in heading.names
        and heading[name].codec is None
        and not heading[name].is_blob
        and not heading[name].json
        and not heading[name].uuid
        for name in columns
    )


def _rows_per_statement(table: Any, columns: list[str], packet: int) -> int:
    """Rows per statement such that even rows of the widest values fit in ``packet`` bytes."""
    widest = 0
    for name in columns:
        width = re.search(r"char[^(]*\((\d+)\)", table.heading[name].type)
        widest += 2 * 4 * int(width[1]) + 8 if width else 64  # utf8mb4: 4 bytes a character, doubled by escaping
    return max(1, min(MAX_ROWS, (packet - PACKET_HEADROOM) // widest))


def _tuples(rows: Sequence[Mapping[str, Any]], columns: list[str]) -> list[tuple]:
    getter: Callable[[Mapping[str, Any]], Any] = operator.itemgetter(*columns)
    return list(map(getter, rows)) if len(columns) > 1 else [(getter(row),) for row in rows]


def _copy_value(value: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES) if _NEEDS_ESCAPE.search(value) else value
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _mysql_literal(value: Any) -> str:
    """``value`` as a MySQL literal, escaped as PyMySQL escapes it (backslash escapes)."""
    kind = type(value)
    if kind is str:
        return "'" + escape_string(value) + "'"
    if kind is dt.datetime and value.tzinfo is None:
        return "'" + value.isoformat(" ") + "'"
    if kind is int:
        return str(value)
    return escape_item(value, "utf8mb4")


class Literals(dict):
    """Values as one server's bulk path writes them (COPY text or SQL literals), each formatted once.

    ``literals[value]`` is the text of ``value``. Only text, integers and naive datetimes are kept
    (keyed by value, so a value equal to a kept one shares its text: equal numbers have equal SQL
    literals, and text and naive datetimes are equal only to their own kind); other values are
    formatted at each use. Share one across the inserts of rows whose values repeat, and drop it
    with them: it holds every distinct value it has formatted.
    """

    def __init__(self, connection: Any) -> None:
        super().__init__()
        self.backend = connection.adapter.backend
        self._format = _copy_value if self.backend == "postgresql" else _mysql_literal

    def __missing__(self, value: Any) -> str:
        text = self._format(value)
        if type(value) in _MEMO_TYPES and getattr(value, "tzinfo", None) is None:
            self[value] = text
        return text


def _copy_writer(table: Any, columns: list[str], literals: Literals) -> Callable[[Sequence[tuple]], None]:
    """The function writing a batch with one ``COPY ... FROM STDIN``."""
    quote = table.connection.adapter.quote_identifier
    sql = f"COPY {table.full_table_name} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    text_of = literals.__getitem__

    def write(batch: Sequence[tuple]) -> None:
        text = "".join("\t".join(map(text_of, row)) + "\n" for row in batch)
        cursor = table.connection.query("SELECT 1")  # a cursor of DataJoint's connection, in its transaction
        try:
            cursor.copy_expert(sql, io.StringIO(text), size=COPY_BUFFER)
        except Exception as err:
            raise table.connection.adapter.translate_error(err, sql) from err
        finally:
            cursor.close()

    return write


def _analyze_if_outgrown(table: Any, written: int) -> None:
    """``ANALYZE`` a PostgreSQL table whose planner estimate is below the rows just written to it."""
    estimate_sql = "SELECT reltuples FROM pg_class WHERE oid = %s::regclass"
    (estimate,) = table.connection.query(estimate_sql, args=(table.full_table_name,)).fetchone()
    if estimate < written:
        table.connection.query(f"ANALYZE {table.full_table_name}")


def _mysql_writer(table: Any, columns: list[str], literals: Literals) -> tuple[Callable[[Sequence[tuple]], None], int]:
    """The function writing a batch as one multi-row INSERT, and the rows per statement."""
    quote = table.connection.adapter.quote_identifier
    packet, mode = table.connection.query("SELECT @@max_allowed_packet, @@sql_mode").fetchone()
    escaped = "NO_BACKSLASH_ESCAPES" not in mode.upper()
    head = f"INSERT INTO {table.full_table_name} ({', '.join(quote(c) for c in columns)}) VALUES "
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    literal = literals.__getitem__

    def write(batch: Sequence[tuple]) -> None:
        if escaped:  # no '%' formatting follows (args=None): the text goes to the server as it is
            text = ",".join("(" + ",".join(map(literal, row)) + ")" for row in batch)
            table.connection.query(head + text, args=None)
        else:
            table.connection.query(head + ", ".join([one] * len(batch)), args=[v for row in batch for v in row])

    return write, _rows_per_statement(table, columns, int(packet))


def insert(
    table: Any,
    rows: Sequence[Mapping[str, Any]] | Sequence[tuple],
    where: Where | None = None,
    *,
    columns: Sequence[str] | None = None,
    literals: Literals | None = None,
) -> Iterator[int]:
    """Insert ``rows`` into ``table``; yields the number of rows of each batch.

    ``rows`` are dicts with the same keys, or, with ``columns``, tuples of the values of those
    columns in that order. ``where[i]`` says where ``rows[i]`` came from (for the error).
    ``literals`` (of ``table``'s connection) lets inserts into several tables format shared values
    once (see :class:`Literals`); by default each call has its own.

    Raises :class:`~element_session.errors.DatabaseRefusedError` naming the first row the server
    refuses (its source and row from ``where``, its column and value), or
    :class:`~element_session.errors.DatabaseBusyError` for a deadlock or lock wait timeout.
    """
    if not rows:
        return
    if columns is None:
        columns = list(rows[0])
        rows = _tuples(rows, columns)  # type: ignore[arg-type]
    rows = cast(Sequence[tuple], rows)  # dicts were made tuples above
    columns = list(columns)
    backend = table.connection.adapter.backend
    literals = Literals(table.connection) if literals is None else literals
    if literals.backend != backend:
        raise ValueError(f"literals made for a {literals.backend} connection, given for a {backend} table")
    plain, postgres = _plain(table, columns), backend == "postgresql"
    write: Callable[[Sequence[tuple]], None]
    if not plain:
        write, size = (lambda batch: table.insert([dict(zip(columns, row, strict=True)) for row in batch])), MAX_ROWS
    elif postgres:
        write, size = _copy_writer(table, columns, literals), len(rows)
    else:
        write, size = _mysql_writer(table, columns, literals)
    for start in range(0, len(rows), size):
        _write_batch(table, write, columns, rows, start, min(start + size, len(rows)), where)
        yield min(size, len(rows) - start)
    if plain and postgres:
        _analyze_if_outgrown(table, len(rows))


def _write_batch(
    table: Any,
    write: Callable[[Sequence[tuple]], None],
    columns: list[str],
    rows: Sequence[tuple],
    start: int,
    stop: int,
    where: Where | None,
) -> None:
    connection = table.connection
    err = _refusal(connection, "bulk_batch", write, rows[start:stop])
    if err is None:
        return
    index, err = _first_refused(connection, write, rows, start, stop, err)
    source, row = (where[index].source, where[index].row) if where else ("database", None)
    values = dict(zip(columns, rows[index], strict=True))
    typed = refused(err, source=source, row=row, values=values, table=table.__name__)
    raise (typed or err) from None


def _refusal(
    connection: Any, savepoint: str, write: Callable[[Sequence[tuple]], None], rows: Sequence[tuple]
) -> Exception | None:
    """Write ``rows`` inside a savepoint: None if the server accepts them, else its refusal (rolled back to
    the savepoint). Any other error is raised."""
    try:
        with _savepoint(connection, savepoint):
            write(rows)
    except Exception as err:
        if not is_refusal(err):
            raise
        return err
    return None


def _first_refused(
    connection: Any, write: Callable[[Sequence[tuple]], None], rows: Sequence[tuple], lo: int, hi: int, err: Exception
) -> tuple[int, Exception]:
    """The first row of ``rows[lo:hi]`` the server refuses after the rows before it, and its error.

    Halves are inserted inside savepoints (kept when accepted, so that a row refused because of an
    earlier one is found); all of it is undone at the end.
    """
    with _savepoint(connection, "bulk_search", keep=False):
        while hi - lo > 1:
            mid = (lo + hi) // 2
            half = _refusal(connection, "bulk_half", write, rows[lo:mid])
            if half is None:
                lo = mid  # accepted: the refused row is further on
            else:
                hi, err = mid, half
        err = _refusal(connection, "bulk_row", write, rows[lo:hi]) or err
    return lo, err


@contextmanager
def _savepoint(connection: Any, name: str, keep: bool = True) -> Iterator[None]:
    """A savepoint around the block: rolled back to on an error, or always if not ``keep``.

    Outside a transaction (a dry run writes nothing; tests may insert directly) there is none.
    """
    if not connection.in_transaction:
        yield
        return
    connection.query(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        with suppress(Exception):  # gone with the transaction after a deadlock: the error says so
            connection.query(f"ROLLBACK TO SAVEPOINT {name}")
        raise
    if keep:
        connection.query(f"RELEASE SAVEPOINT {name}")
    else:
        connection.query(f"ROLLBACK TO SAVEPOINT {name}")
