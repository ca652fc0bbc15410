"""Activation of a session module: check the linking module, then bind the deferred schema."""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import datajoint as dj

from ._datajoint_compat import (
    declare_jobs_table,
    declared_names,
    forget_dropped_schema,
    match_backslashes_as_datajoint_escapes_them,
    reload_stale_headings,
)
from .errors import ActivationError, CollationWarning, LinkingModuleError, NativeTypeWarning, PipelineImportError
from .history import install as install_history
from .ingest.keys import collations, is_binary
from .locks import activation_lock
from .native_types import native_attributes
from .pipeline import load
from .upgrade.indexes import install as install_order_index

#: The upstream tables a linking module must provide, and what each is for.
REQUIRED_TABLES = {
    "Subject": "the subject of a session (e.g. `from element_animal import subject; Subject = subject.Subject`)",
    "Project": "the projects sessions belong to (e.g. `Project = lab.Project`)",
    "Experimenter": "the people who run sessions (e.g. `Experimenter = lab.User`)",
}


#: The longest identifier each backend holds, and its unit: MySQL/MariaDB count characters, PostgreSQL
#: bytes of UTF-8 (``NAMEDATALEN - 1``; it cuts a longer name without an error).
IDENTIFIER_LIMITS = {"mysql": (64, "characters"), "postgresql": (63, "bytes")}

#: Characters of a schema name DataJoint 2.3.5 cannot use (tried; a backtick only on MySQL, refused on both so
#: that a pipeline moves between them): a dot splits its full table names, a quote or backtick breaks its SQL,
#: white space breaks its names of foreign keys.
_UNUSABLE = re.compile(r'[.\s"`\x00-\x1f]')

#: MariaDB 10.11 refuses a foreign key's name of 64 characters, one less than other names (measured).
MYSQL_FOREIGN_KEY_LIMIT = 63


def check_identifiers(backend: str, schema_name: str, tables: Sequence[type[dj.Table]]) -> None:
    """Refuse a schema name, or a table name the classes ``tables`` would declare, that the server cannot hold.

    Checked before anything is created: ``schema_name`` and every name of
    :func:`~element_session._datajoint_compat.declared_names` (tables, part tables, jobs tables,
    MySQL's names of foreign keys) against :data:`IDENTIFIER_LIMITS` of ``backend`` (``mysql`` or ``postgresql``).

    A schema name holding a character DataJoint cannot use (:data:`_UNUSABLE`; on PostgreSQL a capital
    letter too) is refused first.

    Raises
    ------
    ActivationError
        Naming each name too long, its length and the server's limit, and what to shorten; or the
        schema name and the character DataJoint cannot use.
    """
    unusable = _UNUSABLE.search(schema_name)
    if unusable or (backend == "postgresql" and schema_name != schema_name.lower()):
        why = (
            f"it holds {unusable[0]!r}, which DataJoint cannot use in a schema name"
            if unusable
            else "it holds capital letters, which DataJoint cannot use on PostgreSQL (it looks schemas up "
            "unquoted, so as lowercase, and finds none)"
        )
        raise ActivationError(
            f"activating `{schema_name}`: {why}. Nothing was created. Use lowercase letters, digits and '_' in "
            "the schema prefix (DATABASE_PREFIX) and the schema name."
        )
    limit, unit = IDENTIFIER_LIMITS[backend]
    measure = (lambda name: len(name.encode("utf-8"))) if unit == "bytes" else len
    server = "PostgreSQL" if backend == "postgresql" else "MySQL/MariaDB"
    named = [("schema", schema_name), *declared_names(tables, backend)]
    long = [
        f"{what} name {name!r} ({measure(name)} {unit}{', at most 63 for a foreign key' if most < limit else ''})"
        for what, name in named
        if measure(name) > (most := MYSQL_FOREIGN_KEY_LIMIT if what == "foreign key" else limit)
    ]
    if long:
        raise ActivationError(
            f"activating `{schema_name}`: {server} holds names of at most {limit} {unit}, longer than that: "
            + "; ".join(long)
            + ". Nothing was created. Shorten the schema prefix (DATABASE_PREFIX) or the schema name, or the class "
            "name of the table."
        )


