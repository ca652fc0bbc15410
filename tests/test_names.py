"""Names the server cannot hold are refused at activation, before anything is created (issue 20.2).

The issue's example: ``DATABASE_PREFIX`` plus a suffix longer than MySQL's 64 characters (a raw
error shown as "unexpected error") or PostgreSQL's 63 bytes (silently cut, so that two schemas may
become one). The same for the tables a schema's classes declare, their part tables and their jobs
tables (``~~name``, which DataJoint's own check of table names does not see).
"""

from __future__ import annotations

import datajoint as dj
import pytest

from element_session import session_with_id
from element_session.errors import ActivationError
from element_session.linking import IDENTIFIER_LIMITS, activate_downstream, drop_schema


def schemata(connection) -> set[str]:
    """Every schema on the server, from information_schema."""
    rows = connection.query("SELECT schema_name FROM information_schema.schemata").fetchall()
    return {row[0] for row in rows}


def test_a_session_schema_name_too_long_is_refused_naming_its_length_and_the_limit(pipeline, prefix, connection):
    limit, unit = IDENTIFIER_LIMITS[connection.adapter.backend]
    name = prefix + "s" * (limit + 1 - len(prefix))
    before = schemata(connection)
    with pytest.raises(ActivationError) as err:
        session_with_id.activate(name, linking_module=pipeline)
    assert f"schema name {name!r} ({limit + 1} {unit})" in str(err.value)
    assert f"at most {limit} {unit}" in str(err.value) and "Nothing was created" in str(err.value)
    assert schemata(connection) == before
    assert not session_with_id.schema.is_activated()


def downstream_schema(table_name_length: int, part_name_length: int = 0) -> tuple[dj.Schema, type[dj.Table]]:
    """A deferred schema with an Imported table whose name has ``table_name_length`` characters, and a part's."""
    schema = dj.Schema()
    parts = {}
    if part_name_length:
        part = type("P" + "p" * (part_name_length - 1), (dj.Part,), {"definition": "-> master\n    n: int32"})
        parts[part.__name__] = part
    name = "R" + "r" * (table_name_length - 2)  # the table's name: "_" and the class's in snake case

    def make(self, key):  # never called
        raise AssertionError(key)

    table = type(name, (dj.Imported,), {"definition": "-> session.Session", "make": make, **parts})
    schema(table, context={})
    assert table.table_name == "_" + name.lower()
    return schema, table


def test_a_jobs_table_name_too_long_is_refused_before_the_schema_is_created(pipeline, prefix, connection):
    limit, unit = IDENTIFIER_LIMITS[connection.adapter.backend]
    schema, table = downstream_schema(limit)  # the table's name fits; its jobs table's "~~" + name does not
    name = prefix + "names_ds"
    before = schemata(connection)
    with pytest.raises(ActivationError) as err:
        activate_downstream(schema, name, session_module=pipeline.session, tables=[table])
    jobs = "~~" + table.table_name.lstrip("_")
    assert f"table name {jobs!r} ({limit + 1} {unit})" in str(err.value)
    assert f"table name '{table.table_name}'" not in str(err.value)  # it fits
    assert schemata(connection) == before
    assert not schema.is_activated()


def test_a_part_table_name_too_long_is_refused(pipeline, prefix, connection):
    limit, unit = IDENTIFIER_LIMITS[connection.adapter.backend]
    schema, table = downstream_schema(20, limit - 20 - 1)  # master + "__" + part: limit + 1
    before = schemata(connection)
    with pytest.raises(ActivationError, match=rf"table name '{table.table_name}__p+' \({limit + 1} {unit}\)"):
        activate_downstream(schema, prefix + "names_part", session_module=pipeline.session, tables=[table])
    assert schemata(connection) == before


def test_mysql_names_its_foreign_keys_after_the_table(pipeline, prefix, connection):
    if connection.adapter.backend != "mysql":
        pytest.skip("PostgreSQL shortens the names of foreign keys it makes itself")
    schema, table = downstream_schema(63 - len("_ibfk_1") + 1)  # table and jobs table fit, `table_ibfk_1` does not
    before = schemata(connection)
    with pytest.raises(ActivationError, match=rf"foreign key name '{table.table_name}_ibfk_1' \(64 characters, at"):
        activate_downstream(schema, prefix + "names_fk", session_module=pipeline.session, tables=[table])
    assert schemata(connection) == before


def test_names_at_the_limit_are_activated(pipeline, prefix, connection):
    limit, _ = IDENTIFIER_LIMITS[connection.adapter.backend]
    mysql = connection.adapter.backend == "mysql"
    schema, table = downstream_schema(63 - len("_ibfk_1") if mysql else limit - 1)  # the longest name: the limit
    name = prefix + "names_fit"
    try:
        activate_downstream(schema, name, session_module=pipeline.session, tables=[table])
        longest = f"{table.table_name}_ibfk_1" if mysql else table.jobs.table_name
        assert len(longest) == (63 if mysql else limit) and table.jobs.table_name == "~~" + table.table_name.lstrip("_")
        assert table.jobs.is_declared and len(table.jobs) == 0
    finally:
        drop_schema(schema)


def test_the_workflow_with_a_prefix_too_long_creates_nothing_and_says_so(command, connection):
    limit, unit = IDENTIFIER_LIMITS[connection.adapter.backend]
    prefix = "w" * (limit - len("lab")) + "_"  # even the shortest schema name, `lab`, is one too long
    before = schemata(connection)
    for long_prefix in (prefix, prefix[len("inventory") - len("lab") :]):  # only `inventory` too long
        ran = command("sessions", child=True, env={"DATABASE_PREFIX": long_prefix})
        assert ran.status == 1, ran
        assert f"holds names of at most {limit} {unit}" in ran.err and "Nothing was created" in ran.err
        assert "unexpected error" not in ran.err and "Traceback" not in ran.err
    assert schemata(connection) == before  # not the lab schema either, nor a cut name on PostgreSQL


def test_a_pipelines_own_schema_name_mysql_refuses_is_an_activation_error(connection):
    if connection.adapter.backend != "mysql":
        pytest.skip("PostgreSQL cuts a long name without an error (the product checks its own names first)")
    from element_session.database import database_errors

    name = "own_" + "x" * 70
    refusal = rf"refused the database name '{name}' \(74 characters\).*at most 64"
    with pytest.raises(ActivationError, match=refusal), database_errors():
        dj.Schema(name, connection=connection)
    assert name not in schemata(connection)


@pytest.mark.parametrize("prefix_given", ["lab.v2_", "my lab_", 'a"b_', "a`b_", "Lab_"])
def test_a_schema_name_datajoint_cannot_use_is_refused_before_anything_is_created(command, connection, prefix_given):
    capitals = prefix_given == "Lab_"
    if capitals and connection.adapter.backend != "postgresql":
        pytest.skip("MySQL/MariaDB hold capital letters in a schema name")
    before = schemata(connection)
    ran = command("sessions", child=True, env={"DATABASE_PREFIX": prefix_given})
    assert ran.status == 1, ran
    assert f"activating `{prefix_given}lab`: it holds" in ran.err and "Nothing was created" in ran.err
    assert ("capital letters" if capitals else "which DataJoint cannot use in a schema name") in ran.err
    assert "unexpected error" not in ran.err
    assert schemata(connection) == before
