"""The database catalog (``information_schema``) as the upgrade reads it: tables, columns, keys, schema graph.

Every query of the upgrade about what the server holds (as opposed to the rows themselves) is here:
:func:`read_tables` gives a schema's base tables with their columns, primary and foreign keys;
:func:`foreign_keys` the foreign keys into or out of a group of schemas; :func:`upstream_schemas`,
:func:`dependent_schemas` and :func:`related_schemas` walk the foreign keys between schemas;
:func:`collations` (from :mod:`element_session.ingest.keys`, which the activation also uses) gives
the collation of text columns. MySQL/MariaDB only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import datajoint as dj

from ..errors import MigrationError
from ..ingest.keys import ColumnCollation, collations
from .steps import quote

__all__ = [
    "Column",
    "ColumnCollation",
    "ForeignKey",
    "Table",
    "collations",
    "column_types",
    "dependent_schemas",
    "foreign_key_exists",
    "foreign_keys",
    "primary_key",
    "read_tables",
    "referenced_column",
    "related_schemas",
    "schema_default",
    "table_exists",
    "text_columns",
    "text_indexes",
    "upstream_schemas",
]


@dataclass(frozen=True)
class Column:
    """A column as the catalog describes it."""

    name: str
    column_type: str  # lower case, integer display width removed: "int", "varchar(32)", "longblob"
    nullable: bool
    has_default: bool  # a default other than NULL
    comment: str
    charset: str | None = None  # the character set of a text column


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key as the catalog describes it."""

    schema: str
    table: str
    name: str
    columns: tuple[str, ...]
    parent_schema: str
    parent_table: str
    parent_columns: tuple[str, ...]
    on_update: str | None  # None: the account may not read the rule (MariaDB shows
    on_delete: str | None  # referential_constraints only to accounts with more than SELECT)

    @property
    def key(self) -> tuple[str, str, str]:
        """Schema, table and constraint name: what names the foreign key on the server."""
        return self.schema, self.table, self.name

    def add_sql(self) -> str:
        """The ``ALTER TABLE ... ADD CONSTRAINT`` statement that re-creates this foreign key.

        Raises
        ------
        MigrationError
            The account could not read the foreign key's ``ON UPDATE``/``ON DELETE`` rules.
        """
        if self.on_update is None or self.on_delete is None:
            raise MigrationError(
                f"the rules of foreign key {self} are not visible to this account: it cannot re-create it"
            )
        columns = ", ".join(map(quote, self.columns))
        parents = ", ".join(map(quote, self.parent_columns))
        return (
            f"ALTER TABLE {quote(self.schema)}.{quote(self.table)} ADD CONSTRAINT {quote(self.name)} "
            f"FOREIGN KEY ({columns}) REFERENCES {quote(self.parent_schema)}.{quote(self.parent_table)} ({parents}) "
            f"ON UPDATE {self.on_update} ON DELETE {self.on_delete}"
        )

    def __str__(self) -> str:
        return (
            f"`{self.schema}`.`{self.table}` ({', '.join(self.columns)}) -> "
            f"`{self.parent_schema}`.`{self.parent_table}`"
        )


@dataclass
class Table:
    """A base table: its columns in order, its primary key and its foreign keys; ``collation`` its default."""

    name: str
    collation: str = ""
    columns: dict[str, Column] = field(default_factory=dict)
    primary_key: tuple[str, ...] = ()
    foreign_keys: list[ForeignKey] = field(default_factory=list)

    @property
    def fk_columns(self) -> set[str]:
        """The columns that some foreign key of the table uses."""
        return {column for fk in self.foreign_keys for column in fk.columns}


def _normalise_type(column_type: str) -> str:
    return re.sub(r"^(tinyint|smallint|mediumint|int|bigint)\(\d+\)", r"\1", column_type.lower())


def read_tables(connection: dj.Connection, schema: str) -> dict[str, Table]:
    """Every base table of ``schema`` (hidden ones included) with columns, primary and foreign keys, by name."""
    tables = {
        name: Table(name, collation or "")
        for name, collation in connection.query(
            "SELECT table_name, table_collation FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE'",
            args=(schema,),
        )
    }
    columns = connection.query(
        "SELECT table_name, column_name, column_type, is_nullable, column_default, column_comment, "
        "character_set_name FROM information_schema.columns WHERE table_schema = %s "
        "ORDER BY table_name, ordinal_position",
        args=(schema,),
    )
    for table, name, column_type, nullable, default, comment, charset in columns:
        if table in tables:
            has_default = default is not None and str(default).upper() != "NULL"
            tables[table].columns[name] = Column(
                name, _normalise_type(column_type), nullable == "YES", has_default, comment or "", charset
            )
    for table, key in _primary_keys(connection, schema).items():
        if table in tables:
            tables[table].primary_key = key
    for fk in _foreign_keys(connection, "table_schema = %s", (schema,)):
        if fk.table in tables:
            tables[fk.table].foreign_keys.append(fk)
    return tables


