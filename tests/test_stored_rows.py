"""One bad stored row never hides the others: dirs, sessions and jobs list every row, name the bad one, exit 1."""

from __future__ import annotations

import datetime as dt

import pytest

from element_session import cli, paths
from element_session.populate import list_jobs
from tests.helpers import add_references, remove_references

SUBJECTS, PEOPLE, PROJECTS = ["sr-m1", "sr-m2", "sr-m3"], ["sr-ada"], ["sr-maps"]
WINDOWS = r"D:\rawdata\m2\2019-05-01"  # as the published element stored it: absolute, outside every root
KEYS = [{"subject": s, "session_datetime": dt.datetime(2024, 1, 2, 3, 4, 5)} for s in SUBJECTS]


@pytest.fixture
def stored(pipeline, tmp_path, monkeypatch):
    module = pipeline.session
    add_references(pipeline, SUBJECTS, PEOPLE, PROJECTS)
    module.Session.insert(KEYS)
    module.SessionDirectory.insert(
        [
            {**KEYS[0], "session_dir": "sr-m1/s1"},
            {**KEYS[1], "session_dir": WINDOWS},
            {**KEYS[2], "session_dir": "sr-m3/s1"},
        ]
    )
    (tmp_path / "root" / "sr-m1" / "s1").mkdir(parents=True)
    monkeypatch.setenv(paths.ROOT_DIRS_ENV, str(tmp_path / "root"))
    yield pipeline
    (module.Session & KEYS).delete()
    remove_references(pipeline, SUBJECTS, PEOPLE, PROJECTS)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    status = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


def ours(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.strip().startswith("sr-")]


def test_session_directories_lists_every_row_with_its_status_and_reason(stored, tmp_path):
    found = paths.session_directories(stored.session)
    found = found[found["subject"].str.startswith("sr-")]
    assert list(found["status"]) == ["found", "unresolved", "missing"]
    assert found["directory"].iloc[0] == str(tmp_path / "root" / "sr-m1" / "s1")
    assert "outside every root data directory" in found["reason"].iloc[1] and repr(WINDOWS) in found["reason"].iloc[1]
    # the dtypes of session_table: a time column and text columns, usable without conversion
    assert str(found["session_datetime"].dtype) == "datetime64[us, UTC]"
    assert list(found["session_datetime"].dt.year) == [k["session_datetime"].year for k in KEYS]
    assert {str(found[c].dtype) for c in ("subject", "session_dir", "directory", "status", "reason")} == {"string"}
    assert found["directory"].isna().tolist() == [False, True, True]


def test_dirs_lists_every_session_and_names_the_windows_path_it_cannot_resolve(stored, capsys, tmp_path):
    status, out, err = run(["dirs"], capsys)
    assert status == 1  # problems were found
    lines = ours(out)
    assert [line.split()[0] for line in lines] == SUBJECTS  # every session listed
    assert lines[0].split()[-1] == str(tmp_path / "root" / "sr-m1" / "s1")
    assert "UNRESOLVED" in lines[1] and "outside every root data directory" in lines[1]
    assert lines[2].split()[-1] == "MISSING"
    assert "1 session directory value(s) cannot be resolved" in err
    status, out, err = run(["dirs", "--missing"], capsys)
    assert status == 1 and [line.split()[0] for line in ours(out)] == ["sr-m2", "sr-m3"]


def test_sessions_shows_a_session_whose_stored_zone_cannot_be_used_and_the_others(stored, capsys):
    stored.session.SessionTimezone.insert1({**KEYS[0], "session_timezone": "Mars/Olympus_Mons"})
    status, out, err = run(["sessions", "--subject", "sr-m1", "--subject", "sr-m2"], capsys)
    assert status == 1
    lines = ours(out)
    assert len(lines) == 2 and "2024-01-02T03:04:05+00:00 (its stored time zone cannot be used" in lines[0]
    assert "unknown time zone 'Mars/Olympus_Mons'" in err and "session subject=sr-m1" in err
    status, out, err = run(["sessions", "--subject", "sr-m1", "--subject", "sr-m2", "--format", "csv"], capsys)
    assert status == 1 and [line.split(",")[0] for line in ours(out)] == ["sr-m2"]  # the CSV stays re-ingestible
    assert "session subject=sr-m1" in err
    status, out, _ = run(["sessions", "--subject", "sr-m1", "--subject", "sr-m2", "--format", "json"], capsys)
    assert status == 0 and out.count('"subject": "sr-') == 2  # JSON shows UTC only: nothing it cannot show


def test_jobs_lists_a_row_it_cannot_read_with_the_reason_and_the_others(stored, capsys):
    if stored.session.Session.connection.adapter.__class__.__name__.lower().startswith("postgres"):
        pytest.skip("PostgreSQL cannot store MySQL's zero date, the unreadable value of this example")
    from workflow.inventory import SessionInventory

    list_jobs(stored, tables=["SessionInventory"])  # declares the jobs table
    jobs = SessionInventory.jobs
    common = {"status": "reserved", "priority": 5, "reserved_time": dt.datetime(2001, 1, 1), "host": "elsewhere"}
    jobs.insert([{**KEYS[0], **common, "pid": 1}, {**KEYS[1], **common, "pid": 2}])
    try:
        connection = jobs.connection
        connection.query("SET SESSION sql_mode = ''")
        try:
            connection.query(
                f"UPDATE {jobs.full_table_name} SET reserved_time = '0000-00-00 00:00:00' WHERE subject = %s",
                args=("sr-m1",),
            )
        finally:
            connection.query("SET SESSION sql_mode = DEFAULT")
        records = list_jobs(stored, tables=["SessionInventory"], restriction=[{"subject": s} for s in SUBJECTS])
        assert [(r.key["subject"], bool(r.problem)) for r in records] == [("sr-m1", True), ("sr-m2", False)]
        assert "reserved_time" in records[0].problem and "is not a date and time" in records[0].problem
        status, out, err = run(["jobs", "--restrict", "subject=sr-m1"], capsys)
        assert status == 1 and "UNREADABLE" in out and "1 jobs row(s) cannot be read" in err
        status, out, err = run(["jobs", "--clear-stale", "--older-than", "1"], capsys)
        assert status == 1 and "sr-m1" in out  # not understood, so not cleared
    finally:
        (jobs & [{"subject": s} for s in SUBJECTS]).delete_quick()