def check_native_types(backend: str, schema_name: str, tables: Sequence[type[dj.Table]]) -> None:
    """Refuse definitions of ``tables`` with MySQL-native types ``backend`` cannot hold; warn once of the others.

    Read before declaring (:func:`~element_session.native_types.native_attributes`). On
    MySQL/MariaDB, where DataJoint declares them with a log message, one
    :class:`~element_session.errors.NativeTypeWarning` lists them with their DataJoint 2.x spelling.

    Raises
    ------
    ActivationError
        Naming each table, attribute, type and the DataJoint 2.x spelling to use, before anything is created.
    """
    found = [attribute for table in tables for attribute in native_attributes(table, backend)]
    refused = [str(attribute) for attribute in found if not attribute.held]
    server = "PostgreSQL" if backend == "postgresql" else "MySQL/MariaDB"
    if refused:
        raise ActivationError(
            f"activating `{schema_name}`: {server} cannot hold these types of DataJoint 0.14's spelling; write "
            "the DataJoint 2.x type instead (table.attribute: type -> 2.x type):\n  "
            + "\n  ".join(refused)
            + "\nNothing was created."
        )
    if found:
        warnings.warn(
            f"activating `{schema_name}`: definitions use MySQL-native types, which {server} holds but PostgreSQL "
            "may not; the DataJoint 2.x spelling: " + "; ".join(str(attribute) for attribute in found),
            NativeTypeWarning,
            stacklevel=3,
        )


def resolve_linking_module(linking_module: ModuleType | str | None) -> ModuleType:
    """The linking module itself, imported from its dotted path if given as a string (:func:`pipeline.load`).

    Raises
    ------
    LinkingModuleError
        ``linking_module`` is missing, not a module nor text, or cannot be imported.
    """
    if not isinstance(linking_module, ModuleType | str):
        raise LinkingModuleError(
            "activate() needs linking_module: a module, or its import path, that provides "
            + ", ".join(REQUIRED_TABLES)
            + " (pass linking_module=__name__ from your pipeline module)"
        )
    try:
        return load(linking_module, role="linking module")
    except PipelineImportError as err:
        raise LinkingModuleError(str(err)) from None
    except ImportError as err:
        raise LinkingModuleError(f"linking module {linking_module!r} cannot be imported: {err}") from err


def check_linking_module(module: ModuleType) -> dict[str, type[dj.Table]]:
    """The upstream tables of ``module``; one error naming every missing or wrong name otherwise."""
    problems: list[str] = []
    found: dict[str, type[dj.Table]] = {}
    for name, purpose in REQUIRED_TABLES.items():
        obj = getattr(module, name, None)
        table: Any = obj if inspect.isclass(obj) else type(obj)
        if obj is None:
            problems.append(f"`{name}` is missing: it must be {purpose}")
        elif not issubclass(table, dj.Table):
            problems.append(f"`{name}` is a {type(obj).__name__}, not a DataJoint table: it must be {purpose}")
        elif table.database is None:
            problems.append(f"`{name}` ({table.__name__}) is in a schema that is not activated yet: activate it first")
        else:
            found[name] = table
    if problems:
        raise LinkingModuleError(
            f"linking module {module.__name__!r} cannot link the session tables:\n  - "
            + "\n  - ".join(problems)
            + f"\nDefine these names in {module.__name__!r} before calling activate()."
        )
    return found