def _primary_keys(connection: dj.Connection, schema: str, table: str | None = None) -> dict[str, tuple[str, ...]]:
    """The primary key of each table of ``schema`` (of ``table`` alone if given)."""
    keys: dict[str, tuple[str, ...]] = {}
    for name, column in connection.query(
        "SELECT table_name, column_name FROM information_schema.key_column_usage WHERE table_schema = %s "
        f"AND constraint_name = 'PRIMARY'{' AND table_name = %s' if table else ''} "
        "ORDER BY table_name, ordinal_position",
        args=(schema, table) if table else (schema,),
    ):
        keys[name] = (*keys.get(name, ()), column)
    return keys


def primary_key(connection: dj.Connection, schema: str, table: str) -> tuple[str, ...]:
    """The primary key columns of ``schema``.``table`` in order (empty if it has none)."""
    return _primary_keys(connection, schema, table).get(table, ())


def _foreign_keys(connection: dj.Connection, where: str, args: tuple, *, text: bool = False) -> list[ForeignKey]:
    """The foreign keys whose columns ``where`` selects in ``key_column_usage``, in order; with ``text``, only
    those over at least one text column.

    Each query names its schema as a constant: MariaDB then reads that schema's definitions only, where
    a join of ``key_column_usage`` with other catalog tables opens every table of the server.
    """
    rows = connection.query(
        "SELECT table_schema, table_name, constraint_name, column_name, referenced_table_schema, "
        "referenced_table_name, referenced_column_name FROM information_schema.key_column_usage "
        f"WHERE referenced_table_name IS NOT NULL AND ({where}) "
        "ORDER BY table_schema, table_name, constraint_name, ordinal_position",
        args=args,
    ).fetchall()
    parts: dict[tuple[str, str, str], list[tuple]] = {}
    for row in rows:
        parts.setdefault((row[0], row[1], row[2]), []).append(row)
    rules: dict[tuple[str, str, str], tuple[str, str]] = {}
    texts: set[tuple[str, str, str]] = set()
    for schema in sorted({schema for schema, _, _ in parts}):
        for table, name, update, delete in connection.query(
            "SELECT table_name, constraint_name, update_rule, delete_rule "
            "FROM information_schema.referential_constraints WHERE constraint_schema = %s",
            args=(schema,),
        ):
            rules[(schema, table, name)] = (update, delete)
        if text:
            texts |= {(schema, table, column) for table, column in _text_columns_of(connection, schema)}
    return [
        ForeignKey(
            *key,
            tuple(c[3] for c in cols),
            cols[0][4],
            cols[0][5],
            tuple(c[6] for c in cols),
            *rules.get(key, (None, None)),
        )
        for key, cols in parts.items()
        if not text or any((*key[:2], c[3]) in texts for c in cols)
    ]


def _text_columns_of(connection: dj.Connection, schema: str, table: str | None = None) -> list[tuple[str, str]]:
    """Table and name of each text column (one with a character set) of ``schema`` (of ``table`` if given)."""
    return connection.query(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s "
        f"AND character_set_name IS NOT NULL{' AND table_name = %s' if table else ''} "
        "ORDER BY table_name, ordinal_position",
        args=(schema, table) if table else (schema,),
    ).fetchall()


def foreign_keys(connection: dj.Connection, schemas: Iterable[str], *, text: bool = False) -> list[ForeignKey]:
    """The foreign keys whose child or parent table is in one of ``schemas``, in order.

    With ``text``, only those over at least one text column.
    """
    schemas = sorted(set(schemas))
    if not schemas:
        return []
    marks = ", ".join(["%s"] * len(schemas))
    where = f"table_schema IN ({marks}) OR referenced_table_schema IN ({marks})"
    return _foreign_keys(connection, where, (*schemas, *schemas), text=text)


def foreign_key_exists(connection: dj.Connection, fk: ForeignKey) -> bool:
    """Whether the server has the foreign key named as ``fk`` is."""
    return bool(
        connection.query(
            "SELECT 1 FROM information_schema.referential_constraints "
            "WHERE constraint_schema = %s AND table_name = %s AND constraint_name = %s",
            args=fk.key,
        ).fetchone()
    )


