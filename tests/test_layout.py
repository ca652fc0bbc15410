"""The session schemas have the layout existing pipelines expect, read back from the database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from element_session import session_with_datetime, session_with_id

# column -> (type as the server reports it, normalised across backends; nullable)
SESSION_TABLES = {
    "session_with_datetime": {
        "session": {"pk": ["subject", "session_datetime"], "columns": {"session_id": ("int", True)}},
    },
    "session_with_id": {
        "session": {"pk": ["subject", "session_id"], "columns": {"session_datetime": ("datetime", True)}},
    },
}
SHARED = {
    "session__attribute": {
        "pk": ["attribute_name"],
        "columns": {
            "attribute_name": ("varchar(32)", False),
            "attribute_value": ("varchar(2000)", False),
            "attribute_blob": ("blob", True),
        },
        "parents": {"session"},
    },
    "session_directory": {"pk": [], "columns": {"session_dir": ("varchar(256)", False)}, "parents": {"session"}},
    "session_experimenter": {"pk": ["user"], "columns": {}, "parents": {"session", "#user"}},
    "session_note": {"pk": [], "columns": {"session_note": ("varchar(1024)", False)}, "parents": {"session"}},
    "project_session": {"pk": ["project"], "columns": {}, "parents": {"session", "#project"}},
    # not in the published layout: this project's addition, so that local start times can be shown
    "session_timezone": {"pk": [], "columns": {"session_timezone": ("varchar(64)", False)}, "parents": {"session"}},
    # the status of a session in its life (docs/status.md)
    "session_status": {
        "pk": [],
        "columns": {
            "session_status": ("varchar(16)", False),
            "status_set_time": ("datetime", False),
            "status_set_by": ("varchar(255)", False),
            "status_reason": ("varchar(1024)", False),
        },
        "parents": {"session"},
    },
}
NORMALISE = {
    "integer": "int",
    "timestamp without time zone": "datetime",
    "character varying": "varchar",
    "longblob": "blob",
    "bytea": "blob",
}


def expected_layout(variant: str) -> dict[str, dict]:
    session = SESSION_TABLES[variant]["session"]
    key = session["pk"]
    key_columns = {
        "subject": ("varchar(32)", False),
        key[1]: ("datetime" if key[1] == "session_datetime" else "int", False),
    }
    layout = {"session": {"pk": key, "columns": {**key_columns, **session["columns"]}, "parents": {"subject"}}}
    for table, spec in SHARED.items():
        pk = ["project", *key] if table == "project_session" else [*key, *spec["pk"]]
        extra = {name: ("varchar(32)", False) for name in spec["pk"] if name in ("user", "project")}
        layout[table] = {"pk": pk, "columns": {**key_columns, **extra, **spec["columns"]}, "parents": spec["parents"]}
    return layout


def read_layout(connection, schema_name: str) -> dict[str, dict]:
    """Tables, primary keys, column types and foreign-key parents as the server reports them."""
    query = connection.query
    tables = [
        row[0]
        for row in query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", args=(schema_name,)
        )
    ]
    layout = {}
    for table in tables:
        if table.startswith("~"):  # DataJoint's own bookkeeping tables
            continue
        columns = {}
        for name, data_type, length, nullable in query(
            "SELECT column_name, data_type, character_maximum_length, is_nullable FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            args=(schema_name, table),
        ):
            data_type = NORMALISE.get(data_type, data_type)
            columns[name] = (f"{data_type}({length})" if data_type == "varchar" else data_type, nullable == "YES")
        pk = [
            row[0]
            for row in query(
                "SELECT k.column_name FROM information_schema.table_constraints c "
                "JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name "
                "AND k.table_schema = c.table_schema AND k.table_name = c.table_name "
                "WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = %s AND c.table_name = %s "
                "ORDER BY k.ordinal_position",
                args=(schema_name, table),
            )
        ]
        layout[table] = {"pk": pk, "columns": columns}
    rules = query(
        "SELECT c.table_name, r.update_rule FROM information_schema.referential_constraints r "
        "JOIN information_schema.table_constraints c ON c.constraint_schema = r.constraint_schema "
        "AND c.constraint_name = r.constraint_name WHERE c.table_schema = %s",
        args=(schema_name,),
    ).fetchall()
    for table, rule in rules:
        layout[table].setdefault("update_rules", set()).add(rule)
    return layout


@pytest.fixture
def id_sessions(pipeline, prefix):
    """The id variant, activated next to the workflow's sessions and dropped afterwards."""
    from element_session import session_with_id
    from element_session.linking import drop_schema

    session_with_id.activate(prefix + "session_by_id", linking_module=pipeline)
    yield session_with_id
    drop_schema(session_with_id.schema)


