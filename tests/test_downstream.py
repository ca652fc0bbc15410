"""The README's downstream recipe, run as written; the helpers downstream elements take from a linking module."""

from __future__ import annotations

import datetime as dt
import importlib
import re
import secrets
import sys
from pathlib import Path

import pytest

from element_session import paths
from element_session.errors import LinkingModuleError, SessionNotFoundError
from element_session.linking import activate_downstream, drop_schema
from element_session.populate import populate

README = Path(__file__).parent.parent / "README.md"
START = dt.datetime(2024, 6, 1, 9, 0, 0)

PIPELINE = """
# a lab's pipeline module, as the published workflows write it
from element_session.paths import get_ephys_root_data_dir, get_session_directory  # noqa: F401
from workflow.pipeline import *  # noqa: F403
from workflow.pipeline import DATABASE_PREFIX, session

import {recordings} as recordings

recordings.activate(DATABASE_PREFIX + "{recordings}", session_module=session)
"""


def readme_recipe() -> str:
    """The Python block of the README's "Downstream processing" section."""
    section = README.read_text().split("## Downstream processing", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return block


@pytest.fixture
def downstream(pipeline, tmp_path, monkeypatch):
    """(pipeline module, recordings module) built from the README's recipe; dropped at the end."""
    tag = secrets.token_hex(4)
    recordings, name = f"recordings_{tag}", f"downstream_pipeline_{tag}"
    (tmp_path / f"{recordings}.py").write_text(readme_recipe())
    (tmp_path / f"{name}.py").write_text(PIPELINE.format(recordings=recordings))
    monkeypatch.syspath_prepend(str(tmp_path))  # the workers import the pipeline by name, with this path
    module = importlib.import_module(name)
    yield module, module.recordings
    drop_schema(module.recordings.schema)
    sys.modules.pop(name, None)
    sys.modules.pop(recordings, None)


@pytest.fixture
def sessions(pipeline, tmp_path, monkeypatch):
    """Three sessions of a subject of this test, with raw-data directories of 1, 2 and 3 files."""
    root = tmp_path / "raw"
    monkeypatch.setenv(paths.ROOT_DIRS_ENV, str(root))
    subject = f"ds-{secrets.token_hex(3)}"
    pipeline.Subject.insert1({"subject": subject, "sex": "U", "subject_birth_date": "2023-01-01"})
    keys = [{"subject": subject, "session_datetime": START + dt.timedelta(days=i)} for i in range(3)]
    pipeline.session.Session.insert(keys)
    pipeline.session.SessionDirectory.insert([{**k, "session_dir": f"{subject}/day{i}"} for i, k in enumerate(keys)])
    for i in range(3):
        for j in range(i + 1):
            (root / subject / f"day{i}" / "sub").mkdir(parents=True, exist_ok=True)
            (root / subject / f"day{i}" / "sub" / f"f{j}.bin").write_bytes(b"x" * (10 * (j + 1)))
    yield keys, root
    (pipeline.Subject & {"subject": subject}).delete()


def test_the_readme_recipe_populates_with_workers(downstream, sessions):
    module, recordings = downstream
    keys, _ = sessions
    summary = populate(module, workers=2, restriction=[{"subject": keys[0]["subject"]}], progress=False)
    assert summary.ok, summary
    rows = (recordings.Recording & [{"subject": keys[0]["subject"]}]).to_dicts()
    got = {r["session_datetime"]: (r["file_count"], r["total_bytes"]) for r in rows}
    assert got == {k["session_datetime"]: (i + 1, sum(10 * (j + 1) for j in range(i + 1))) for i, k in enumerate(keys)}


def test_linking_module_functions_behave_as_downstream_elements_expect(downstream, sessions):
    """element-array-ephys calls find_full_path(get_ephys_root_data_dir(), get_session_directory(key))."""
    module, _ = downstream
    keys, root = sessions
    roots = module.get_ephys_root_data_dir()
    assert roots == [root]
    directory = module.get_session_directory({**keys[1], "insertion_number": 0})  # extra keys are ignored
    assert directory == root / keys[1]["subject"] / "day1"
    assert roots[0] / directory == directory  # joining a root with it, as find_full_path does, keeps it
    with pytest.raises(SessionNotFoundError, match="no session"):
        module.get_session_directory({**keys[1], "session_datetime": START - dt.timedelta(days=9)})


def test_downstream_before_the_session_schema_is_a_typed_error(pipeline):
    import types

    import datajoint as dj

    not_activated = types.ModuleType("my_session")
    not_activated.Session = type("Session", (), {"database": None})  # a table class before activate()
    schema = dj.Schema()
    with pytest.raises(LinkingModuleError, match=r"'my_session' has no activated `Session`: activate the session"):
        activate_downstream(schema, "never_created", session_module=not_activated)
    assert not schema.is_activated()


def test_a_downstream_schema_whose_declaration_fails_is_not_left_created(pipeline, prefix, connection):
    """As ``activate()``: a schema the call created is dropped again when a table cannot be declared (it stayed,
    empty or half-declared, and the next activation found it)."""
    import datajoint as dj

    schema = dj.Schema()
    table = type("Typo", (dj.Computed,), {"definition": "-> session.Session\n---\nn: int3\n", "make": print})
    schema(table, context={})
    name = prefix + "downstream_typo"
    with pytest.raises(dj.DataJointError, match="int3"):
        activate_downstream(schema, name, session_module=pipeline.session, tables=[table])
    assert not connection.query(connection.adapter.schema_exists_sql(name)).rowcount
    assert not schema.is_activated()
