"""Ingestion: every source format, atomicity, idempotence, conflicts, time zones, typed errors."""

from __future__ import annotations

import datetime as dt
import json
import textwrap

import pandas as pd
import pytest

from element_session.errors import ConflictError, InputError
from element_session.ingest import ingest
from element_session.query import session_table
from tests.helpers import remove_references, snapshot

SUBJECTS, PEOPLE, PROJECTS = ["ig-m1", "ig-m2"], ["ig-ada", "ig-bob"], ["ig-maps", "ig-rig"]


@pytest.fixture
def refs(references):
    return references(SUBJECTS, PEOPLE, PROJECTS)


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


SESSIONS_CSV = """
subject,session_datetime,session_id,experimenter,project,session_dir,session_note,attr.rig,attr.task
ig-m1,2024-03-10T14:30:00+01:00,1,ig-ada;ig-bob,ig-maps,ig-m1/s1,"first, with a comma ✓",rig-a,
ig-m1,2024-03-11 09:00:00,2,ig-ada,ig-maps;ig-rig,ig-m1/s2,"two
lines",rig-b,go-nogo
ig-m2,2024-03-12T08:00:00Z,,,,,,,
"""


def test_sessions_from_csv_read_back_with_zones_people_projects_and_attributes(refs, tmp_path):
    report = ingest("sessions", write(tmp_path, "s.csv", SESSIONS_CSV), pipeline=refs, timezone="Europe/Berlin")
    assert report.rows == 3 and report.present == []
    assert report.inserted == {
        "Session": 3, "SessionTimezone": 3, "SessionExperimenter": 3, "ProjectSession": 3,
        "SessionDirectory": 2, "SessionNote": 2, "Attribute": 3,
    }  # fmt: skip
    table = session_table(refs.session.Session & [{"subject": s} for s in SUBJECTS], refs.session)
    rows = table.to_dict("records")
    first, second, third = rows
    assert first["session_datetime"] == dt.datetime(2024, 3, 10, 13, 30, tzinfo=dt.UTC)
    assert first["session_timezone"] == "+01:00"
    assert first["experimenters"] == ["ig-ada", "ig-bob"] and first["projects"] == ["ig-maps"]
    assert first["session_note"] == "first, with a comma ✓" and first["attr.rig"] == "rig-a"
    assert first["attr.task"] is None  # an empty cell is not given: no attribute row
    # a local time without offset is read in the caller's zone, and that zone is kept
    assert second["session_datetime"] == dt.datetime(2024, 3, 11, 8, 0, tzinfo=dt.UTC)
    assert second["session_timezone"] == "Europe/Berlin"
    assert second["session_datetime_local"] == "2024-03-11T09:00:00+01:00"
    assert second["session_note"] == "two\nlines" and second["projects"] == ["ig-maps", "ig-rig"]
    assert third["session_timezone"] == "UTC" and third["session_id"] is None
    assert third["experimenters"] == [] and third["session_dir"] is None and third["session_note"] is None


def test_ingesting_again_writes_nothing_and_reports_rows_present(refs, tmp_path):
    path = write(tmp_path, "s.csv", SESSIONS_CSV)
    ingest("sessions", path, pipeline=refs, timezone="Europe/Berlin")
    before = snapshot(refs)
    again = ingest("sessions", path, pipeline=refs, timezone="Europe/Berlin")
    assert again.new == 0 and len(again.present) == 3
    assert all(n == 0 for n in again.inserted.values())
    assert "3 already present" in str(again)
    assert snapshot(refs) == before


