"""What DataJoint 2.x would mishandle in a legacy database, found without changing anything.

:func:`diagnose` reads the session schema, its upstream schemas (lab, subject, whatever the
foreign keys reach) and every schema that depends on it, and returns a list of
:class:`Finding`, one per kind of problem and schema, with counts and the fix:

============  ========  ==========================================================================
check         severity  what
============  ========  ==========================================================================
blob-marker   hazard    blob columns without DataJoint 2.x's ``:<blob>:`` marker: 2.x reads them as
                        raw bytes and writes ``str(value)`` into them (silent corruption)
charset       hazard    tables or a schema default not in ``utf8mb4``: text such as emoji is refused
lineage       hazard    key attributes without a ``~lineage`` record: 2.x refuses joins over them
jobs-table    hazard    DataJoint 0.14's ``~jobs`` holding reservations (a 0.14 worker may be running;
                        2.x neither sees nor honours them); a note when it holds only old errors
collation     hazard    a server, schema or column collation that is not binary: keys that differ
                        only in case or accents compare equal
native-type   note      integer/float columns without a type marker: read correctly as the native
                        type, but declared portably only with a marker
definition-   note      (:func:`definition_findings`, ``doctor --definitions``) attributes of a pipeline
type                    module's definitions written with MySQL-native types, with their DataJoint
                        2.x spelling and whether PostgreSQL could declare them
index         note      (both backends) the datetime variant's ``session`` table without the index
                        leading with ``session_datetime`` (schemas declared before it): the list
                        of sessions newest first and time windows read every session
                        (:mod:`element_session.upgrade.indexes`)
history       note      an activated session schema whose history of changes is off or incomplete:
                        no history table, no trigger visible (no ``TRIGGER`` privilege), tables
                        without triggers or whose columns changed after them
                        (:func:`element_session.history.problems`)
============  ========  ==========================================================================

Hazards make ``element-session doctor`` exit with status 1. MySQL/MariaDB only, but for ``index``
and ``history`` (both backends): on PostgreSQL, where the published element never ran, there is nothing else of this
kind to find.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from types import ModuleType

import datajoint as dj
import pandas as pd

from .. import pipeline as pipelines
from ..errors import MigrationError
from ..formats import text_table
from ..history import problems as history_problems
from ..native_types import native_attributes
from . import charsets, indexes
from .catalog import Table, collations, dependent_schemas, read_tables, related_schemas
from .lineage import recorded_lineage, wanted_lineage
from .steps import quote

__all__ = ["Finding", "definition_findings", "diagnose", "findings_frame", "format_findings", "has_hazards"]

_BLOB_TYPES = ("tinyblob", "blob", "mediumblob", "longblob")
_NUMERIC_TYPES = ("tinyint", "smallint", "mediumint", "int", "bigint", "float", "double")


@dataclass(frozen=True)
class Finding:
    """One kind of problem in one schema (``schema`` is ``""`` for the server itself).

    ``severity`` is ``"hazard"`` (DataJoint 2.x would mishandle data) or ``"note"``; ``count`` is
    how many columns, tables, attributes or rows are affected, ``what`` says what they are and
    ``items`` names them (``"table.column"``, each with detail in parentheses).
    """

    schema: str
    check: str
    severity: str
    count: int
    what: str
    fix: str
    items: tuple[str, ...] = ()


def _migrate_command(session: str, schema: str, dependent: bool) -> str:
    return f"element-session migrate --schema {session}" + (" --dependents" if dependent else "")


def _server_collation(connection: dj.Connection) -> list[Finding]:
    charset, collation = connection.query("SELECT @@character_set_server, @@collation_server").fetchone()
    if collation == charsets.COLLATION:
        return []
    return [
        Finding(
            "",
            "collation",
            "hazard",
            1,
            f"the server's default collation {collation} ({charset}), which new schemas inherit: keys that differ "
            "only in case or accents compare equal",
            f"collation-server={charsets.COLLATION} in the server's configuration",
            ("@@collation_server",),
        )
    ]


def _charset(connection: dj.Connection, schema: str, fix: str) -> list[Finding]:
    tables = charsets.tables_to_convert(connection, schema)
    default = charsets.schema_default(connection, schema)[0]
    if not tables and default == charsets.CHARSET:
        return []
    return [
        Finding(
            schema,
            "charset",
            "hazard",
            len(tables),
            f"tables not in {charsets.CHARSET} (schema default {default})",
            fix,
            tuple(f"{t.table} ({'/'.join(t.charsets)})" for t in tables),
        )
    ]


def _collation(connection: dj.Connection, schema: str) -> list[Finding]:
    default = charsets.schema_default(connection, schema)[1]
    columns = [
        (c.table, c.column, c.collation)
        for c in collations(connection, schema)
        if c.charset == charsets.CHARSET and c.collation != charsets.COLLATION
    ]
    non_binary = default.startswith(charsets.CHARSET + "_") and default != charsets.COLLATION
    if not columns and not non_binary:
        return []
    return [
        Finding(
            schema,
            "collation",
            "hazard",
            len(columns),
            f"text columns with a non-binary collation (schema default {default})",
            f"ALTER DATABASE / ALTER TABLE ... CONVERT TO CHARACTER SET {charsets.CHARSET} "
            f"COLLATE {charsets.COLLATION}, once no two keys differ only in case or accents",
            tuple(f"{t}.{c} ({k})" for t, c, k in columns),
        )
    ]


def _blob_markers(connection: dj.Connection, schema: str, tables: dict[str, Table], fix: str) -> list[Finding]:
    unmarked = [
        (table.name, column.name)
        for table in tables.values()
        for column in table.columns.values()
        if column.column_type in _BLOB_TYPES and not column.comment.startswith(":")
    ]
    if not unmarked:
        return []
    counts = [
        connection.query(f"SELECT COUNT({quote(column)}) FROM {quote(schema)}.{quote(table)}").fetchone()[0]
        for table, column in unmarked
    ]
    return [
        Finding(
            schema,
            "blob-marker",
            "hazard",
            len(unmarked),
            f"blob columns without the :<blob>: marker ({sum(counts)} stored values)",
            fix,
            tuple(f"{t}.{c} ({n} values)" for (t, c), n in zip(unmarked, counts, strict=True)),
        )
    ]


def _lineage(
    connection: dj.Connection, schema: str, all_tables: dict[str, Table], tables: dict[str, Table], fix: str
) -> list[Finding]:
    wanted = wanted_lineage(connection, schema, tables)
    recorded = recorded_lineage(connection, schema) if "~lineage" in all_tables else {}
    missing = sorted(set(wanted) - set(recorded))
    if not missing:
        return []
    where = "no ~lineage table" if "~lineage" not in all_tables else "not in ~lineage"
    return [
        Finding(
            schema,
            "lineage",
            "hazard",
            len(missing),
            f"key attributes without lineage ({where}): joins over them fail",
            fix,
            tuple(f"{t}.{a}" for t, a in missing),
        )
    ]


def _native_types(schema: str, tables: dict[str, Table]) -> list[Finding]:
    found = [
        f"{table.name}.{column.name} ({column.column_type})"
        for table in tables.values()
        for column in table.columns.values()
        if column.column_type.split()[0] in _NUMERIC_TYPES
        and not column.comment.startswith(":")
        and column.name not in table.fk_columns
    ]
    if not found:
        return []
    return [
        Finding(
            schema,
            "native-type",
            "note",
            len(found),
            "numeric columns without a type marker, read as their native types",
            "none needed",
            tuple(found),
        )
    ]


def _jobs(connection: dj.Connection, schema: str, all_tables: dict[str, Table]) -> list[Finding]:
    if "~jobs" not in all_tables:
        return []
    by_status = dict(
        connection.query(f"SELECT status, COUNT(*) FROM {quote(schema)}.`~jobs` GROUP BY status").fetchall()
    )
    reserved = int(by_status.get("reserved", 0))
    counts = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items())) or "empty"
    return [
        Finding(
            schema,
            "jobs-table",
            "hazard" if reserved else "note",
            sum(int(n) for n in by_status.values()),
            f"DataJoint 0.14's ~jobs ({counts}), which DataJoint 2.x ignores",
            "stop every DataJoint 0.14 worker first" if reserved else "none needed (drop it when its errors are read)",
            ("~jobs",),
        )
    ]


def _history(connection: dj.Connection, schema: str) -> list[Finding]:
    """A note where the history of changes of an activated session schema is off or incomplete."""
    if not connection.query(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'session_status'",
        args=(schema,),
    ).fetchone():
        return []  # not activated by this version yet: activation switches the history on
    found = history_problems(connection, schema)
    return (
        [
            Finding(
                schema,
                "history",
                "note",
                len(found),
                "the history of changes (docs/status.md, 'History') is off or incomplete",
                "activate the session schema once as an account with the TRIGGER privilege on it",
                tuple(found),
            )
        ]
        if found
        else []
    )


def _index(connection: dj.Connection, schema: str) -> list[Finding]:
    """A note where the datetime variant's ``session`` lacks the start-time index (:mod:`.indexes`)."""
    if not indexes.missing(connection, schema):
        return []
    return [
        Finding(
            schema,
            "index",
            "note",
            1,
            f"no index leading with {indexes.COLUMN} and the rest of the key: "
            "the newest sessions and time windows read every session",
            f"element-session migrate --schema {schema}",
            (f"{indexes.TABLE}.{indexes.COLUMN}",),
        )
    ]