def referenced_column(connection: dj.Connection, schema: str, table: str, column: str) -> tuple[str, str, str] | None:
    """The schema, table and column that a foreign key of ``column`` refers to; None if none does."""
    row = connection.query(
        "SELECT referenced_table_schema, referenced_table_name, referenced_column_name "
        "FROM information_schema.key_column_usage WHERE table_schema = %s AND table_name = %s "
        "AND column_name = %s AND referenced_table_name IS NOT NULL",
        args=(schema, table, column),
    ).fetchone()
    return (row[0], row[1], row[2]) if row else None


def table_exists(connection: dj.Connection, schema: str, table: str) -> bool:
    """Whether ``schema``.``table`` exists."""
    return bool(
        connection.query(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            args=(schema, table),
        ).fetchone()
    )


def schema_default(connection: dj.Connection, schema: str) -> tuple[str, str] | None:
    """The default character set and collation of ``schema``; None if there is no such schema."""
    row = connection.query(
        "SELECT default_character_set_name, default_collation_name FROM information_schema.schemata "
        "WHERE schema_name = %s",
        args=(schema,),
    ).fetchone()
    return (row[0], row[1]) if row else None


def text_columns(connection: dj.Connection, schema: str, table: str) -> list[str]:
    """The text columns of ``schema``.``table`` (those with a character set), in order."""
    return [column for _, column in _text_columns_of(connection, schema, table)]


def text_indexes(connection: dj.Connection, schema: str, table: str) -> dict[str, list[tuple[str, int]]]:
    """Each index of ``schema``.``table`` over text columns: its columns with the characters indexed."""
    rows = connection.query(
        "SELECT s.index_name, s.column_name, COALESCE(s.sub_part, c.character_maximum_length) "
        "FROM information_schema.statistics s JOIN information_schema.columns c ON c.table_schema = s.table_schema "
        "AND c.table_name = s.table_name AND c.column_name = s.column_name "
        "WHERE s.table_schema = %s AND s.table_name = %s AND c.character_set_name IS NOT NULL "
        "ORDER BY s.index_name, s.seq_in_index",
        args=(schema, table),
    ).fetchall()
    indexes: dict[str, list[tuple[str, int]]] = {}
    for index, column, length in rows:
        indexes.setdefault(index, []).append((column, int(length or 0)))
    return indexes


def column_types(connection: dj.Connection, schema: str, table: str) -> dict[str, str]:
    """The full type of each column of ``schema``.``table``, temporary tables included (which the catalog lacks)."""
    return {row[0]: row[1] for row in connection.query(f"SHOW FULL COLUMNS FROM {quote(schema)}.{quote(table)}")}


# -- The schema graph ---------------------------------------------------------------------------------


def upstream_schemas(connection: dj.Connection, schema: str) -> list[str]:
    """The schemas that ``schema``'s foreign keys reach, directly or not, parents before children."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(db: str) -> None:
        if db in order or db in visiting:
            return
        visiting.add(db)
        for (parent,) in connection.query(
            "SELECT DISTINCT referenced_table_schema FROM information_schema.key_column_usage "
            "WHERE table_schema = %s AND referenced_table_schema IS NOT NULL AND referenced_table_schema <> %s "
            "ORDER BY referenced_table_schema",
            args=(db, db),
        ):
            visit(parent)
        order.append(db)

    visit(schema)
    return order[:-1]


def dependent_schemas(connection: dj.Connection, schema: str) -> list[str]:
    """The schemas with foreign keys into ``schema``, directly or not, nearest first."""
    order: list[str] = []
    frontier = [schema]
    while frontier:
        db = frontier.pop(0)
        for (child,) in connection.query(
            "SELECT DISTINCT table_schema FROM information_schema.key_column_usage "
            "WHERE referenced_table_schema = %s AND table_schema <> %s ORDER BY table_schema",
            args=(db, db),
        ):
            if child != schema and child not in order:
                order.append(child)
                frontier.append(child)
    return order


def related_schemas(connection: dj.Connection, schema: str, *, dependents: bool = True) -> list[str]:
    """``schema``, its upstream schemas and (with ``dependents``) the schemas that depend on it and theirs.

    Parents come before children: the upstream schemas, ``schema``, then each dependent schema
    after any upstream schema of its own that is not listed yet.
    """
    order = [*upstream_schemas(connection, schema), schema]
    for child in dependent_schemas(connection, schema) if dependents else []:
        order += [db for db in [*upstream_schemas(connection, child), child] if db not in order]
    return order