def test_conflicting_content_is_an_error_listing_the_fields_and_nothing_changes(refs, tmp_path):
    ingest("sessions", write(tmp_path, "s.csv", SESSIONS_CSV), pipeline=refs, timezone="Europe/Berlin")
    before = snapshot(refs)
    changed = SESSIONS_CSV.replace('"first, with a comma ✓"', "other note").replace("ig-ada;ig-bob", "ig-ada")
    changed += "ig-m2,2024-04-01T08:00:00Z,,,,,,,\n"  # a new session in the same file is not written either
    with pytest.raises(ConflictError) as err:
        ingest("sessions", write(tmp_path, "c.csv", changed), pipeline=refs, timezone="Europe/Berlin")
    columns = {(p.row, p.column) for p in err.value.problems}
    assert columns == {(2, "session_note"), (2, "experimenter")}
    assert "c.csv, row 2, column 'session_note'" in str(err.value)
    assert "first, with a comma ✓" in str(err.value)
    assert snapshot(refs) == before


def test_subjects_people_projects_from_csv_yaml_json_and_idempotent(pipeline, tmp_path):
    subjects = write(tmp_path, "subjects.csv", """
        subject,sex,subject_birth_date,subject_nickname,subject_description
        ig-s1,F,2023-01-02,Zoë,
        ig-s2,U,2023-05-06,,"a long, quoted description"
    """)  # fmt: skip
    people = write(tmp_path, "people.yaml", """
        - user: ig-cy
          user_email: cy@example.org
          user_fullname: Cy Ü
        - user: ig-00012
    """)  # fmt: skip
    projects = write(tmp_path, "projects.json", json.dumps([{"project": "ig-p", "project_description": "✓"}]))
    try:
        for kind, path, rows in (("subjects", subjects, 2), ("experimenters", people, 2), ("projects", projects, 1)):
            assert ingest(kind, path, pipeline=pipeline).new == rows
        rows = (pipeline.Subject & [{"subject": "ig-s1"}, {"subject": "ig-s2"}]).to_dicts()
        assert rows[0]["subject_nickname"] == "Zoë" and rows[0]["subject_birth_date"] == dt.date(2023, 1, 2)
        assert rows[1]["subject_description"] == "a long, quoted description" and rows[1]["subject_nickname"] == ""
        # YAML scalars stay text as written: 00012 is not the number 12
        assert len(pipeline.User & {"user": "ig-00012"}) == 1
        assert (pipeline.User & {"user": "ig-cy"}).to_dicts()[0]["user_fullname"] == "Cy Ü"
        assert (pipeline.Project & {"project": "ig-p"}).to_dicts()[0]["project_description"] == "✓"
        before = snapshot(pipeline)
        for kind, path in (("subjects", subjects), ("experimenters", people), ("projects", projects)):
            assert ingest(kind, path, pipeline=pipeline).new == 0
        assert snapshot(pipeline) == before
        with pytest.raises(ConflictError, match="column 'sex': conflict: stored value is 'F'"):
            ingest(
                "subjects", [{"subject": "ig-s1", "sex": "M", "subject_birth_date": "2023-01-02"}], pipeline=pipeline
            )
    finally:
        remove_references(pipeline, ["ig-s1", "ig-s2"], ["ig-cy", "ig-00012"], ["ig-p"])


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        ({"sex": "X"}, "sex", "not one of M, F, U"),
        ({"subject_birth_date": "2023-02-30"}, "subject_birth_date", "impossible date"),
        ({"subject_birth_date": "02/03/2023"}, "subject_birth_date", "not an ISO 8601 date"),
        ({"subject": "x" * 33}, "subject", "33 characters, longer than the column's 32"),
        ({"subject_weight": "20"}, "subject_weight", "unknown column"),
        ({"sex": None}, "sex", "required value not given"),
        ({"subject": "ig-trailing\\"}, "subject", "backslash at its end"),
    ],
)
def test_bad_subject_rows_are_typed_errors(pipeline, row, column, reason):
    good = {"subject": "ig-bad", "sex": "M", "subject_birth_date": "2023-01-01"}
    before = snapshot(pipeline)
    with pytest.raises(InputError) as err:
        ingest("subjects", [good | {"subject": "ig-fine"}, good | row], pipeline=pipeline)
    (problem,) = err.value.problems
    assert (problem.row, problem.column) == (2, column)
    assert reason in problem.reason
    assert snapshot(pipeline) == before


