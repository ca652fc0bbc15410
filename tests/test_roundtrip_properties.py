"""Property-based tests: generated sessions round-trip exactly through ingest and ``sessions --format csv``,
and every rejected input leaves the database unchanged."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from element_session import cli, timezones
from element_session.errors import InputError
from element_session.ingest import ingest
from tests.helpers import snapshot

SUBJECTS = ["hy-m1", "hy-Zoë-🐭"]
PEOPLE = ["hy-ada", "hy-李", "hy-O'Neil", "hy-x y"]
PROJECTS = ["hy-maps", "hy-Ü"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "+05:45", "-03:30"]
TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@pytest.fixture
def refs(references):
    return references(SUBJECTS, PEOPLE, PROJECTS)


def clear(pipeline) -> None:
    (pipeline.session.Session & [{"subject": s} for s in SUBJECTS]).delete()


@st.composite
def session_times(draw) -> tuple[str, str]:
    """(text as ingested, zone) for a whole-second instant written in one of several forms."""
    instant = draw(st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2099, 12, 31)))
    instant = instant.replace(microsecond=0)
    zone = draw(st.sampled_from(ZONES))
    local = instant.replace(tzinfo=dt.UTC).astimezone(timezones.zone_info(zone))
    form = draw(st.sampled_from(["offset", "bracket", "naive"] if zone[0] not in "+-" else ["offset"]))
    if form == "offset":
        return local.isoformat(), zone if zone[0] in "+-" else timezones.offset_text(local.utcoffset())
    if form == "bracket":
        return f"{local.replace(tzinfo=None).isoformat()}[{zone}]", zone
    return local.replace(tzinfo=None).isoformat(sep=" "), zone


@st.composite
def sessions(draw) -> list[dict]:
    rows, seen, numbers = [], set(), set()
    for _ in range(draw(st.integers(1, 4))):
        subject = draw(st.sampled_from(SUBJECTS))
        stamp, zone = draw(session_times())
        try:
            utc, _ = timezones.parse_session_time(stamp, zone)
        except timezones.TimeError:  # a naive local time in a DST gap or fold: not a valid input
            assume(False)
        assume((subject, utc) not in seen)
        seen.add((subject, utc))
        row = {"subject": subject, "session_datetime": stamp, "zone": zone}
        if draw(st.booleans()):
            number = draw(st.integers(-(2**31), 2**31 - 1))
            assume((subject, number) not in numbers)  # a subject's session number is taken once (ingest refuses)
            numbers.add((subject, number))
            row["session_id"] = str(number)
        if draw(st.booleans()):
            row["experimenter"] = draw(st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=4, unique=True))
        if draw(st.booleans()):
            row["project"] = draw(st.lists(st.sampled_from(PROJECTS), min_size=1, max_size=2, unique=True))
        if draw(st.booleans()):
            row["session_note"] = draw(st.text(TEXT, min_size=1, max_size=1024))
        if draw(st.booleans()):
            row["session_dir"] = "/".join(draw(st.lists(st.from_regex(r"[A-Za-z0-9_\-]{1,12}", fullmatch=True),
                                                        min_size=1, max_size=4)))  # fmt: skip
        for name in draw(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True), max_size=3, unique=True)):
            row[f"attr.{name}"] = draw(st.text(TEXT, min_size=1, max_size=2000))
        rows.append(row)
    return rows


def csv_of_sessions(capsys) -> str:
    capsys.readouterr()
    args = ["sessions", "--format", "csv"] + [a for s in SUBJECTS for a in ("--subject", s)]
    assert cli.main(args) == 0
    return capsys.readouterr().out


@SETTINGS
@given(rows=sessions())
def test_generated_sessions_round_trip_through_ingest_and_csv(refs, rows, tmp_path, capsys):
    clear(refs)
    for row in rows:  # each row says its own zone: naive times are read in it
        zone = row.pop("zone")
        ingest("sessions", [row], pipeline=refs, timezone=zone)
        row["zone"] = zone
    out = csv_of_sessions(capsys)
    written = {(r["subject"], r["session_datetime"]): r for r in csv.DictReader(io.StringIO(out))}
    assert len(written) == len(rows)
    for row in rows:
        utc, zone = timezones.parse_session_time(row["session_datetime"], row["zone"])
        out_row = written[(row["subject"], timezones.format_session_time(utc, zone))]
        assert out_row["session_id"] == row.get("session_id", "")
        assert out_row["session_note"] == row.get("session_note", "")
        assert out_row["session_dir"] == row.get("session_dir", "")
        assert sorted(filter(None, out_row["experimenter"].split(";"))) == sorted(row.get("experimenter", []))
        assert sorted(filter(None, out_row["project"].split(";"))) == sorted(row.get("project", []))
        for name, value in row.items():
            if name.startswith("attr."):
                assert out_row[name] == value
    path = tmp_path / "out.csv"
    path.write_text(out, encoding="utf-8", newline="")
    before = snapshot(refs)
    report = ingest("sessions", path, pipeline=refs)
    assert report.new == 0 and len(report.present) == len(rows)
    assert snapshot(refs) == before


BAD_VALUES = st.one_of(
    st.text(TEXT, max_size=40),
    st.sampled_from(["", "2024-02-30T10:00:00", "2024-03-31T02:30:00[Europe/Berlin]", "1e3", "-0", "../x",
                     "/abs/path", "x" * 3000, "a;;b", "'; DROP TABLE session; --", "\\", "\u202e", "\uff19"]),
)  # fmt: skip


@SETTINGS
@given(column=st.sampled_from(["subject", "session_datetime", "session_id", "experimenter", "project",
                               "session_dir", "session_note", "attr.x", "attr.", "unknown"]),
       value=BAD_VALUES)  # fmt: skip
def test_any_input_is_stored_exactly_or_rejected_without_a_trace(refs, column, value):
    clear(refs)
    row = {"subject": "hy-m1", "session_datetime": "2024-01-01T00:00:00Z", column: value}
    before = snapshot(refs)
    try:
        ingest("sessions", [row], pipeline=refs)
    except InputError as err:
        assert snapshot(refs) == before
        assert any(p.column == column or p.column == "session_datetime" for p in err.problems), str(err)
        return
    stored = refs.session.Session & {"subject": "hy-m1"}
    assert len(stored) == 1
    if column == "session_note" and value:
        assert (refs.session.SessionNote & stored).to_dicts()[0]["session_note"] == value
    if column == "attr.x" and value:
        assert (refs.session.Session.Attribute & stored).to_dicts()[0]["attribute_value"] == value
    if column == "session_id" and value:
        assert stored.to_dicts()[0]["session_id"] == int(value)  # a number: "007" is 7, a fullwidth 9 is refused
