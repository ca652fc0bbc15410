"""Character sets of legacy schemas: which tables are not ``utf8mb4``, and their conversion in place.

Lab databases that DataJoint 0.14 wrote on MySQL 5.x servers hold ``latin1`` tables (MySQL's
latin1 is Windows-1252: ``°``, ``½``, ``ü``, ``Ø`` and the en dash fit, emoji do not). DataJoint 2.x
expects ``utf8mb4`` with the binary collation ``utf8mb4_bin``. :func:`plan_conversion` plans the
conversion of a group of schemas as :class:`~element_session.upgrade.steps.Change` steps:

1. check, before anything changes, that every value converts losslessly (each text value read in
   utf8mb4 and written back in its old character set gives the same bytes) and that the server
   accepts the converted table (a probe converts an empty temporary copy: index length limits,
   row size); otherwise :class:`~element_session.errors.MigrationError` names table, column, rows;
2. save the definitions of the foreign keys over text columns of these tables in a bookkeeping
   table (``~migrate_foreign_keys`` of the home schema), then drop them: MariaDB refuses to convert
   a column that a foreign key uses;
3. change each schema's default character set, then convert each table, verifying a checksum of
   its decoded text before and after;
4. re-create every saved foreign key exactly as it was, and drop the bookkeeping table.

An interrupted conversion is finished by :func:`plan_resume`, which needs only the bookkeeping
table: it converts the tables at both ends of each saved foreign key and re-creates them.
MySQL/MariaDB only.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import datajoint as dj

from ..database import server_error
from ..errors import MigrationError
from . import catalog
from .catalog import ForeignKey
from .steps import Change, quote, statement

__all__ = [
    "BOOKKEEPING_TABLE",
    "CHARSET",
    "COLLATION",
    "ForeignKey",
    "TableCharset",
    "plan_conversion",
    "plan_resume",
    "schema_default",
    "tables_to_convert",
]

CHARSET, COLLATION = "utf8mb4", "utf8mb4_bin"
#: Where the definitions of the dropped foreign keys wait to be re-created (in the home schema).
BOOKKEEPING_TABLE = "~migrate_foreign_keys"
_PROBE = "~charset_probe"
_NAME = re.compile(r"^[A-Za-z0-9_]+$")  # a character set name, checked before it is written into SQL


@dataclass(frozen=True)
class TableCharset:
    """A table with text not in utf8mb4: its default collation and each such column's character set."""

    schema: str
    table: str
    collation: str
    columns: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{quote(self.schema)}.{quote(self.table)}"

    @property
    def charsets(self) -> list[str]:
        """The character sets of the table's default and of its text columns that are not utf8mb4."""
        return sorted(set(self.columns.values()) | {self.collation.split("_")[0]} - {CHARSET})

    def __str__(self) -> str:
        return f"`{self.schema}`.`{self.table}` ({', '.join(self.charsets)})"


# -- Reading the server ---------------------------------------------------------------------------


def schema_default(connection: dj.Connection, schema: str) -> tuple[str, str]:
    """The default character set and collation of ``schema`` (utf8mb4's if there is no such schema)."""
    return catalog.schema_default(connection, schema) or (CHARSET, COLLATION)


def tables_to_convert(connection: dj.Connection, schema: str) -> list[TableCharset]:
    """The base tables of ``schema`` whose default or any text column is not utf8mb4, by name."""
    tables = [
        TableCharset(
            schema,
            table.name,
            table.collation,
            {c.name: c.charset for c in table.columns.values() if c.charset and c.charset not in (CHARSET, "binary")},
        )
        for table in catalog.read_tables(connection, schema).values()
        if table.name != BOOKKEEPING_TABLE
    ]
    return sorted(
        (table for table in tables if table.columns or not table.collation.startswith(CHARSET + "_")),
        key=lambda table: table.table,
    )


def foreign_keys(connection: dj.Connection, tables: set[tuple[str, str]]) -> list[ForeignKey]:
    """The foreign keys over at least one text column whose child or parent table is in ``tables``."""
    return [
        fk
        for fk in catalog.foreign_keys(connection, {schema for schema, _ in tables}, text=True)
        if (fk.schema, fk.table) in tables or (fk.parent_schema, fk.parent_table) in tables
    ]


