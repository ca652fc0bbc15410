"""activate(): the linking module is checked first, errors are clear, nothing is half-activated."""

from __future__ import annotations

import secrets
import subprocess
import sys
import types
import warnings

import datajoint as dj
import pytest

from element_session import session_with_id
from element_session.errors import ActivationError, LinkingModuleError
from element_session.linking import drop_schema


def schema_exists(connection, name: str) -> bool:
    return name in dj.list_schemas(connection)


def test_missing_and_wrong_tables_are_named_and_no_schema_is_created(pipeline, prefix, connection):
    linking = types.ModuleType("my_lab_pipeline")
    linking.Subject = pipeline.Subject
    linking.Project = "project"  # not a table
    name = prefix + "never_created"
    with pytest.raises(LinkingModuleError) as err:
        session_with_id.activate(name, linking_module=linking)
    message = str(err.value)
    assert "my_lab_pipeline" in message
    assert "`Experimenter` is missing" in message
    assert "Experimenter = lab.User" in message
    assert "`Project` is a str, not a DataJoint table" in message
    assert "Subject" not in message.split("\n", 1)[1]  # the good table is not reported
    assert not schema_exists(connection, name)
    assert not session_with_id.schema.is_activated()


def test_linking_module_given_by_import_path_that_does_not_exist(prefix, connection):
    with pytest.raises(LinkingModuleError, match="'no_such_pipeline_module' cannot be imported"):
        session_with_id.activate(prefix + "nope", linking_module="no_such_pipeline_module")
    with pytest.raises(LinkingModuleError, match="needs linking_module"):
        session_with_id.activate(prefix + "nope")
    assert not schema_exists(connection, prefix + "nope")


def test_unactivated_upstream_schema_is_reported(prefix, connection):
    deferred = dj.Schema()

    @deferred
    class Animal(dj.Manual):
        definition = "animal: varchar(16)"

    linking = types.ModuleType("half_ready")
    linking.Subject = linking.Project = linking.Experimenter = Animal
    with pytest.raises(LinkingModuleError, match="not activated yet"):
        session_with_id.activate(prefix + "nope", linking_module=linking)
    assert not schema_exists(connection, prefix + "nope")


def test_activating_again_same_name_is_a_no_op_and_another_name_is_refused(pipeline, prefix, connection):
    from element_session import session_with_datetime

    session_with_datetime.activate(prefix + "session", linking_module=pipeline)  # already active: nothing happens
    assert session_with_datetime.Session.database == prefix + "session"
    with pytest.raises(ActivationError, match=f"already activated as schema `{prefix}session`"):
        session_with_datetime.activate(prefix + "second", linking_module=pipeline)
    assert not schema_exists(connection, prefix + "second")
    assert session_with_datetime.Session.database == prefix + "session"


def test_the_newest_first_list_has_an_index_in_its_order_on_either_server(pipeline, connection):
    """The list's ORDER BY session_datetime DESC, subject DESC is an index's order: no sort of ties."""
    session = pipeline.session.Session
    if connection.adapter.backend == "postgresql":  # a B-tree holds only its columns: activation adds them
        (definition,) = connection.query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s AND indexname = %s",
            args=(session.database, session.table_name, "session_newest_first"),
        ).fetchone()
        assert definition.endswith("(session_datetime, subject)")
    else:  # InnoDB appends the primary key to index(session_datetime) by itself
        rows = connection.query(
            "SELECT column_name FROM information_schema.statistics WHERE table_schema = %s AND table_name = %s "
            "AND index_name <> 'PRIMARY' AND seq_in_index = 1",
            args=(session.database, session.table_name),
        ).fetchall()
        assert ("session_datetime",) in [tuple(r) for r in rows]


def test_activation_raises_no_warning_from_project_code(pipeline, prefix):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session_with_id.activate(prefix + "quiet", linking_module=pipeline.__name__)
    try:
        ours = [w for w in caught if "element_session" in w.filename or "workflow" in w.filename]
        assert ours == []
        assert session_with_id.Session.database == prefix + "quiet"
    finally:
        drop_schema(session_with_id.schema)


USER_PIPELINE = """
import datajoint as dj
import numpy as np
from element_session import {variant} as session

lab = dj.Schema("{prefix}mylab_{variant}")
@lab
class Person(dj.Manual):
    definition = '''
    person_id: int32  # badge number
    ---
    name: varchar(64)
    '''

@lab
class Grant(dj.Manual):
    definition = '''
    grant_code: varchar(16)
    '''

@lab
class Animal(dj.Manual):
    definition = '''
    animal_tag: varchar(40)
    ---
    species: varchar(32)
    '''

Subject, Project, Experimenter = Animal, Grant, Person
session.activate("{prefix}mysession_{variant}", linking_module=__name__)

Animal.insert1(dict(animal_tag="mouse-with-a-long-tag-0001", species="mouse"))
Person.insert1(dict(person_id=17, name="Ada"))
Grant.insert1(dict(grant_code="R01"))
key = dict(animal_tag="mouse-with-a-long-tag-0001", {key})
session.Session.insert1(key)
session.SessionExperimenter.insert1(dict(key, person_id=17))
session.ProjectSession.insert1(dict(key, grant_code="R01"))
session.Session.Attribute.insert1(dict(key, attribute_name="gain", attribute_blob={{"a": np.eye(2)}}))
row = (session.Session.Attribute & key).to_dicts()[0]
assert np.array_equal(row["attribute_blob"]["a"], np.eye(2))
print(sorted((session.SessionExperimenter * Person).to_dicts()[0].items()))
print(session.ProjectSession.heading.primary_key)
"""


