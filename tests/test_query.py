"""The finder and the session table: restrictions, the time window's ends, composition."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from element_session.errors import InputError
from element_session.ingest import ingest
from element_session.query import find_sessions, session_table, unknown_names
from tests.helpers import add_references, remove_references

SUBJECTS = ["qy-m1", "qy-m2", "qy-o'brien", "qy-back\\slash"]
PEOPLE, PROJECTS = ["qy-ada", "qy-bob\\x"], ["qy-maps", "qy-eye"]
SESSIONS = [
    # subject, start (UTC), experimenters, projects, attributes
    ("qy-m1", "2024-01-01T00:00:00Z", "qy-ada", "qy-maps", {"attr.rig": "A"}),
    ("qy-m1", "2024-01-15T12:00:00Z", "qy-bob\\x", "qy-maps;qy-eye", {"attr.rig": "B"}),
    ("qy-m1", "2024-01-31T00:00:00Z", "qy-ada;qy-bob\\x", "qy-eye", {}),
    ("qy-m2", "2024-01-10T08:00:00Z", "qy-bob\\x", "", {"attr.rig": "A"}),
    ("qy-back\\slash", "2024-01-10T08:00:00Z", "qy-ada", "", {"attr.path": "C:\\data\\x"}),
    ("qy-o'brien", "2024-02-01T00:00:00Z", "qy-ada", "", {"attr.rig": "x'; DROP TABLE session; --"}),
]


@pytest.fixture(scope="module")
def sessions(pipeline):
    add_references(pipeline, SUBJECTS, PEOPLE, PROJECTS)
    rows = [
        {"subject": s, "session_datetime": t, "experimenter": e, "project": p or None, **attrs}
        for s, t, e, p, attrs in SESSIONS
    ]
    ingest("sessions", rows, pipeline=pipeline)
    yield pipeline.session
    remove_references(pipeline, SUBJECTS, PEOPLE, PROJECTS)


def starts(query) -> list[str]:
    return sorted(f"{r['subject']} {r['session_datetime']:%Y-%m-%d %H:%M}" for r in query.to_dicts())


def test_by_subject_one_or_several(sessions):
    assert len(find_sessions(sessions, subject="qy-m1")) == 3
    assert len(find_sessions(sessions, subject=["qy-m1", "qy-m2"])) == 4
    assert len(find_sessions(sessions, subject="qy-o'brien")) == 1  # a quote is a value, not SQL
    assert len(find_sessions(sessions, subject="qy-back\\slash")) == 1  # so is a backslash, on every backend
    assert len(find_sessions(sessions, subject="qy-nobody")) == 0


def test_by_project_experimenter_and_attribute(sessions):
    assert starts(find_sessions(sessions, project="qy-eye")) == ["qy-m1 2024-01-15 12:00", "qy-m1 2024-01-31 00:00"]
    assert len(find_sessions(sessions, experimenter="qy-bob\\x")) == 3
    assert len(find_sessions(sessions, experimenter="qy-bob\\x", project="qy-maps")) == 1
    assert len(find_sessions(sessions, attribute="path", value="C:\\data\\x")) == 1
    assert len(find_sessions(sessions, attribute="rig")) == 4
    assert len(find_sessions(sessions, attribute="rig", value="A")) == 2
    assert len(find_sessions(sessions, attribute="rig", value="x'; DROP TABLE session; --")) == 1
    with pytest.raises(InputError, match="needs its attribute name"):
        find_sessions(sessions, value="A")


def test_time_window_includes_since_and_excludes_until(sessions):
    window = find_sessions(sessions, subject="qy-m1", since="2024-01-01T00:00:00Z", until="2024-01-31T00:00:00Z")
    assert starts(window) == ["qy-m1 2024-01-01 00:00", "qy-m1 2024-01-15 12:00"]
    # dates mean midnight; datetimes and text with offsets are converted to UTC
    assert len(find_sessions(sessions, subject="qy-m1", since=dt.date(2024, 1, 2), until="2024-02-01")) == 2
    aware = dt.datetime(2024, 1, 15, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert starts(find_sessions(sessions, subject="qy-m1", since=aware, until=aware + dt.timedelta(seconds=1))) == [
        "qy-m1 2024-01-15 12:00"
    ]
    # a window without an offset is read in the given zone: 2024-01-15 07:00 in New York is 12:00 UTC
    ny = find_sessions(sessions, since="2024-01-15T07:00:00", until="2024-01-15T07:00:01", timezone="America/New_York")
    assert starts(ny) == ["qy-m1 2024-01-15 12:00"]
    with pytest.raises(InputError, match="since"):
        find_sessions(sessions, since="the other day")


def test_a_date_as_until_includes_that_whole_day_and_a_time_stays_exclusive(sessions, command):
    whole_day = ["qy-m1 2024-01-01 00:00", "qy-m1 2024-01-15 12:00"]
    assert starts(find_sessions(sessions, subject="qy-m1", until="2024-01-15")) == whole_day
    assert starts(find_sessions(sessions, subject="qy-m1", until=dt.date(2024, 1, 15))) == whole_day
    assert starts(find_sessions(sessions, subject="qy-m1", until="2024-01-15T00:00")) == whole_day[:1]
    assert starts(find_sessions(sessions, subject="qy-m1", until="2024-01-15T12:00:00Z")) == whole_day[:1]
    # the day is the zone's: 15 January in Tokyo ends at 15:00 UTC, in Honolulu the 16th at 10:00 UTC
    assert starts(find_sessions(sessions, subject="qy-m1", until="2024-01-14", timezone="Asia/Tokyo")) == whole_day[:1]
    assert len(find_sessions(sessions, subject="qy-m1", until="2024-01-15", timezone="Pacific/Honolulu")) == 2
    assert len(find_sessions(sessions, subject="qy-m1", since="2024-01-15", until="2024-01-15")) == 1  # one day
    out = command("sessions", "--subject", "qy-m1", "--until", "2024-01-15", "--format", "json").out
    assert [s["session_datetime"][:10] for s in json.loads(out)] == ["2024-01-01", "2024-01-15"]


def test_a_filter_naming_an_unknown_subject_project_or_experimenter_says_so(sessions, command):
    assert (
        unknown_names(sessions, {"subject": ["qy-m1", "qy-o'brien"], "project": "qy-eye", "experimenter": "qy-ada"})
        == []
    )
    said = unknown_names(
        sessions, {"subject": ["qy-m1", "qy-nobody"], "project": "qy-none", "experimenter": "qy-who", "since": "x"}
    )
    assert said == [
        "subject 'qy-nobody': no such subject exists",
        "project 'qy-none': no such project exists",
        "experimenter 'qy-who': no such experimenter exists",
    ]
    for what in ("subject", "project", "experimenter"):
        ran = command("sessions", f"--{what}", "qy-nobody")
        assert (ran.status, ran.out.strip()) == (0, "no sessions")
        assert ran.err == f"element-session: warning: {what} 'qy-nobody': no such {what} exists\n"
    known = command("sessions", "--subject", "qy-m1", "--project", "qy-eye")
    assert known.status == 0 and known.err == ""
    assert "no such subject" in command("history", "--subject", "qy-nobody").err


def test_the_sessions_table_shows_every_missing_value_as_a_blank_cell(sessions, command):
    """One rule for a person-facing table: no ``<NA>``, ``nan``, ``None`` or ``NaT`` where a value is missing."""
    chosen = ["--subject", "qy-m2", "--subject", "qy-o'brien", "--subject", "qy-back\\slash", "--status", "acquired"]
    printed = command("sessions", *chosen).out
    lines = printed.splitlines()
    assert len(lines) == 4 and "session_id" in lines[0] and "attr.rig" in lines[0] and "attr.path" in lines[0]
    # no number, directory, note or projects, and each lacks one of the two attributes
    assert not re.search(r"<NA>|\bnan\b|\bNone\b|\bNaT\b", printed), printed
    for shown in (command("status", "show", "--subject", "qy-m2").out, command("history", "--subject", "qy-m2").out):
        assert not re.search(r"<NA>|\bnan\b|\bNone\b|\bNaT\b", shown), shown


def test_finder_composes_with_joins_and_restrictions(sessions, pipeline):
    found = find_sessions(sessions, experimenter="qy-ada") & {"subject": "qy-m1"}
    joined = (found * pipeline.Subject).proj("sex").to_dicts()
    assert len(joined) == 2 and all(r["sex"] == "U" for r in joined)
    with_dirs = find_sessions(sessions, subject="qy-m1") - sessions.SessionDirectory
    assert len(with_dirs) == 3


def test_session_table_one_row_per_session(sessions):
    frame = session_table(find_sessions(sessions, subject=SUBJECTS), sessions)
    assert len(frame) == 6
    assert list(frame.columns[:2]) == ["subject", "session_datetime"]
    row = frame[frame["subject"] == "qy-m1"].iloc[1].to_dict()
    assert row["experimenters"] == ["qy-bob\\x"] and row["projects"] == ["qy-eye", "qy-maps"]
    assert row["session_datetime"] == dt.datetime(2024, 1, 15, 12, tzinfo=dt.UTC)
    assert row["session_datetime_local"] == "2024-01-15T12:00:00+00:00" and row["session_timezone"] == "UTC"
    assert row["attr.rig"] == "B"
    assert frame[frame["subject"] == "qy-m2"].iloc[0]["projects"] == []
    empty = session_table(find_sessions(sessions, subject="qy-nobody"), sessions)
    assert len(empty) == 0


def test_count_sessions_is_the_number_of_matches(sessions):
    from element_session.query import count_sessions

    for criteria in ({}, {"subject": "qy-m1"}, {"project": "qy-maps"}, {"attribute": "rig", "value": "A"},
                     {"experimenter": "qy-ada", "until": "2024-01-15"}, {"subject": "qy-nobody"}):  # fmt: skip
        found = find_sessions(sessions, **criteria)
        assert count_sessions(found) == len(found.to_dicts()), criteria


def test_search_finds_text_anywhere_in_any_case_and_its_wildcards_match_themselves(sessions, pipeline, command):
    add_references(pipeline, ["qy-Search"], [], [])
    notes = ["50% done_ok", "50 done ok", "first line\nsecond 'line' \\ end", "Große ÄRGER"]
    rows = [{"subject": "qy-Search", "session_datetime": f"2023-06-0{i + 1}T10:00:00Z", "session_note": note}
            for i, note in enumerate(notes)]  # fmt: skip
    ingest("sessions", rows, pipeline=pipeline)
    try:
        noted = {note: i for i, note in enumerate(notes)}

        def found(text: str) -> list[str]:
            return starts(find_sessions(sessions, search=text))

        def found_notes(text: str) -> list[int]:  # among this test's sessions (other modules' notes may match too)
            query = find_sessions(sessions, search=text, subject="qy-Search") * sessions.SessionNote
            return sorted(noted[r["session_note"]] for r in query.to_dicts())

        assert found_notes("50%") == [0] and found_notes("%") == [0]  # % is a percent sign, not "anything"
        assert found_notes("e_o") == [0] and found_notes("_") == [0]  # _ is an underscore, not "any character"
        assert found_notes("'LINE' \\ E") == [2] and found_notes("\\") == [2]  # a quote, a backslash; any case
        assert found_notes("LINE\nSECOND") == [2]  # the note as written, over its lines
        assert found_notes("äRGER") == [3]  # letters beyond ASCII too (MariaDB; PostgreSQL's C.UTF-8 locale)
        assert len(found("qy-search")) == len(notes)  # the subject, letter case ignored
        assert found("O'BRIEN") == ["qy-o'brien 2024-02-01 00:00"]  # a subject with a quote
        assert found("\\DATA\\") == ["qy-back\\slash 2024-01-10 08:00"]  # an attribute value with backslashes
        assert found("drop table session") == ["qy-o'brien 2024-02-01 00:00"]  # an attribute value, as text
        assert found("BOB\\") == starts(find_sessions(sessions, experimenter="qy-bob\\x"))  # an experimenter
        assert found("-EYE") == starts(find_sessions(sessions, project="qy-eye"))  # a project
        assert found("qy-m1") == starts(find_sessions(sessions, subject="qy-m1"))
        assert found("no such text anywhere") == []
        assert found("eye") == starts(find_sessions(sessions, search="EYE", subject=["qy-m1", "qy-m2"]))
        with pytest.raises(InputError, match=r"search.*NUL"):
            find_sessions(sessions, search="a\x00b")
        with pytest.raises(InputError, match="search"):
            find_sessions(sessions, search=float("nan"))
        printed = json.loads(command("sessions", "--search", "50%", "--subject", "qy-Search", "--format", "json").out)
        assert [s["session_note"] for s in printed] == ["50% done_ok"]
    finally:
        remove_references(pipeline, ["qy-Search"], [], [])