def diagnose(schema_name: str, *, connection: dj.Connection | None = None) -> list[Finding]:
    """Findings for ``schema_name``, its upstream schemas and its dependents, server first; reads only.

    Returns an empty list on PostgreSQL. Raises :class:`~element_session.errors.MigrationError`
    if the schema does not exist.
    """
    connection = connection or dj.conn()
    if not connection.query(connection.adapter.schema_exists_sql(schema_name)).fetchone():
        raise MigrationError(f"schema `{schema_name}` does not exist on the {connection.adapter.backend} server")
    if connection.adapter.backend != "mysql":
        return _index(connection, schema_name) + _history(connection, schema_name)
    dependents = set(dependent_schemas(connection, schema_name))
    findings = _server_collation(connection)
    for schema in related_schemas(connection, schema_name, dependents=True):
        fix = _migrate_command(schema_name, schema, schema in dependents)
        all_tables = read_tables(connection, schema)
        tables = {name: table for name, table in all_tables.items() if not name.startswith("~")}
        findings += _charset(connection, schema, fix)
        findings += _collation(connection, schema)
        findings += _blob_markers(connection, schema, tables, fix)
        findings += _lineage(connection, schema, all_tables, tables, fix)
        findings += _jobs(connection, schema, all_tables)
        findings += _native_types(schema, tables)
    return findings + _index(connection, schema_name) + _history(connection, schema_name)