def test_an_enum_lists_its_own_values_while_another_schema_has_a_type_of_its_name(pipeline, prefix):
    """PostgreSQL: each schema of another prefix has an enum type of the same name; its labels were listed too
    ("not one of M, M, F, F, U, U")."""
    connection = pipeline.Subject.connection
    if connection.adapter.backend != "postgresql":
        pytest.skip("MySQL and MariaDB hold an enum's values in the column's type")
    (typname,) = connection.query(
        "SELECT t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %s::regclass AND a.attname = 'sex'",
        args=(pipeline.Subject.full_table_name,),
    ).fetchone()
    other = f"{prefix}enum_twin"
    connection.query(f'CREATE SCHEMA "{other}"')
    try:
        connection.query(f"CREATE TYPE \"{other}\".\"{typname}\" AS ENUM ('M', 'F', 'U', 'X2')")
        with pytest.raises(InputError) as err:
            ingest("subjects", [{"subject": "ig-enum", "sex": "X", "subject_birth_date": "2023-01-01"}],
                   pipeline=pipeline)  # fmt: skip
        assert err.value.problems[0].reason == "not one of M, F, U"
    finally:
        connection.query(f'DROP SCHEMA "{other}" CASCADE')


GOOD = {"subject": "ig-m1", "session_datetime": "2024-05-01T10:00:00Z", "experimenter": "ig-ada"}


@pytest.mark.parametrize(
    ("change", "column", "reason"),
    [
        ({"subject": "ig-nobody"}, "subject", "unknown subject"),
        ({"experimenter": "ig-ada;ig-nobody"}, "experimenter", "unknown experimenter"),
        ({"project": "ig-nothing"}, "project", "unknown project"),
        ({"experimenter": "ig-ada;;ig-bob"}, "experimenter", "an empty name"),
        ({"experimenter": "ig-ada;ig-ada"}, "experimenter", "listed twice"),
        ({"session_note": "n" * 1025}, "session_note", "1025 characters, longer than the column's 1024"),
        ({"attr.rig": "v" * 2001}, "attr.rig", "longer than the column's 2000"),
        ({"attr." + "a" * 33: "v"}, "attr." + "a" * 33, "longer than the column's 32"),
        ({"attr.it\\'s": "v"}, "attr.it\\'s", "before a quote"),
        ({"session_note": "nul\x00byte"}, "session_note", "NUL"),
        ({"session_datetime": "2024-13-01T10:00:00"}, "session_datetime", "impossible date or time"),
        ({"session_datetime": "yesterday"}, "session_datetime", "not an ISO 8601"),
        ({"session_datetime": "2024-05-01"}, "session_datetime", "not an ISO 8601"),
        ({"session_datetime": "2024-05-01T10:00:00.250"}, "session_datetime", "fraction of a second"),
        ({"session_datetime": "2024-03-31T02:30:00[Europe/Berlin]"}, "session_datetime", "does not exist"),
        ({"session_datetime": "2024-10-27T02:30:00[Europe/Berlin]"}, "session_datetime", "ambiguous"),
        ({"session_datetime": "2024-05-01T10:00:00[Mars/Olympus]"}, "session_datetime", "unknown time zone"),
        ({"session_datetime": "2024-05-01T10:00:00[+99:00]"}, "session_datetime", "out of range"),  # was a ValueError
        ({"session_datetime": "2024-05-01T10:00:00[+02:75]"}, "session_datetime", "out of range"),  # was read as +03:15
        ({"session_datetime": None}, "session_datetime", "required value not given"),
        ({"session_id": "2147483648"}, "session_id", "outside the column's range"),
        ({"session_id": "3.0"}, "session_id", "not a whole number"),
        ({"session_dir": "ig-m1/../../etc"}, "session_dir", ".."),
        ({"session_dir": "/outside/every/root"}, "session_dir", "root"),
        ({"sesion_note": "typo"}, "sesion_note", "unknown column"),
        ({"experimenter": ["ig-ada"], "subject": ["ig-m1"]}, "subject", "a list where one value is expected"),
    ],
)
def test_bad_session_rows_name_row_column_value_and_change_nothing(refs, change, column, reason, monkeypatch, tmp_path):
    monkeypatch.setenv("SESSION_ROOT_DIRS", str(tmp_path))
    before = snapshot(refs)
    rows = [GOOD | {"session_datetime": "2024-05-02T10:00:00Z"}, GOOD | change]
    with pytest.raises(InputError) as err:
        ingest("sessions", rows, pipeline=refs)
    assert not isinstance(err.value, ConflictError)
    problems = [(p.row, p.column) for p in err.value.problems]
    assert (2, column) in problems
    assert any(reason in p.reason for p in err.value.problems if p.column == column), str(err.value)
    assert f"row 2, column {column!r}" in str(err.value)
    assert snapshot(refs) == before


