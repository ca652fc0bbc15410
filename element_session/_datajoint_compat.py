"""Every workaround of a DataJoint 2.3.5 behaviour, in one place.

Each function names the behaviour it works around and the version it was seen in. Whoever upgrades
DataJoint (``install_requires`` pins ``datajoint>=2.3.5,<2.4``) revisits this module: drop what the
new version fixes, and keep the rest with the new version named.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Iterable

import datajoint as dj
from datajoint.heading import Heading

from .errors import ActivationError

#: What DataJoint 2.3.5 records as the error of a job whose worker was stopped with SIGTERM.
SIGTERM_MESSAGE = "SystemExit: SIGTERM received"

_BACKSLASH_BEFORE_QUOTE = re.compile(r"\\(?=['\"]|$)")


def declare_jobs_table(table: type[dj.Table]) -> dj.Table:
    """The jobs table of ``table``, declared if it does not exist yet.

    DataJoint 2.3.5 derives the jobs table's key types from the target table's columns; on
    PostgreSQL, columns inherited through a foreign key carry no DataJoint type, so a ``datetime``
    key (e.g. ``Session.session_datetime``) arrives as ``timestamp without time zone`` and the
    declaration fails. Here such columns take the type declared in the table they come from (this
    writes DataJoint's private ``Job._definition`` before ``declare()``).
    """
    from datajoint.jobs import Job

    instance = table()
    jobs = Job(instance)
    if not jobs.is_declared:
        definition = jobs.definition
        for name in instance.primary_key:
            attribute = instance.heading[name]
            if attribute.original_type is None:
                origin = _origin_type(instance, attribute.lineage)
                if origin and origin != attribute.type:
                    definition = definition.replace(f"\n    {name} : {attribute.type}\n", f"\n    {name} : {origin}\n")
        jobs._definition = definition
        jobs.declare()
    return instance.jobs


def _origin_type(table: dj.Table, lineage: str | None) -> str | None:
    """The DataJoint type of an attribute in the table it was declared in (from its lineage)."""
    if not lineage or lineage.count(".") < 2:
        return None
    database, table_name, attribute = lineage.rsplit(".", 2)
    adapter = table.connection.adapter
    origin = dj.FreeTable(table.connection, adapter.make_full_table_name(database, table_name))
    heading = origin.heading[attribute]
    return heading.original_type or heading.type


def interrupted_here() -> dict[str, object]:
    """The jobs rows this process's interrupted job left: a restriction (``table.jobs & interrupted_here()``).

    DataJoint 2.3.5's ``populate(reserve_jobs=True)`` records a job interrupted by SIGTERM as an
    error (:data:`SIGTERM_MESSAGE`), so the key would not be made again until cleared; an
    interruption is not a failure of the key, and the caller puts such rows back
    (:func:`element_session.jobs.put_back`).
    """
    return {"status": "error", "host": platform.node(), "pid": os.getpid(), "error_message": SIGTERM_MESSAGE}


def match_backslashes_as_datajoint_escapes_them(connection: dj.Connection) -> None:
    """On PostgreSQL, read backslashes in string literals as escapes, as DataJoint writes them.

    DataJoint 2.3.5 escapes a backslash in a dict restriction by doubling it (MySQL's rule). With
    PostgreSQL's default ``standard_conforming_strings = on`` the doubled backslash is taken
    literally, and ``Table & {"name": "a\\b"}`` silently matches nothing. Turning the setting off for
    this session makes such restrictions exact; query parameters are unaffected. To make it
    permanent for a role: ``ALTER ROLE name SET standard_conforming_strings = off``.
    """
    if connection.adapter.backend != "postgresql":
        return
    if connection.query("SHOW standard_conforming_strings").fetchone()[0] == "on":
        connection.query("SET escape_string_warning = off")
        connection.query("SET standard_conforming_strings = off")


def forget_dropped_schema(schema: dj.Schema) -> None:
    """Remove a dropped ``schema`` from its connection's registry and dependency graph.

    DataJoint 2.3.5's ``Schema.drop`` leaves the dropped schema registered on the connection
    (``connection.schemas``), where later cascading deletes still look for its tables, and keeps
    the schema object bound, so that its module could not be activated again.
    """
    schema.connection.schemas.pop(schema.database, None)
    schema.connection.dependencies.clear()
    schema.database = None


def check_key_backslashes(value: str) -> str:
    """``value``, refused (``ValueError``) if it has a backslash before a quote or at its end.

    DataJoint 2.3.5's cascading delete re-reads restrictions as SQL text and misparses such values,
    so rows keyed by them could not be deleted.
    """
    if _BACKSLASH_BEFORE_QUOTE.search(value):
        raise ValueError("a key value may not have a backslash at its end or before a quote")
    return value


def _missing_lineage(table: type[dj.Table]) -> list[str]:
    heading = table().heading
    if not heading.lineage_available:
        return []  # a schema without ``~lineage`` (before DataJoint 2.x): joins do not check lineage
    return [name for name in table.primary_key if heading[name].lineage is None]


def reload_stale_headings(tables: Iterable[type[dj.Table]], schema_name: str) -> None:
    """Read again the headings of ``tables`` that were read before their lineage rows were repaired.

    DataJoint 2.3.5 repairs missing ``~lineage`` rows of a declared table while activating its
    schema (``Table._refresh_lineage``), but the table's heading, read just before to find them
    missing, stays cached without lineage: the first join in the process then fails ("Cannot join
    on attribute ...: lineage missing"), the next process works. A new heading is made the way
    DataJoint's own ``Table.alter`` does. Lineage still missing afterwards (the account may not
    write ``~lineage``, or the upstream schema was not activated with ``create_tables``) raises
    :class:`ActivationError` naming the repair.
    """
    missing = []
    for table in tables:
        if _missing_lineage(table):
            table._heading = Heading(table_info=table().heading.table_info)
            missing += [f"`{table.database}`.`{table.table_name}`.{name}" for name in _missing_lineage(table)]
    if missing:
        raise ActivationError(
            f"the ~lineage rows DataJoint 2.x needs for joins are missing for {', '.join(missing)}, and activating "
            f"`{schema_name}` could not write them. Repair them with `element-session migrate --schema {schema_name}` "
            "(MySQL/MariaDB), or activate once with an account that may write to the schemas' `~lineage` tables."
        )