def saved_foreign_keys(connection: dj.Connection, home: str) -> list[ForeignKey]:
    """The foreign keys a conversion dropped and has not re-created yet (none without the bookkeeping table)."""
    if not catalog.table_exists(connection, home, BOOKKEEPING_TABLE):
        return []
    rows = connection.query(
        f"SELECT child_schema, child_table, constraint_name, child_columns, parent_schema, parent_table, "
        f"parent_columns, on_update, on_delete FROM {quote(home)}.{quote(BOOKKEEPING_TABLE)} "
        "ORDER BY child_schema, child_table, constraint_name"
    ).fetchall()
    return [
        ForeignKey(r[0], r[1], r[2], tuple(r[3].split("\n")), r[4], r[5], tuple(r[6].split("\n")), r[7], r[8])
        for r in rows
    ]


# -- Checks made before anything changes ------------------------------------------------------------


def _lossy_rows(connection: dj.Connection, table: TableCharset) -> list[str]:
    """A problem per column whose values do not survive the conversion, naming up to five rows."""
    problems = []
    key = catalog.primary_key(connection, table.schema, table.table)
    for column, charset in table.columns.items():
        if not _NAME.match(charset):
            raise MigrationError(f"{table.name}.{column}: unexpected character set name {charset!r}")
        name = quote(column)
        where = (
            f"{name} IS NOT NULL AND CAST({name} AS BINARY) <> "
            f"CAST(CONVERT(CONVERT({name} USING {CHARSET}) USING {charset}) AS BINARY)"
        )
        count = connection.query(f"SELECT COUNT(*) FROM {table.name} WHERE {where}").fetchone()[0]
        if not count:
            continue
        shown = ", ".join(map(quote, key)) if key else name
        rows = connection.query(f"SELECT {shown} FROM {table.name} WHERE {where} LIMIT 5").fetchall()
        described = "; ".join(
            ", ".join(f"{k}={v!r}" for k, v in zip(key or [column], row, strict=True)) for row in rows
        )
        problems.append(
            f"{table.name}.{column}: {count} value(s) are not valid {charset} text and would change "
            f"(become '?') in {CHARSET}; rows: {described}{' ...' if count > len(rows) else ''}"
        )
    return problems


def _index_sizes(connection: dj.Connection, table: TableCharset) -> list[str]:
    """Each index over text columns with the bytes its text needs in utf8mb4."""
    return [
        f"index {index} over ({', '.join(f'{c}: {n} characters' for c, n in columns)}) needs "
        f"{4 * sum(n for _, n in columns)} bytes in {CHARSET}"
        for index, columns in catalog.text_indexes(connection, table.schema, table.table).items()
    ]


def _probe(connection: dj.Connection, table: TableCharset) -> list[str]:
    """Convert an empty temporary copy of ``table``: what the server refuses or would retype."""
    probe = f"{quote(table.schema)}.{quote(_PROBE)}"
    connection.query(f"DROP TEMPORARY TABLE IF EXISTS {probe}")
    connection.query(f"CREATE TEMPORARY TABLE {probe} LIKE {table.name}")
    try:
        try:
            connection.query(f"ALTER TABLE {probe} CONVERT TO CHARACTER SET {CHARSET} COLLATE {COLLATION}")
        except Exception as err:  # the server's own verdict, e.g. 1709 "Index column size too large"
            said = server_error(err)
            reason = said[1] if said else str(err)
            sizes = "; ".join(_index_sizes(connection, table))
            return [f"{table.name}: the server refuses the conversion: {reason} ({sizes})"]
        before = catalog.column_types(connection, table.schema, table.table)
        after = catalog.column_types(connection, table.schema, _PROBE)
        return [
            f"{table.name}.{column}: would change type from {before[column]} to {after[column]}"
            for column in before
            if after.get(column) != before[column]
        ]
    finally:
        connection.query(f"DROP TEMPORARY TABLE IF EXISTS {probe}")


def check(connection: dj.Connection, tables: Sequence[TableCharset]) -> list[str]:
    """Every reason why converting ``tables`` would lose, retype or truncate data; empty if none."""
    problems: list[str] = []
    for table in tables:
        problems += _lossy_rows(connection, table)
        problems += _probe(connection, table)
    return problems


# -- The plan -----------------------------------------------------------------------------------------


