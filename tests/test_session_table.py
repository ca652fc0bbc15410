"""The table of sessions: its dtypes, what pandas users do with it, names with separators, and the
JSON/CSV/text forms that ``formats`` writes from it (pinned byte for byte)."""

from __future__ import annotations

import csv
import io
import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

from element_session import formats
from element_session.ingest import ingest
from element_session.query import find_sessions, session_table
from tests.helpers import add_references, remove_references

matplotlib.use("Agg")

SUBJECTS = ["tf-m1", "tf-m2", "tf-m3"]
PEOPLE = ["tf-ada", "tf-bob", 'tf-o"neil, jr', "tf-[x]\\y"]
PROJECTS = ["tf-maps", "tf-eye ✓"]
ROWS = [
    {
        "subject": "tf-m1", "session_datetime": "2024-03-10T14:30:00[Europe/Berlin]", "session_id": 1,
        "experimenter": "tf-bob;tf-ada", "project": "tf-maps", "session_dir": "tf-m1/s1",
        "session_note": 'note, ✓ "quoted"', "attr.rig": "A", "attr.zeta": "x, y",
    },
    {
        "subject": "tf-m1", "session_datetime": "2024-07-01T09:00:00", "experimenter": "tf-bob",
        "session_note": "two\nlines", "attr.rig": "B",
    },
    {
        "subject": "tf-m2", "session_datetime": "1850-01-01T12:00:00[Europe/Berlin]", "session_id": 7,
        "experimenter": ['tf-o"neil, jr', "tf-[x]\\y"], "project": ["tf-eye ✓", "tf-maps"],
        "attr.weird": '["]},\\',
    },
    {"subject": "tf-m3", "session_datetime": "2024-01-15T12:00:00+05:30", "session_dir": "tf-m3/ü"},
]  # fmt: skip


@pytest.fixture(scope="module")
def sessions(pipeline):
    add_references(pipeline, SUBJECTS, PEOPLE, PROJECTS)
    ingest("sessions", ROWS, pipeline=pipeline, timezone="America/New_York")
    yield pipeline.session
    remove_references(pipeline, SUBJECTS, PEOPLE, PROJECTS)


@pytest.fixture
def frame(sessions):
    return session_table(find_sessions(sessions, subject=SUBJECTS), sessions)


def test_dtypes_are_the_documented_ones(frame):
    text = pd.StringDtype()
    assert frame.dtypes.to_dict() == {
        "subject": text,
        "session_datetime": pd.DatetimeTZDtype("us", "UTC"),
        "session_id": pd.Int64Dtype(),
        "session_timezone": text,
        "session_datetime_local": text,
        "experimenters": np.dtype(object),
        "projects": np.dtype(object),
        "session_dir": text,
        "session_note": text,
        "status": text,
        "attr.rig": text,
        "attr.weird": text,
        "attr.zeta": text,
    }
    assert list(frame["subject"]) == ["tf-m1", "tf-m1", "tf-m2", "tf-m3"]
    assert list(frame["session_id"].astype(object).where(frame["session_id"].notna(), None)) == [1, None, 7, None]
    assert frame["session_datetime_local"].tolist() == [
        "2024-03-10T14:30:00+01:00",
        "2024-07-01T09:00:00-04:00",
        "1850-01-01T12:00:00+00:53:28",  # Berlin's local mean time, as datetime.isoformat writes it
        "2024-01-15T12:00:00+05:30",
    ]
    assert frame["session_timezone"].tolist() == ["Europe/Berlin", "America/New_York", "Europe/Berlin", "+05:30"]
    assert frame["experimenters"].tolist() == [["tf-ada", "tf-bob"], ["tf-bob"], ["tf-[x]\\y", 'tf-o"neil, jr'], []]
    assert frame["projects"].tolist() == [["tf-maps"], [], ["tf-eye ✓", "tf-maps"], []]
    assert frame["attr.weird"].tolist()[2] == '["]},\\'  # JSON-like text and separators arrive intact
    assert frame["attr.rig"].isna().tolist() == [False, False, True, True]
    assert frame["session_note"].tolist()[1] == "two\nlines" and pd.isna(frame["session_note"][2])
    assert frame["session_dir"].tolist()[3] == "tf-m3/ü"


def test_month_sorting_grouping_and_plotting_need_no_conversion(frame):
    assert frame.session_datetime.dt.month.tolist() == [3, 7, 1, 1]
    assert frame.session_datetime.dt.year.tolist() == [2024, 2024, 1850, 2024]
    ordered = frame.sort_values("session_datetime")
    assert ordered["subject"].tolist() == ["tf-m2", "tf-m3", "tf-m1", "tf-m1"]
    recent = frame[frame.session_datetime.dt.year == 2024]
    per_month = recent.groupby(pd.Grouper(key="session_datetime", freq="MS")).size()
    assert {k.strftime("%Y-%m"): v for k, v in per_month.items() if v} == {"2024-01": 1, "2024-03": 1, "2024-07": 1}
    assert recent.groupby(recent.session_datetime.dt.month)["subject"].count().to_dict() == {1: 1, 3: 1, 7: 1}
    resampled = recent.set_index("session_datetime").resample("MS").size()
    assert resampled.tolist() == [1, 0, 1, 0, 0, 0, 1]
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    try:
        (line,) = axes.plot(frame.session_datetime, frame.session_id, "o")
        assert len(line.get_xdata()) == 4
        figure.canvas.draw()
    finally:
        plt.close(figure)


def test_an_empty_selection_has_the_same_dtypes(sessions):
    empty = session_table(find_sessions(sessions, subject="tf-nobody"), sessions)
    assert len(empty) == 0
    assert empty["session_datetime"].dtype == pd.DatetimeTZDtype("us", "UTC")
    assert empty["session_id"].dtype == pd.Int64Dtype() and empty["subject"].dtype == pd.StringDtype()
    assert formats.session_records(empty, sessions.Session) == []


