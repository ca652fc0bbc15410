"""Every session table inserts and reads back, blobs included; deleting a subject cascades."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

KEY = {"subject": "rt-mouse", "session_datetime": dt.datetime(2024, 3, 4, 5, 6, 7)}


@pytest.fixture
def one_session(pipeline):
    s = pipeline.session
    pipeline.Subject.insert1({"subject": "rt-mouse", "sex": "F", "subject_birth_date": "2023-01-02"})
    pipeline.User.insert1({"user": "rt-ada", "user_fullname": "Ada Lovelace"})
    pipeline.Project.insert1({"project": "rt-maps", "project_description": "cortical maps"})
    s.Session.insert1({**KEY, "session_id": 12})
    s.SessionDirectory.insert1({**KEY, "session_dir": "rt-mouse/2024-03-04"})
    s.SessionExperimenter.insert1({**KEY, "user": "rt-ada"})
    s.SessionNote.insert1({**KEY, "session_note": "réglage ✓ — 測試 🐭"})
    s.ProjectSession.insert1({**KEY, "project": "rt-maps"})
    yield s
    (pipeline.Subject & {"subject": "rt-mouse"}).delete()
    (pipeline.User & {"user": "rt-ada"}).delete()
    (pipeline.Project & {"project": "rt-maps"}).delete()


BLOBS = {
    "array": np.arange(12, dtype=np.float32).reshape(3, 4),
    "dict": {"gain": 2.5, "channels": [1, 2, 3], "label": "ü"},
    "list": [1, "two", 3.0, None],
}


def test_every_table_reads_back(one_session):
    s = one_session
    assert (s.Session & KEY).to_dicts() == [{**KEY, "session_id": 12}]
    assert (s.SessionDirectory & KEY).to_dicts()[0]["session_dir"] == "rt-mouse/2024-03-04"
    assert (s.SessionExperimenter & KEY).to_dicts() == [{**KEY, "user": "rt-ada"}]
    assert (s.SessionNote & KEY).to_dicts()[0]["session_note"] == "réglage ✓ — 測試 🐭"
    assert (s.ProjectSession & KEY).to_dicts() == [{**KEY, "project": "rt-maps"}]


def test_attribute_values_and_blobs_come_back_equal(one_session):
    s = one_session
    s.Session.Attribute.insert(
        [
            {**KEY, "attribute_name": name, "attribute_value": f"as {name}", "attribute_blob": value}
            for name, value in BLOBS.items()
        ]
    )
    s.Session.Attribute.insert1({**KEY, "attribute_name": "plain", "attribute_value": "x" * 2000})
    rows = {row["attribute_name"]: row for row in (s.Session.Attribute & KEY).to_dicts()}
    assert set(rows) == {*BLOBS, "plain"}
    back = rows["array"]["attribute_blob"]
    assert back.dtype == np.float32
    assert np.array_equal(back, BLOBS["array"])
    assert rows["dict"]["attribute_blob"] == BLOBS["dict"]
    assert rows["list"]["attribute_blob"] == BLOBS["list"]
    assert rows["dict"]["attribute_value"] == "as dict"
    assert rows["plain"]["attribute_blob"] is None
    assert rows["plain"]["attribute_value"] == "x" * 2000


def test_deleting_a_subject_cascades_through_every_session_table(one_session, pipeline):
    s = one_session
    s.Session.Attribute.insert1({**KEY, "attribute_name": "gain", "attribute_value": "2"})
    tables = [
        s.Session,
        s.Session.Attribute,
        s.SessionDirectory,
        s.SessionExperimenter,
        s.SessionNote,
        s.ProjectSession,
    ]
    assert all(len(t & KEY) == 1 for t in tables)
    (pipeline.Subject & {"subject": "rt-mouse"}).delete()
    assert [len(t & KEY) for t in tables] == [0] * len(tables)
    assert len(pipeline.User & {"user": "rt-ada"}) == 1  # upstream people and projects stay
    assert len(pipeline.Project & {"project": "rt-maps"}) == 1