def test_duplicate_session_in_the_input_names_both_rows(refs, tmp_path):
    path = write(tmp_path, "dup.csv", """
        subject,session_datetime
        ig-m1,2024-06-01T10:00:00+02:00
        ig-m1,2024-06-01T08:00:00Z
    """)  # fmt: skip
    before = snapshot(refs)
    with pytest.raises(InputError, match=r"dup.csv, row 3, .*duplicate session \(also .*dup.csv row 2\)"):
        ingest("sessions", path, pipeline=refs)
    assert snapshot(refs) == before


def test_a_session_number_the_subject_has_already_is_refused_naming_that_session(refs, tmp_path):
    assert "session_datetime" in refs.session.Session.primary_key  # the datetime variant: the number is not the key
    first = [{"subject": "ig-m1", "session_datetime": "2024-06-01T10:00:00Z", "session_id": 2}]
    ingest("sessions", first, pipeline=refs)
    before = snapshot(refs)
    again = [{"subject": "ig-m1", "session_datetime": "2024-06-02T10:00:00Z", "session_id": 2}]
    with pytest.raises(ConflictError, match=r"session number 2 of this subject is already taken by session "
                                            r"subject=ig-m1, session_datetime=2024-06-01T10:00:00\+00:00"):  # fmt: skip
        ingest("sessions", again, pipeline=refs)
    path = write(tmp_path, "numbers.csv", """
        subject,session_datetime,session_id
        ig-m2,2024-06-01T10:00:00Z,5
        ig-m2,2024-06-02T10:00:00Z,5
    """)  # fmt: skip
    with pytest.raises(ConflictError, match=r"numbers.csv, row 3, .*session number 5 .*taken by .*numbers.csv row 2"):
        ingest("sessions", path, pipeline=refs)
    assert snapshot(refs) == before
    # the same session again, another subject's number 2, and a session without a number are all fine
    ingest("sessions", [{"subject": "ig-m1", "session_datetime": "2024-06-01T10:00:00Z", "session_id": 2},
                        {"subject": "ig-m2", "session_datetime": "2024-06-01T10:00:00Z", "session_id": 2},
                        {"subject": "ig-m1", "session_datetime": "2024-06-03T10:00:00Z"}], pipeline=refs)  # fmt: skip


def test_a_misspelt_header_column_is_one_problem_naming_its_rows_and_the_other_problems_show(refs, tmp_path):
    rows = "".join(f"ig-m1,2024-08-{day:02d}T10:00:00Z\n" for day in range(1, 29))
    path = write(tmp_path, "misspelt.csv", "subjct,session_datetime\n" + rows + "ig-m1,2024-02-30T10:00:00Z\n")
    before = snapshot(refs)
    with pytest.raises(InputError) as err:
        ingest("sessions", path, pipeline=refs)
    lines = str(err.value).splitlines()
    assert lines[0] == "3 problem(s) in the input, nothing was written:"
    assert (
        "misspelt.csv, row 1, column 'subjct': unknown column: sessions have 'subject', 'session_datetime'" in lines[1]
    )
    assert lines[1].endswith(" and attr.<name>") and "[" not in lines[1]  # at the header, once, no value
    assert "row 2, column 'subject': required value not given (also rows 3-30)" in lines[2]
    assert "row 30, column 'session_datetime'" in lines[3] and "'2024-02-30T10:00:00Z'" in lines[3]  # not hidden
    assert snapshot(refs) == before