def activate_schema(
    schema: dj.Schema,
    schema_name: str,
    *,
    create_schema: bool = True,
    create_tables: bool = True,
    linking_module: ModuleType | str | None = None,
) -> None:
    """Activate ``schema`` under ``schema_name`` with the upstream tables of ``linking_module``.

    Each session variant's ``activate(schema_name, *, create_schema=True, create_tables=True,
    linking_module=None)`` calls this with its own deferred ``schema``.

    Parameters
    ----------
    schema_name : str
        Name of the schema on the database server.
    create_schema : bool
        Create the schema if it does not exist yet (otherwise it must exist).
    create_tables : bool
        Create missing tables (otherwise they must exist).
    linking_module : module or str
        A module, or its import path, providing the upstream tables ``Subject`` (the subject of a
        session), ``Project`` (projects sessions belong to) and ``Experimenter`` (people who run
        sessions; pipelines often set ``Experimenter = lab.User``). They are checked before anything
        touches the database.

    Activating again under the same name with the same upstream tables does nothing. Processes that
    activate the same schema at once do it one at a time (:func:`~element_session.locks.activation_lock`):
    every one activates. If creating the tables fails part-way, a schema this call created is
    dropped again, so that nothing is left half-activated.

    Lineage rows that DataJoint repairs while activating take effect at once (see
    :func:`~element_session._datajoint_compat.reload_stale_headings`). Key columns with a collation
    that is not binary are reported
    once as a :class:`~element_session.errors.CollationWarning`. The history of every change is
    switched on (:func:`element_session.history.install`: a table and triggers); an account that may not
    create triggers activates all the same, with one
    :class:`~element_session.errors.HistoryOffWarning` where no history exists yet.

    Raises
    ------
    LinkingModuleError
        The linking module is missing, cannot be imported, or lacks one of the upstream tables (all
        are named), before anything touches the database.
    ActivationError
        A schema or table name longer than the server holds (:func:`check_identifiers`), before
        anything touches the database; the module is already activated under another name, or with
        other upstream tables: a module's tables are bound to one schema per process; or ``~lineage`` rows are missing
        and could not be written (the message names the repair).
    """
    module = resolve_linking_module(linking_module)
    upstream = check_linking_module(module)
    connection = schema.connection or dj.conn()
    check_identifiers(connection.adapter.backend, schema_name, [table for table, _ in schema.declare_list])
    if schema.is_activated() and schema.exists:
        bound = {name: schema.add_objects.get(name) for name in upstream} if schema.add_objects else {}
        if schema.database != schema_name:
            raise ActivationError(
                f"this session module is already activated as schema `{schema.database}`; it cannot also be "
                f"`{schema_name}` in the same process. Use the other variant module for a second schema, "
                "or drop the first (element_session.linking.drop_schema(module.schema)) before activating again."
            )
        if any(bound[name] is not table for name, table in upstream.items()):
            raise ActivationError(
                f"schema `{schema_name}` is already activated with the upstream tables of another linking module; "
                f"{module.__name__!r} cannot re-link it in this process"
            )
        return
    match_backslashes_as_datajoint_escapes_them(connection)
    with activation_lock(connection, schema_name):  # many processes may activate at once: one at a time
        with _undone_on_failure(schema, connection, schema_name):
            schema.activate(
                schema_name,
                create_schema=create_schema,
                create_tables=create_tables,
                add_objects=dict(vars(module)),
            )
        tables = [*_tables_of(schema), *upstream.values()]
        reload_stale_headings(tables, schema_name)
        if create_tables:
            install_history(schema)  # under the lock too: triggers of one schema are created once
            install_order_index(connection, schema_name)  # what Session's definition cannot state
    _warn_about_collations(connection, schema_name, tables)


@contextmanager
def _undone_on_failure(schema: dj.Schema, connection: dj.Connection, schema_name: str) -> Iterator[None]:
    """Activate ``schema`` as ``schema_name`` in the block; if it fails, drop the schema if the block created it.

    So that a failed activation (a table DataJoint cannot declare) leaves nothing half-created for the next one.
    """
    existed = _schema_exists(connection, schema_name)
    try:
        yield
    except BaseException:
        if schema.database is not None and not existed and schema.exists:
            drop_schema(schema)
        schema.database = None
        raise


def _tables_of(schema: dj.Schema) -> Iterator[type[dj.Table]]:
    """The table classes bound to ``schema``, their part tables included."""
    for table, _ in schema.declare_list:
        yield table
        yield from (part for part in vars(table).values() if inspect.isclass(part) and issubclass(part, dj.Part))