def definition_findings(pipeline: ModuleType | str) -> list[Finding]:
    """MySQL-native types in the definitions of ``pipeline``'s tables: one ``definition-type`` note per schema.

    Each item is ``Table.attribute: type -> 2.x type``, marked ``(PostgreSQL refuses it)`` where
    PostgreSQL could not declare it (:mod:`element_session.native_types`). Reads the definitions only.

    Raises
    ------
    PipelineImportError, UsageError
        As :func:`element_session.pipeline.load`.
    """
    by_schema: dict[str, list[str]] = {}
    for table in pipelines.tables(pipeline).values():
        if issubclass(table, dj.Part):
            continue  # read with its master
        for attribute in native_attributes(table, "postgresql"):
            refused = "" if attribute.held else " (PostgreSQL refuses it)"
            by_schema.setdefault(table.database, []).append(f"{attribute}{refused}")
    return [
        Finding(
            schema,
            "definition-type",
            "note",
            len(items),
            "attributes defined with MySQL-native types (DataJoint 0.14's spelling)",
            "write the DataJoint 2.x type in the definition (docs/refusals.md)",
            tuple(items),
        )
        for schema, items in sorted(by_schema.items())
    ]


def has_hazards(findings: list[Finding]) -> bool:
    """Whether any finding is a hazard (``element-session doctor`` then exits with status 1)."""
    return any(finding.severity == "hazard" for finding in findings)


def findings_frame(findings: list[Finding]) -> pd.DataFrame:
    """The findings as a table: columns schema, check, severity, count (int64), what, fix, items (tuples)."""
    columns = ["schema", "check", "severity", "count", "what", "fix", "items"]
    return pd.DataFrame([asdict(f) for f in findings], columns=columns).astype({"count": "int64"})


def format_findings(findings: list[Finding], schema_name: str, fmt: str = "table") -> str:
    """The findings as text: ``"table"`` (a summary line, a table, then the items) or ``"json"`` (a list)."""
    if fmt == "json":
        return json.dumps([asdict(f) for f in findings], ensure_ascii=False, indent=1)
    hazards = sum(f.severity == "hazard" for f in findings)
    notes = len(findings) - hazards
    head = f"{hazards or 'No'} hazard{'s' * (hazards != 1)} for DataJoint 2.x in `{schema_name}`"
    head += ", its upstream and dependent schemas"
    head += f" ({notes} note{'s' * (notes != 1)})." if notes else "."
    if not findings:
        return head
    table = text_table(findings_frame(findings).drop(columns="items"))
    items = [f"{f.schema or '(server)'} {f.check}: {', '.join(f.items)}" for f in findings]
    return "\n".join([head, table, "", *items])