def test_an_error_in_a_later_file_writes_nothing_from_earlier_files(refs, tmp_path):
    good = write(tmp_path, "good.csv", "subject,session_datetime\nig-m1,2024-07-01T10:00:00Z\n")
    bad = write(
        tmp_path, "bad.csv", "subject,session_datetime\nig-m2,2024-07-01T10:00:00Z\nig-m9,2024-07-02T10:00:00Z\n"
    )
    before = snapshot(refs)
    with pytest.raises(InputError, match=r"bad\.csv, row 3, column 'subject': unknown subject"):
        ingest("sessions", [good, bad], pipeline=refs)
    assert snapshot(refs) == before
    report = ingest("sessions", [good], pipeline=refs)
    assert report.new == 1


def test_absolute_directory_under_a_root_is_stored_relative(refs, tmp_path, monkeypatch):
    monkeypatch.setenv("SESSION_ROOT_DIRS", str(tmp_path / "raw"))
    absolute = tmp_path / "raw" / "ig-m1" / "s9"
    ingest("sessions", [GOOD | {"session_dir": str(absolute)}], pipeline=refs)
    stored = (refs.session.SessionDirectory & {"subject": "ig-m1"}).to_dicts()[0]["session_dir"]
    assert stored == "ig-m1/s9"


def test_dataframe_and_dict_sources(refs):
    frame = pd.DataFrame(
        {
            "subject": ["ig-m1", "ig-m2"],
            "session_datetime": [pd.Timestamp("2024-08-01 10:00", tz="America/New_York"), "2024-08-02T11:00:00"],
            "session_id": [7, None],  # becomes float with NaN in pandas: 7.0 must stay 7
            "experimenter": [["ig-ada", "ig-bob"], "ig-bob"],
            "attr.rig": ["r1", float("nan")],
        }
    )
    report = ingest("sessions", frame, pipeline=refs, timezone="Asia/Tokyo")
    assert report.new == 2
    rows = session_table(refs.session.Session & [{"subject": s} for s in SUBJECTS], refs.session).to_dict("records")
    assert rows[0]["session_id"] == 7 and rows[0]["session_timezone"] == "-04:00"
    assert rows[0]["session_datetime"] == dt.datetime(2024, 8, 1, 14, 0, tzinfo=dt.UTC)
    assert rows[0]["experimenters"] == ["ig-ada", "ig-bob"]
    assert rows[1]["session_timezone"] == "Asia/Tokyo" and rows[1]["session_id"] is None
    assert rows[1]["session_datetime"] == dt.datetime(2024, 8, 2, 2, 0, tzinfo=dt.UTC)
    assert "attr.rig" not in rows[1] or rows[1]["attr.rig"] is None
    assert ingest("sessions", frame, pipeline=refs, timezone="Asia/Tokyo").new == 0


def test_dry_run_checks_and_writes_nothing(refs, tmp_path):
    before = snapshot(refs)
    report = ingest("sessions", write(tmp_path, "s.csv", SESSIONS_CSV), pipeline=refs, dry_run=True)
    assert report.dry_run and report.inserted["Session"] == 3
    assert "would insert" in str(report)
    assert snapshot(refs) == before