def _warn_about_collations(connection: dj.Connection, schema_name: str, tables: list[type[dj.Table]]) -> None:
    """One :class:`CollationWarning` naming the key columns whose collation is not binary, and the fix.

    One query per schema (:func:`~element_session.ingest.keys.collations`, which says why it is cheap).
    """
    if connection.adapter.backend != "mysql":
        return
    by_schema: dict[str, set[str]] = {}
    for table in tables:
        by_schema.setdefault(table.database, set()).add(table.table_name)
    found: dict[str, list[str]] = {}
    for database, names in sorted(by_schema.items()):
        for table_name, column, _, collation in collations(connection, database, names, primary_key=True):
            if not is_binary(collation):
                found.setdefault(collation, []).append(f"{database}.{table_name}.{column}")
    if not found:
        return
    named = "; ".join(f"{', '.join(sorted(set(cols)))} ({collation})" for collation, cols in sorted(found.items()))
    warnings.warn(
        f"activating `{schema_name}`: key columns compare text by a collation that is not binary: {named}. Keys "
        "that differ only in case or accents (e.g. 'M001' and 'm001' under a _ci collation) are one key there: "
        "ingest takes such an input key as the stored one (and says so in its report) and refuses two input keys "
        "that differ only so. To keep them apart, convert these tables to the binary collation DataJoint expects "
        "(back up first; see docs/ingest.md, 'Keys and collations'): "
        "ALTER TABLE `schema`.`table` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin.",
        CollationWarning,
        stacklevel=4,  # the caller of the variant's activate()
    )


def activate_downstream(
    schema: dj.Schema,
    schema_name: str,
    *,
    session_module: ModuleType,
    tables: Sequence[type[dj.Table]] = (),
    create_schema: bool = True,
    create_tables: bool = True,
    add_objects: Mapping[str, object] | None = None,
) -> None:
    """Activate a downstream ``schema`` whose tables refer to ``session.Session`` of ``session_module``.

    The boilerplate of every downstream schema in one call: checks that ``session_module``'s
    ``Session`` and ``SessionDirectory`` are activated (the session schema comes first), activates
    ``schema`` with ``session`` (and any ``add_objects``) resolvable in its definitions, and declares
    the jobs tables of ``tables`` (its Imported/Computed tables) so that ``populate`` workers can
    reserve keys on either backend. Activating again under the same name does nothing; if declaring a table
    fails, a schema this call created is dropped again (as :func:`activate_schema` does). Lineage rows
    DataJoint repairs while activating take effect at once
    (:func:`~element_session._datajoint_compat.reload_stale_headings`).

    Raises
    ------
    LinkingModuleError
        ``session_module`` has no activated ``Session`` or ``SessionDirectory``.
    ActivationError
        A schema or table name longer than the server holds (:func:`check_identifiers`), or a
        MySQL-native type in a definition that the server cannot hold (:func:`check_native_types`,
        naming the table, the attribute and the DataJoint 2.x spelling), before anything is created;
        or ``~lineage`` rows are missing and could not be written (the message names the repair).

    Warns
    -----
    NativeTypeWarning
        Once, listing the MySQL-native types of the definitions that MySQL/MariaDB holds.
    """
    for name in ("Session", "SessionDirectory"):
        table = getattr(session_module, name, None)
        if table is None or getattr(table, "database", None) is None:
            raise LinkingModuleError(
                f"session module {getattr(session_module, '__name__', session_module)!r} has no activated `{name}`: "
                f"activate the session schema before `{schema_name}`"
            )
    connection, classes = schema.connection or dj.conn(), [table for table, _ in schema.declare_list]
    check_identifiers(connection.adapter.backend, schema_name, classes)
    if create_tables:
        check_native_types(connection.adapter.backend, schema_name, classes)
    with activation_lock(connection, schema_name):  # one process at a time
        with _undone_on_failure(schema, connection, schema_name):
            schema.activate(
                schema_name,
                create_schema=create_schema,
                create_tables=create_tables,
                add_objects={"session": session_module, **(add_objects or {})},
            )
        reload_stale_headings(_tables_of(schema), schema_name)
        if create_tables:
            for table in tables:
                declare_jobs_table(table)


def drop_schema(schema: dj.Schema) -> None:
    """Drop ``schema`` with its tables and forget it, so that its module can be activated again.

    DataJoint's own ``Schema.drop`` does not forget the schema
    (:func:`~element_session._datajoint_compat.forget_dropped_schema`).
    """
    if not schema.is_activated():
        return
    schema.drop(prompt=False)
    forget_dropped_schema(schema)


def _schema_exists(connection: dj.Connection, schema_name: str) -> bool:
    return bool(connection.query(connection.adapter.schema_exists_sql(schema_name)).rowcount)