def _checksum(connection: dj.Connection, table: TableCharset) -> tuple:
    """Row count and two order-independent checksums of the decoded text of ``table``'s text columns."""
    columns = catalog.text_columns(connection, table.schema, table.table)
    if not columns:
        return tuple(connection.query(f"SELECT COUNT(*) FROM {table.name}").fetchone())
    text = "CONCAT_WS('|', " + ", ".join(f"IFNULL(HEX(CONVERT({quote(c)} USING {CHARSET})), '-')" for c in columns)
    text += ")"
    return tuple(
        connection.query(
            f"SELECT COUNT(*), COALESCE(SUM(CRC32({text})), 0), "
            f"COALESCE(BIT_XOR(CAST(CONV(LEFT(MD5({text}), 16), 16, 10) AS UNSIGNED)), 0) FROM {table.name}"
        ).fetchone()
    )


def _convert(table: TableCharset) -> Change:
    sql = f"ALTER TABLE {table.name} CONVERT TO CHARACTER SET {CHARSET} COLLATE {COLLATION}"

    def run(connection: dj.Connection) -> None:
        before = _checksum(connection, table)
        connection.query(sql)
        after = _checksum(connection, table)
        if after != before:
            raise MigrationError(
                f"{table.name}: the checksum of its decoded text differs after the conversion "
                f"({before} before, {after} after); restore the table from the backup and report this"
            )

    columns = ", ".join(table.columns) or "no text columns"
    return Change(
        f"`{table.schema}`.`{table.table}`",
        f"convert from {'/'.join(table.charsets)} to {CHARSET} ({COLLATION}), text columns: {columns}; "
        "every decoded value kept (checksum before and after)",
        sql,
        run,
    )


def _save(home: str, fks: list[ForeignKey]) -> Change:
    book = f"{quote(home)}.{quote(BOOKKEEPING_TABLE)}"
    create = (
        f"CREATE TABLE IF NOT EXISTS {book} (child_schema varchar(64) NOT NULL, child_table varchar(64) NOT NULL, "
        "constraint_name varchar(64) NOT NULL, child_columns varchar(4000) NOT NULL, parent_schema varchar(64) "
        "NOT NULL, parent_table varchar(64) NOT NULL, parent_columns varchar(4000) NOT NULL, on_update "
        "varchar(16) NOT NULL, on_delete varchar(16) NOT NULL, PRIMARY KEY (child_schema, child_table, "
        f"constraint_name)) ENGINE=InnoDB DEFAULT CHARSET={CHARSET} COLLATE={COLLATION} "
        "COMMENT='foreign keys that element-session migrate dropped to convert character sets'"
    )
    insert = f"REPLACE INTO {book} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"

    def run(connection: dj.Connection) -> None:
        connection.query(create)
        with connection.transaction:
            for fk in fks:
                values = (fk.parent_schema, fk.parent_table, "\n".join(fk.parent_columns), fk.on_update, fk.on_delete)
                connection.query(insert, args=(*fk.key, "\n".join(fk.columns), *values))

    return Change(
        f"`{home}`.{BOOKKEEPING_TABLE}",
        f"save the definitions of {len(fks)} foreign key(s) over text columns, to re-create them after the "
        "conversion (a run after an interruption finishes from here)",
        create + "; " + insert,
        run,
    )


def _by_table(fks: list[ForeignKey]) -> dict[tuple[str, str], list[ForeignKey]]:
    grouped: dict[tuple[str, str], list[ForeignKey]] = {}
    for fk in fks:
        grouped.setdefault((fk.schema, fk.table), []).append(fk)
    return grouped


def _drop(schema: str, table: str, fks: list[ForeignKey]) -> Change:
    sql = f"ALTER TABLE {quote(schema)}.{quote(table)} " + ", ".join(f"DROP FOREIGN KEY {quote(fk.name)}" for fk in fks)
    names = ", ".join(f"{fk.name} (-> `{fk.parent_schema}`.`{fk.parent_table}`)" for fk in fks)
    what = f"drop foreign key(s) {names} for the conversion (saved)"
    return Change(f"`{schema}`.`{table}`", what, sql, statement(sql))


def _recreate(home: str, schema: str, table: str, fks: list[ForeignKey]) -> Change:
    book = f"{quote(home)}.{quote(BOOKKEEPING_TABLE)}"

    def run(connection: dj.Connection) -> None:
        for fk in fks:
            if not catalog.foreign_key_exists(connection, fk):
                connection.query(fk.add_sql())
            connection.query(
                f"DELETE FROM {book} WHERE child_schema = %s AND child_table = %s AND constraint_name = %s",
                args=fk.key,
            )

    names = ", ".join(f"{fk.name} (-> `{fk.parent_schema}`.`{fk.parent_table}`)" for fk in fks)
    return Change(
        f"`{schema}`.`{table}`",
        f"re-create foreign key(s) {names} as they were",
        "; ".join(fk.add_sql() for fk in fks),
        run,
    )