def test_json_and_yaml_sessions_take_lists(refs, tmp_path):
    as_json = write(tmp_path, "s.json", json.dumps([GOOD | {"experimenter": ["ig-ada", "ig-bob"], "session_id": 4}]))
    as_yaml = write(tmp_path, "s.yaml", """
        - subject: ig-m2
          session_datetime: 2024-05-01T10:00:00+09:00
          experimenter: [ig-bob]
          project:
            - ig-maps
            - ig-rig
          attr.count: 0012
    """)  # fmt: skip
    assert ingest("sessions", [as_json, as_yaml], pipeline=refs).new == 2
    rows = {r["subject"]: r for r in session_table(refs.session).to_dict("records") if r["subject"] in SUBJECTS}
    assert rows["ig-m1"]["experimenters"] == ["ig-ada", "ig-bob"] and rows["ig-m1"]["session_id"] == 4
    assert rows["ig-m2"]["projects"] == ["ig-maps", "ig-rig"] and rows["ig-m2"]["attr.count"] == "0012"
    assert rows["ig-m2"]["session_timezone"] == "+09:00"


def test_json_number_with_fraction_for_an_integer_is_rejected(refs, tmp_path):
    path = write(tmp_path, "s.json", json.dumps([GOOD | {"session_id": 4.5}]))
    with pytest.raises(InputError, match=r"s.json, row 1, column 'session_id': not a whole number \(value: '4.5'\)"):
        ingest("sessions", path, pipeline=refs)


def test_malformed_files_are_typed_errors(refs, tmp_path):
    cases = {
        "ragged.csv": ("subject,session_datetime\nig-m1,2024-01-01T00:00:00Z,extra\n", "row 2"),
        "twice.csv": ("subject,subject\nig-m1,ig-m1\n", "column given twice"),
        "bad.yaml": ("- subject: [unclosed\n", "malformed YAML"),
        "notalist.json": ('{"subject": "ig-m1"}', "expected a list of objects"),
        "dupkey.json": ('[{"subject": "ig-m1", "subject": "ig-m2"}]', "given twice"),
        "broken.json": ('[\n  {"subject": }]', "row 2: not JSON: expecting a value at line 2, column 15"),
        "notes.txt": ("hello", "unknown file type"),
    }
    for name, (text, message) in cases.items():
        with pytest.raises(InputError, match=message):
            ingest("sessions", write(tmp_path, name, text), pipeline=refs)
    with pytest.raises(InputError, match="no such file"):
        ingest("sessions", tmp_path / "missing.csv", pipeline=refs)
    with pytest.raises(InputError, match="unknown time zone"):
        ingest("sessions", [GOOD], pipeline=refs, timezone="Not/AZone")
    with pytest.raises(InputError, match="time zone name of 257 characters"):
        ingest("sessions", [GOOD], pipeline=refs, timezone="x" * 257)  # once an OSError from the zone files


def test_large_input_shows_a_progress_bar_and_is_batched(refs, capsys):
    rows = [
        {"subject": "ig-m1", "session_datetime": (dt.datetime(2020, 1, 1) + dt.timedelta(hours=i)).isoformat(),
         "experimenter": "ig-ada", "attr.n": str(i)}
        for i in range(1200)
    ]  # fmt: skip
    report = ingest("sessions", rows, pipeline=refs, progress=True)
    assert report.inserted["Session"] == 1200 and report.inserted["Attribute"] == 1200
    assert "ingest sessions: 1200row" in capsys.readouterr().err  # the bar counts input rows
    assert len(refs.session.Session & {"subject": "ig-m1"}) == 1200


def test_wide_values_are_split_into_statements_the_server_accepts(refs):
    """2,500 attributes of 2,000 four-byte characters (20 MB) exceed one statement's 16 MiB limit."""
    row = GOOD | {f"attr.a{i}": "🐭" * 2000 for i in range(2500)}
    assert ingest("sessions", [row], pipeline=refs).inserted["Attribute"] == 2500
    stored = (refs.session.Session.Attribute & {"subject": "ig-m1"}).to_dicts()
    assert len(stored) == 2500 and all(r["attribute_value"] == "🐭" * 2000 for r in stored)