@pytest.mark.parametrize(
    ("variant", "key"),
    [("session_with_datetime", "session_datetime='2024-05-06 07:08:09'"), ("session_with_id", "session_id=3")],
)
def test_a_users_own_linking_module_works(run_python, prefix, variant, key):
    """Subject/Project/Experimenter from the user's own tables, with their own key names and types."""
    out = run_python(USER_PIPELINE.format(variant=variant, prefix=prefix, key=key)).stdout
    assert "('name', 'Ada')" in out
    assert "('person_id', 17)" in out
    assert "grant_code" in out.splitlines()[-1]


LINEAGE_PIPELINE = """
import datajoint as dj
from element_session import session_with_id as session
from element_session.query import find_sessions, session_table

lab = dj.Schema("{prefix}{name}_lab")

@lab
class Animal(dj.Manual):
    definition = '''
    animal: varchar(16)
    '''

@lab
class Person(dj.Lookup):
    definition = "person: varchar(16)"

@lab
class Grant(dj.Lookup):
    definition = "grant_code: varchar(16)"

Subject, Project, Experimenter = Animal, Grant, Person
session.activate("{prefix}{name}_session", linking_module=__name__)

from element_session.linking import activate_downstream
down = dj.Schema()

@down
class Count(dj.Computed):
    definition = '''
    -> session.Session
    ---
    n: int32
    '''

    def make(self, key):
        self.insert1(dict(key, n=1))

activate_downstream(down, "{prefix}{name}_down", session_module=session, tables=[Count])
"""

FILL = """
Animal.insert1(dict(animal="a1"))
Person.insert1(dict(person="ada"))
session.Session.insert1(dict(animal="a1", session_id=1))
session.SessionExperimenter.insert1(dict(animal="a1", session_id=1, person="ada"))
Count.populate()
"""

FIRST_QUERIES = """
table = session_table(session.Session(), session)
print("table:", list(table["experimenters"]))
print("found:", len(find_sessions(session, experimenter="ada")))
print("joined:", len(session.Session * Animal))
print("downstream:", len(Count * session.Session))
"""


def delete_lineage(connection, schemas: list[str]) -> None:
    for schema in schemas:
        lineage = connection.adapter.quote_identifier(schema) + "." + connection.adapter.quote_identifier("~lineage")
        connection.query(f"DELETE FROM {lineage}")


def test_lineage_repaired_at_activation_works_for_the_first_query_of_the_process(run_python, prefix, connection):
    """~lineage rows deleted (a partial upgrade, a restore): the first query of a fresh process works."""
    run_python(LINEAGE_PIPELINE.format(prefix=prefix, name="ln") + FILL)
    delete_lineage(connection, [f"{prefix}ln_lab", f"{prefix}ln_session", f"{prefix}ln_down"])
    result = run_python(LINEAGE_PIPELINE.format(prefix=prefix, name="ln") + FIRST_QUERIES)
    assert "table: [['ada']]\nfound: 1\njoined: 1\ndownstream: 1\n" in result.stdout, result.stderr
    assert "Cannot join" not in result.stderr
    restored = connection.query(
        f"SELECT COUNT(*) FROM {connection.adapter.quote_identifier(prefix + 'ln_session')}."
        f"{connection.adapter.quote_identifier('~lineage')}"
    ).fetchone()[0]
    assert restored > 0


def test_lineage_an_account_cannot_repair_is_an_activation_error_naming_the_fix(
    run_python, prefix, connection, subprocess_env, tmp_path
):
    from tests.helpers import create_account, drop_account

    schemas = [f"{prefix}lr_lab", f"{prefix}lr_session", f"{prefix}lr_down"]
    run_python(LINEAGE_PIPELINE.format(prefix=prefix, name="lr") + FILL)
    delete_lineage(connection, schemas)
    user, password = f"lr_{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    create_account(connection, user, password, schemas)
    try:
        result = subprocess.run(
            [sys.executable, "-c", LINEAGE_PIPELINE.format(prefix=prefix, name="lr") + FIRST_QUERIES],
            env={**subprocess_env, "DJ_USER": user, "DJ_PASS": password},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        drop_account(connection, user)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("element_session.errors.ActivationError: the ~lineage rows DataJoint 2.x needs for joins")
    assert f"Repair them with `element-session migrate --schema {prefix}lr_session`" in last
    assert "Cannot join" not in result.stderr