def test_any_restriction_and_the_whole_module(sessions, pipeline):
    composed = find_sessions(sessions, experimenter="tf-bob") & "session_id IS NULL"
    assert session_table(composed, sessions)["session_datetime_local"].tolist() == ["2024-07-01T09:00:00-04:00"]
    joined = sessions.Session * pipeline.Subject & {"subject": "tf-m2"}
    assert session_table(joined, sessions)["session_id"].tolist() == [7]
    whole = session_table(sessions)
    assert set(SUBJECTS) <= set(whole["subject"])


# the output of main's implementation before the typed table, byte for byte
JSON_TEXT = (
    "[\n"
    " {\n"
    '  "subject": "tf-m1",\n'
    '  "session_datetime": "2024-03-10T13:30:00+00:00",\n'
    '  "session_id": 1,\n'
    '  "experimenters": [\n'
    '   "tf-ada",\n'
    '   "tf-bob"\n'
    "  ],\n"
    '  "projects": [\n'
    '   "tf-maps"\n'
    "  ],\n"
    '  "session_dir": "tf-m1/s1",\n'
    '  "session_note": "note, ✓ \\"quoted\\"",\n'
    '  "status": "acquired",\n'
    '  "attributes": {\n'
    '   "rig": "A",\n'
    '   "zeta": "x, y"\n'
    "  },\n"
    '  "attribute_blobs": {}\n'
    " },\n"
    " {\n"
    '  "subject": "tf-m1",\n'
    '  "session_datetime": "2024-07-01T13:00:00+00:00",\n'
    '  "session_id": null,\n'
    '  "experimenters": [\n'
    '   "tf-bob"\n'
    "  ],\n"
    '  "projects": [],\n'
    '  "session_dir": null,\n'
    '  "session_note": "two\\nlines",\n'
    '  "status": "acquired",\n'
    '  "attributes": {\n'
    '   "rig": "B"\n'
    "  },\n"
    '  "attribute_blobs": {}\n'
    " },\n"
    " {\n"
    '  "subject": "tf-m2",\n'
    '  "session_datetime": "1850-01-01T11:06:32+00:00",\n'
    '  "session_id": 7,\n'
    '  "experimenters": [\n'
    '   "tf-[x]\\\\y",\n'
    '   "tf-o\\"neil, jr"\n'
    "  ],\n"
    '  "projects": [\n'
    '   "tf-eye ✓",\n'
    '   "tf-maps"\n'
    "  ],\n"
    '  "session_dir": null,\n'
    '  "session_note": null,\n'
    '  "status": "acquired",\n'
    '  "attributes": {\n'
    '   "weird": "[\\"]},\\\\"\n'
    "  },\n"
    '  "attribute_blobs": {}\n'
    " },\n"
    " {\n"
    '  "subject": "tf-m3",\n'
    '  "session_datetime": "2024-01-15T06:30:00+00:00",\n'
    '  "session_id": null,\n'
    '  "experimenters": [],\n'
    '  "projects": [],\n'
    '  "session_dir": "tf-m3/ü",\n'
    '  "session_note": null,\n'
    '  "status": "acquired",\n'
    '  "attributes": {},\n'
    '  "attribute_blobs": {}\n'
    " }\n"
    "]"
)
CSV_TEXT = (
    "subject,session_datetime,session_id,experimenter,project,session_dir,session_note,status,attr.rig,attr.weird,"
    "attr.zeta\r\n"
    'tf-m1,2024-03-10T14:30:00+01:00[Europe/Berlin],1,tf-ada;tf-bob,tf-maps,tf-m1/s1,"note, ✓ ""quoted""",acquired,A,,'
    '"x, y"\r\n'
    'tf-m1,2024-07-01T09:00:00-04:00[America/New_York],,tf-bob,,,"two\n'
    'lines",acquired,B,,\r\n'
    "tf-m3,2024-01-15T12:00:00+05:30,,,,tf-m3/ü,,acquired,,,\r\n"
)
TABLE_TEXT = (  # left-aligned as every other table (formats.text_table)
    "subject session_datetime                            session_id experimenters    "
    "       projects          session_dir session_note     status   attr.rig attr.wei"
    "rd attr.zeta\n"
    "tf-m1   2024-03-10T14:30:00+01:00[Europe/Berlin]    1          tf-ada, tf-bob   "
    '       tf-maps           tf-m1/s1    note, ✓ "quoted" acquired A                '
    "   x, y\n"
    "tf-m1   2024-07-01T09:00:00-04:00[America/New_York]            tf-bob           "
    "                                     two\\nlines       acquired B\n"
    'tf-m2   1850-01-01T12:00:00+00:53:28[Europe/Berlin] 7          tf-[x]\\y, tf-o"ne'
    'il, jr tf-eye ✓, tf-maps                              acquired          ["]},\\\n'
    "tf-m3   2024-01-15T12:00:00+05:30                                               "
    "                         tf-m3/ü                      acquired"
)


def test_json_csv_and_text_forms_are_unchanged(frame, sessions):
    records = formats.session_records(frame, sessions.Session)
    assert json.dumps(records, ensure_ascii=False, indent=1) == JSON_TEXT
    assert all(type(r["session_id"]) in (int, type(None)) for r in records)
    stream = io.StringIO()
    formats.write_sessions_csv(frame[frame["subject"] != "tf-m2"], sessions.Session, stream)
    assert stream.getvalue() == CSV_TEXT
    assert next(csv.reader(io.StringIO(stream.getvalue())))[0] == "subject"
    assert formats.sessions_text(frame) == TABLE_TEXT