@pytest.fixture(params=["session_with_datetime", "session_with_id"])
def activated(request, pipeline):
    """(variant name, schema name) of each session variant, activated in its own schema."""
    module = pipeline.session if request.param == "session_with_datetime" else request.getfixturevalue("id_sessions")
    return request.param, module.schema.database


def test_layout_matches_the_published_element(activated, connection):
    import datajoint as dj

    variant, schema_name = activated
    actual = read_layout(connection, schema_name)
    expected = expected_layout(variant)
    assert set(actual) == set(expected)
    for table, spec in expected.items():
        assert actual[table]["pk"] == spec["pk"], table
        assert actual[table]["columns"] == spec["columns"], table
        assert actual[table]["update_rules"] == {"CASCADE"}, table
        full_name = connection.adapter.make_full_table_name(schema_name, table)
        parents = {name.rsplit(".", 1)[1].strip('`"') for name in dj.FreeTable(connection, full_name).parents()}
        assert parents == spec["parents"], table


def test_both_variants_live_side_by_side(id_sessions, pipeline, prefix):
    """The workflow's datetime sessions and id sessions coexist, each in its own schema."""
    by_datetime = pipeline.session
    pipeline.Subject.insert1({"subject": "side", "sex": "U", "subject_birth_date": "2021-01-01"})
    by_datetime.Session.insert1({"subject": "side", "session_datetime": "2024-02-03 04:05:06"})
    id_sessions.Session.insert1({"subject": "side", "session_id": 7})
    assert by_datetime.Session.database == prefix + "session"
    assert id_sessions.Session.database == prefix + "session_by_id"
    assert len(by_datetime.Session & {"subject": "side"}) == 1
    assert (id_sessions.Session & {"subject": "side"}).to_dicts() == [
        {"subject": "side", "session_id": 7, "session_datetime": None}
    ]
    (pipeline.Subject & {"subject": "side"}).delete()
    assert len(by_datetime.Session & {"subject": "side"}) == 0
    assert len(id_sessions.Session & {"subject": "side"}) == 0


CLASSES = (
    "SessionDirectory",
    "SessionExperimenter",
    "SessionNote",
    "ProjectSession",
    "SessionTimezone",
    "SessionStatus",
)


@pytest.mark.parametrize("variant", [session_with_datetime, session_with_id], ids=lambda m: m.__name__)
def test_each_table_is_a_class_of_its_variant_documented_from_its_definition(variant):
    """A search for ``class SessionNote(`` lands on the table; its docstring lists its attributes."""
    source = Path(variant.__file__).read_text()
    tables = {"Session": variant.Session, "Attribute": variant.Session.Attribute}
    tables |= {name: getattr(variant, name) for name in CLASSES}
    for name, table in tables.items():
        assert re.search(rf"^\s*class {name}\(", source, re.M), f"{name} is not declared in {variant.__file__}"
        assert table.__module__ == variant.__name__
        doc = table.__doc__
        assert doc.splitlines()[0].strip(), f"{name} has no summary line"
        lines = [line.strip() for line in table.definition.splitlines()]
        attributes = [re.match(r"(\w+)\s*(=[^:]*)?:\s*([^#]+?)\s*(#|$)", line) for line in lines]
        for match in filter(None, attributes):
            assert f"{match[1]} : {match[3]}" in doc, f"{name}: {match[1]} missing from its docstring"
        for parent in re.findall(r"^->\s*(\w+)", table.definition, re.M):
            assert f"{parent} : foreign key" in doc


MOVED_MODULES = {
    "element_session.readers": "element_session.ingest.readers",
    "element_session.validate": "element_session.ingest.validate",
    "element_session.bulk": "element_session.ingest.bulk",
    "element_session.keys": "element_session.ingest.keys",
    "element_session.migrate": "element_session.upgrade.migrate",
    "element_session.charsets": "element_session.upgrade.charsets",
    "element_session.doctor": "element_session.upgrade.doctor",
    "element_session.ddl": "element_session.upgrade.steps",
    "element_session.timezones": "element_session.times",
}


@pytest.mark.parametrize(("old", "new"), MOVED_MODULES.items())
def test_a_moved_module_keeps_its_old_import_path_as_the_same_module(old, new):
    import importlib

    assert importlib.import_module(old) is importlib.import_module(new)


def test_the_documented_import_paths_give_the_same_objects():
    import element_session
    from element_session import migrate, times, timezones
    from element_session.doctor import diagnose
    from element_session.ingest import ingest
    from element_session.migrate import migrate as migrate_function
    from element_session.upgrade import doctor
    from element_session.upgrade import migrate as upgrade_migrate

    assert element_session.session is session_with_datetime
    assert migrate is upgrade_migrate and migrate_function is upgrade_migrate.migrate
    assert diagnose is doctor.diagnose
    assert timezones.read_time is times.read_time
    assert callable(ingest) and ingest.__module__.startswith("element_session.ingest")