def test_chunks_are_one_transaction_and_one_input(refs, monkeypatch):
    """Input is validated and written a chunk at a time; a problem in a late chunk undoes the early ones,
    and a key repeated across chunks is still a duplicate."""
    from element_session.ingest import transaction

    monkeypatch.setattr(transaction, "CHUNK", 3)
    rows = [GOOD | {"session_datetime": f"2024-09-01T10:00:{i:02d}Z", "attr.i": str(i)} for i in range(10)]
    before = snapshot(refs)
    bad = [
        *rows[:8],
        rows[8] | {"session_note": "x" * 1025},
        rows[9] | {"session_datetime": rows[1]["session_datetime"]},
    ]
    with pytest.raises(InputError) as err:
        ingest("sessions", bad, pipeline=refs)
    assert [(p.row, p.column) for p in err.value.problems] == [(9, "session_note"), (10, "session_datetime")]
    assert "duplicate session (also input row 2)" in str(err.value)
    assert snapshot(refs) == before  # the chunks written before the problem were rolled back
    report = ingest("sessions", rows, pipeline=refs)
    assert report.rows == 10 and report.inserted["Session"] == 10 and report.inserted["Attribute"] == 10
    assert ingest("sessions", rows, pipeline=refs).new == 0


def test_the_garbage_collector_is_paused_while_ingesting_and_left_as_it_was(refs, monkeypatch):
    """Ingest pauses Python's cyclic collector (a quarter of its CPU at 10^5 sessions), then restores it."""
    import gc

    from element_session.ingest.sessions import SessionPlan

    seen, prepare = [], SessionPlan.prepare
    monkeypatch.setattr(SessionPlan, "prepare", lambda *a: seen.append(gc.isenabled()) or prepare(*a))
    assert gc.isenabled()
    ingest("sessions", [GOOD], pipeline=refs)
    with pytest.raises(InputError):
        ingest("sessions", [GOOD | {"session_note": "x" * 1025}], pipeline=refs)
    assert gc.isenabled() and seen == [False, False]
    gc.disable()  # a caller that paused it itself keeps it paused
    try:
        ingest("sessions", [GOOD], pipeline=refs)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_one_run_lists_every_kind_of_problem_of_a_file(refs, tmp_path):
    """An unknown column, a bad time, an unknown subject and experimenter, a session number taken and a
    conflict with a stored session, all in one error: they came one run after the other (the header's
    problem or a bad row stopped the checks of the stored rows and references)."""
    ingest("sessions", [{"subject": "ig-m1", "session_datetime": "2024-08-01T10:00:00Z", "session_id": "71",
                         "session_note": "kept"}], pipeline=refs)  # fmt: skip
    path = write(tmp_path, "day.csv", """
        subject,session_datetime,session_id,experimenter,session_note,bogus
        ig-m1,2024-08-02T10:00:00Z,71,ig-ada,,x
        ig-m1,2024-08-99T10:00:00Z,72,ig-ada,,x
        ig-nobody,2024-08-03T10:00:00Z,seventy,ig-ada,,x
        ig-m2,2024-08-04T10:00:00Z,74,ig-nemo,,x
        ig-m1,2024-08-01T10:00:00Z,71,,changed,x
    """)  # fmt: skip
    before = snapshot(refs)
    with pytest.raises(InputError) as caught:
        ingest("sessions", path, pipeline=refs)
    text = str(caught.value)
    for said in (
        "row 1, column 'bogus': unknown column",
        "row 2, column 'session_id': session number 71 of this subject is already taken",
        "row 3, column 'session_datetime'",
        "row 4, column 'session_id'",
        "row 4, column 'subject': unknown subject",  # in a row with another problem too
        "row 5, column 'experimenter': unknown experimenter",
        "row 6, column 'session_note': conflict",
    ):
        assert said in text, (said, text)
    assert snapshot(refs) == before