def _finish(home: str, pending: list[ForeignKey]) -> list[Change]:
    changes = [_recreate(home, schema, table, fks) for (schema, table), fks in _by_table(pending).items()]
    sql = f"DROP TABLE IF EXISTS {quote(home)}.{quote(BOOKKEEPING_TABLE)}"
    return [*changes, Change(f"`{home}`.{BOOKKEEPING_TABLE}", "drop the bookkeeping table", sql, statement(sql))]


def plan_conversion(
    connection: dj.Connection, schemas: Sequence[str], *, home: str, hint: str = "", checked: Collection[str] = ()
) -> tuple[list[Change], list[str]]:
    """The steps that convert every table of ``schemas`` to utf8mb4 (``utf8mb4_bin``), and the problems.

    ``home`` is the schema that holds the bookkeeping table. Returns ``(changes, problems)``: the
    changes in the order to apply them, and every reason (naming table, column and rows) why the
    conversion would lose, retype or truncate data or why a foreign key from a schema outside
    ``schemas`` blocks it (``hint`` is appended there, e.g. "use --dependents"); the tables of the
    schemas in ``checked`` passed :func:`check` already and are not read again. The caller must
    not apply the changes if there is any problem. Nothing is changed here: the probe works on
    temporary tables.
    """
    tables = [table for schema in schemas for table in tables_to_convert(connection, schema)]
    defaults = [schema for schema in schemas if schema_default(connection, schema)[0] != CHARSET]
    if not tables and not defaults:
        return [], []
    names = {(table.schema, table.table) for table in tables}
    fks = foreign_keys(connection, names)
    problems = check(connection, [table for table in tables if table.schema not in checked])
    for fk in fks:
        if fk.schema not in schemas:
            problems.append(f"the foreign key {fk} blocks the conversion of `{fk.parent_table}`{hint}")
        elif fk.parent_schema not in schemas:
            problems.append(f"the foreign key {fk} refers to a schema that is not converted in this run")
    saved = {fk.key for fk in saved_foreign_keys(connection, home)}
    changes = []
    to_save = [fk for fk in fks if fk.key not in saved]
    if to_save:
        changes.append(_save(home, to_save))
    changes += [_drop(schema, table, group) for (schema, table), group in _by_table(fks).items()]
    for schema in defaults:
        sql = f"ALTER DATABASE {quote(schema)} CHARACTER SET {CHARSET} COLLATE {COLLATION}"
        before = schema_default(connection, schema)[0]
        changes.append(
            Change(f"`{schema}`", f"default character set {before} -> {CHARSET} ({COLLATION})", sql, statement(sql))
        )
    changes += [_convert(table) for table in tables]
    if fks or saved:
        changes += _finish(home, saved_foreign_keys(connection, home) + [fk for fk in fks if fk.key not in saved])
    return changes, problems


def plan_resume(connection: dj.Connection, home: str) -> list[Change]:
    """The steps that finish a conversion interrupted after its foreign keys were saved; empty if none was.

    Converts the tables at both ends of each saved foreign key that are not utf8mb4 yet, re-creates
    the foreign keys and drops the bookkeeping table. Raises MigrationError if such a table would
    lose data (it was checked before the keys were dropped, so only a write since then can cause it).
    """
    if not catalog.table_exists(connection, home, BOOKKEEPING_TABLE):
        return []
    pending = saved_foreign_keys(connection, home)
    ends = {(fk.schema, fk.table) for fk in pending} | {(fk.parent_schema, fk.parent_table) for fk in pending}
    tables = [
        table
        for schema in sorted({schema for schema, _ in ends})
        for table in tables_to_convert(connection, schema)
        if (table.schema, table.table) in ends
    ]
    problems = check(connection, tables)
    if problems:
        raise MigrationError(
            "an interrupted character-set conversion cannot be finished without loss; nothing was changed:\n  - "
            + "\n  - ".join(problems)
        )
    return [_convert(table) for table in tables] + _finish(home, pending)
