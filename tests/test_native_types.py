"""Definitions in DataJoint 0.14's spelling: refused where the server cannot hold them, said once where it can.

The issue's example: the published downstream elements declare ``longblob`` (and ``int``,
``smallint``, ``tinyint``, ``double``); on PostgreSQL ``activate_downstream`` ended with a raw driver
traceback (``type "longblob" does not exist``), on MariaDB DataJoint only logged. Now the
definitions are read before anything is declared (issue 20.4).
"""

from __future__ import annotations

import types
import warnings

import datajoint as dj
import pytest

from element_session.errors import ActivationError, NativeTypeWarning
from element_session.linking import activate_downstream, drop_schema
from element_session.native_types import native_attributes, spelling
from element_session.upgrade.doctor import definition_findings

OLD_SPELLING = """
-> session.Session
---
n_units: int
depth: smallint
good: tinyint
rate: double
waveform: longblob
label: varchar(16)
samples: <blob>
"""


def schemata(connection) -> set[str]:
    return {row[0] for row in connection.query("SELECT schema_name FROM information_schema.schemata").fetchall()}


def old_schema() -> tuple[dj.Schema, type[dj.Table]]:
    """A deferred schema whose Computed table is written as the published elements write theirs."""
    schema = dj.Schema()

    class Units(dj.Part):
        definition = "-> master\nunit: int\n---\nspikes: longblob"

    def make(self, key):  # never called
        raise AssertionError(key)

    table = type("Clustering", (dj.Computed,), {"definition": OLD_SPELLING, "make": make, "Units": Units})
    schema(table, context={})
    return schema, table


def test_each_native_type_is_named_with_its_2x_spelling():
    _, table = old_schema()
    found = {f"{a.table}.{a.attribute}": a.spelling for a in native_attributes(table, "mysql")}
    assert found == {
        "Clustering.n_units": "int32",
        "Clustering.depth": "int16",
        "Clustering.good": "int8 (bool for a flag)",
        "Clustering.rate": "float64",
        "Clustering.waveform": "<blob> (a serialized object; bytes for raw binary)",
        "Clustering.Units.unit": "int32",
        "Clustering.Units.spikes": "<blob> (a serialized object; bytes for raw binary)",
    }
    assert spelling("INT UNSIGNED") == "int64" and spelling("mediumblob") == spelling("blob") == spelling("longblob")


def test_old_spelling_on_this_backend(pipeline, prefix, connection):
    schema, table = old_schema()
    name = prefix + "native_old"
    before = schemata(connection)
    if connection.adapter.backend == "postgresql":
        with pytest.raises(ActivationError) as err:
            activate_downstream(schema, name, session_module=pipeline.session, tables=[table])
        message = str(err.value)
        assert "Clustering.waveform: longblob -> <blob>" in message
        assert "Clustering.good: tinyint -> int8" in message and "Clustering.rate: double -> float64" in message
        assert "Clustering.Units.spikes: longblob -> <blob>" in message and "Nothing was created" in message
        assert "n_units" not in message and "depth" not in message  # PostgreSQL holds int and smallint
        assert schemata(connection) == before and not schema.is_activated()
        return
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            activate_downstream(schema, name, session_module=pipeline.session, tables=[table])
        ours = [w for w in caught if issubclass(w.category, NativeTypeWarning)]
        assert len(ours) == 1, [str(w.message) for w in caught]
        assert "Clustering.waveform: longblob -> <blob>" in str(ours[0].message)
        assert table.heading["rate"].type == "double"  # declared as written
    finally:
        drop_schema(schema)


def test_doctor_lists_the_native_types_of_a_pipeline_module(pipeline, prefix, connection, command):
    if connection.adapter.backend == "postgresql":
        pytest.skip("PostgreSQL cannot declare such a pipeline (the test above); doctor reads the definitions")
    schema, table = old_schema()
    module = types.ModuleType("old_pipeline")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NativeTypeWarning)  # said by the test above
        activate_downstream(schema, prefix + "native_doctor", session_module=pipeline.session, tables=[table])
    module.Clustering = table
    try:
        (finding,) = definition_findings(module)
        assert (finding.schema, finding.check, finding.severity, finding.count) == (
            prefix + "native_doctor",
            "definition-type",
            "note",
            7,
        )
        assert (
            "Clustering.waveform: longblob -> <blob> (a serialized object; bytes for raw binary) "
            "(PostgreSQL refuses it)" in finding.items
        )
        assert "Clustering.n_units: int -> int32" in finding.items  # PostgreSQL holds int
        assert definition_findings(pipeline) == []  # the workflow is written in DataJoint 2.x's types
    finally:
        drop_schema(schema)
    status, out, err = command("doctor", "--schema", prefix + "session", "--definitions")
    assert status == 0 and "definition-type" not in out, out + err


def test_a_table_a_pipeline_declares_itself_in_old_spelling_is_an_activation_error(pipeline, prefix, connection):
    if connection.adapter.backend != "postgresql":
        pytest.skip("MySQL/MariaDB hold longblob (test_old_spelling_on_this_backend)")
    from element_session.database import database_errors

    schema = dj.Schema(prefix + "native_own", connection=connection)  # not through activate_downstream
    try:
        table = type("Raw", (dj.Manual,), {"definition": "raw_id: int32\n---\nwaveform: longblob"})
        with pytest.raises(ActivationError) as err, database_errors():
            schema(table, context={})
        said = str(err.value)
        assert "no type 'longblob' (attribute 'waveform')" in said and "<blob>" in said
        assert "UndefinedObject" not in said and "LINE" not in said
    finally:
        schema.drop(prompt=False)


def test_the_old_spelling_of_stored_and_attached_values_is_refused_with_its_codec(pipeline, prefix, connection):
    """``blob@store``, ``attach@store``, ``filepath@store`` and ``attach`` are DataJoint 0.14's; 2.x knows them only as
    codecs (``<blob@store>``). activate_downstream said DataJoint's "Unsupported attribute type blob@raw", after
    creating the schema, on both backends."""
    schema = dj.Schema()
    definition = "-> session.Session\n---\nraw: blob@raw\nfile: attach@raw\npath: filepath@raw\nsmall: attach\n"
    table = type("Stored", (dj.Imported,), {"definition": definition, "make": lambda self, key: None})
    schema(table, context={})
    before = schemata(connection)
    with pytest.raises(ActivationError) as err:
        activate_downstream(schema, prefix + "native_stores", session_module=pipeline.session, tables=[table])
    message = str(err.value)
    for said in ("Stored.raw: blob@raw -> <blob@raw>", "Stored.file: attach@raw -> <attach@raw>",
                 "Stored.path: filepath@raw -> <filepath@raw>", "Stored.small: attach -> <attach>"):  # fmt: skip
        assert said in message
    assert "Nothing was created" in message and "Unsupported attribute type" not in message
    assert schemata(connection) == before and not schema.is_activated()
