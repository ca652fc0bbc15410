"""One time reader for every entry point (issue 11, section 1).

A time from a person reaches ingest, the ``find_sessions`` window, populate/jobs restrictions and
the NWB export's lookup through :func:`element_session.times.read_time`, so that the same
instant, in any accepted form, selects the same sessions everywhere.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from element_session import timezones
from element_session.errors import InputError, SessionNotFoundError
from element_session.export.nwb import find_session_key
from element_session.ingest import ingest
from element_session.populate import clear_jobs, list_jobs, populate
from element_session.query import find_sessions
from tests.helpers import add_references, remove_references
from workflow.inventory import SessionInventory

TABLES = ["SessionInventory"]


def inventoried(subject: str) -> set[dt.datetime]:
    return {r["session_datetime"] for r in (SessionInventory & {"subject": subject}).to_dicts()}


# --------------------------------------------------------------------------- issue example 1: restrictions

BERLIN_WINTER = [  # ingest text -> the instant stored (UTC)
    ("2024-02-05T09:30:00+01:00", dt.datetime(2024, 2, 5, 8, 30)),  # shown by `sessions` as 09:30+01:00
    ("2024-02-05T09:30:00Z", dt.datetime(2024, 2, 5, 9, 30)),  # the one a text comparison selected
]


@pytest.fixture
def two_sessions(pipeline, tmp_path, row_prefix):
    """A subject with the two sessions of the issue, their raw directories, and the command's environment."""
    subject = row_prefix + "pop"
    add_references(pipeline, [subject], [], [])
    rows = [
        {"subject": subject, "session_datetime": t, "session_dir": f"s{i}"} for i, (t, _) in enumerate(BERLIN_WINTER)
    ]
    ingest("sessions", rows, pipeline=pipeline)
    for i in range(len(rows)):
        (tmp_path / "raw" / subject / f"s{i}").mkdir(parents=True)
        (tmp_path / "raw" / subject / f"s{i}" / "trace.npy").write_bytes(b"x")
    env = {"SESSION_ROOT_DIRS": str(tmp_path / "raw" / subject)}
    yield subject, env
    (SessionInventory.jobs & {"subject": subject}).delete_quick()
    remove_references(pipeline, [subject], [], [])


def test_populate_restriction_with_offset_selects_the_instant_through_the_command(two_sessions, command):
    subject, env = two_sessions
    done = command("sessions", "--subject", subject, "--format", "csv", env=env)
    assert done.status == 0, done.err
    shown = {row["session_datetime"] for row in csv.DictReader(io.StringIO(done.out))}
    assert "2024-02-05T09:30:00+01:00" in shown  # the session stored at 08:30 UTC, as `sessions` shows it

    restrict = ["--restrict", f"subject={subject}", "--restrict", "session_datetime=2024-02-05T09:30:00+01:00"]
    done = command("populate", "--table", "SessionInventory", "--no-progress", *restrict, env=env)
    assert done.status == 0, done.err
    assert done.out.startswith("populated 1 key(s), 0 error(s)")
    assert inventoried(subject) == {dt.datetime(2024, 2, 5, 8, 30)}

    # text without an offset is read in --timezone; the same instant again: nothing left to make
    restrict[-1] = "session_datetime=2024-02-05 09:30:00"
    done = command("populate", "--table", "SessionInventory", "--timezone", "Europe/Berlin", *restrict, env=env)
    assert (done.status, done.out.strip()) == (0, "populated 0 key(s), 0 error(s)"), done.err
    done = command("populate", "--table", "SessionInventory", "--restrict", f"subject={subject}",
                   "--restrict", "session_datetime=2024-02-05T10:30:00[Europe/Berlin]", env=env)  # fmt: skip
    assert done.status == 0, done.err
    assert inventoried(subject) == {t for _, t in BERLIN_WINTER}


@pytest.mark.parametrize("which", ["populate", "jobs"])
def test_an_unreadable_restriction_time_exits_2_naming_the_value(two_sessions, command, which):
    subject, env = two_sessions
    done = command(which, "--restrict", f"subject={subject}", "--restrict", "session_datetime=next tuesday", env=env)
    assert done.status == 2, (done.out, done.err)  # a bad option value
    assert "session_datetime" in done.err and "'next tuesday'" in done.err
    assert "Traceback" not in done.err
    done = command(which, "--restrict", "session_datetime=2024-03-31T02:30:00", "--timezone", "Europe/Berlin", env=env)
    assert done.status == 2 and "does not exist in Europe/Berlin" in done.err  # skipped by DST
    assert inventoried(subject) == set()


def keys(records) -> list[dict]:
    return [record.key for record in records]


def test_populate_list_and_clear_jobs_restriction_through_python(two_sessions, pipeline, monkeypatch, tmp_path):
    subject, env = two_sessions
    berlin = {"subject": subject, "session_datetime": "2024-02-05T09:30:00+01:00"}
    with pytest.raises(InputError, match=r"restriction, column 'session_datetime': .*\(value: 'soon'\)"):
        populate(pipeline, tables=TABLES, restriction={"subject": subject, "session_datetime": "soon"})
    with pytest.raises(InputError, match="fraction of a second"):
        list_jobs(pipeline, tables=TABLES, restriction={**berlin, "session_datetime": "2024-02-05T09:30:00.5+01:00"})

    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("SESSION_ROOT_DIRS", str(tmp_path / "empty"))  # every directory missing
    summary = populate(pipeline, tables=TABLES, restriction=[berlin], progress=False)
    assert (summary.done, len(summary.errors)) == (0, 1)
    (failed,) = list_jobs(pipeline, tables=TABLES, restriction={"subject": subject})
    assert failed.key["session_datetime"] == dt.datetime(2024, 2, 5, 8, 30)
    naive_local = {"subject": subject, "session_datetime": dt.datetime(2024, 2, 5, 9, 30)}
    assert list_jobs(pipeline, tables=TABLES, restriction=naive_local) == []  # naive: UTC by default
    assert keys(list_jobs(pipeline, tables=TABLES, restriction=naive_local, timezone="Europe/Berlin")) == [failed.key]
    assert clear_jobs(pipeline, tables=TABLES, restriction=naive_local) == []
    assert keys(clear_jobs(pipeline, tables=TABLES, restriction=naive_local, timezone="+01:00")) == [failed.key]

    monkeypatch.setenv("SESSION_ROOT_DIRS", env["SESSION_ROOT_DIRS"])
    aware = dt.datetime(2024, 2, 5, 9, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    summary = populate(
        pipeline, tables=TABLES, restriction={"subject": subject, "session_datetime": aware}, progress=False
    )
    assert (summary.done, summary.errors) == (1, [])
    assert inventoried(subject) == {dt.datetime(2024, 2, 5, 8, 30)}


# --------------------------------------------------------------------------- issue example 2: window precision


@pytest.fixture(scope="module")
def window_sessions(pipeline, row_prefix):
    subject = row_prefix + "win"
    add_references(pipeline, [subject], [], [])
    times = ("2024-03-01T09:59:59Z", "2024-03-01T10:00:00Z")
    ingest("sessions", [{"subject": subject, "session_datetime": t} for t in times], pipeline=pipeline)
    yield pipeline.session, subject
    remove_references(pipeline, [subject], [], [])


def starts(query) -> list[str]:
    return sorted(f"{r['session_datetime']:%H:%M:%S}" for r in query.to_dicts())


@pytest.mark.parametrize(
    "bound",
    [
        dt.datetime(2024, 3, 1, 10, 0, 0, 500000),
        "2024-03-01T10:00:00.5",
        "2024-03-01 10:00:00.500000Z",
        "2024-03-01T11:00:00.5+01:00[Europe/Berlin]",
        dt.datetime(2024, 3, 1, 11, 0, 0, 500000, tzinfo=ZoneInfo("Europe/Berlin")),
    ],
)
def test_window_ends_compare_at_full_precision(window_sessions, bound):
    module, subject = window_sessions
    assert starts(find_sessions(module, subject=subject, until=bound)) == ["09:59:59", "10:00:00"]
    assert starts(find_sessions(module, subject=subject, since=bound)) == []
    before = timezones.read_time(bound).utc - dt.timedelta(seconds=1)  # 09:59:59.5
    assert starts(find_sessions(module, subject=subject, since=before)) == ["10:00:00"]
    assert starts(find_sessions(module, subject=subject, until=before)) == ["09:59:59"]
    assert starts(find_sessions(module, subject=subject, since=before.isoformat() + "Z", until=bound)) == ["10:00:00"]


def test_window_ends_through_the_command(window_sessions, command):
    _, subject = window_sessions
    args = ["sessions", "--subject", subject, "--format", "csv", "--timezone", "Europe/Berlin"]
    done = command(*args, "--since", "2024-03-01T10:59:59.5", "--until", "2024-03-01T11:00:00.5")
    assert done.status == 0, done.err
    assert [r["session_datetime"] for r in csv.DictReader(io.StringIO(done.out))] == ["2024-03-01T10:00:00+00:00"]
    done = command(*args, "--since", "2024-03-01T1O:00")
    assert done.status == 2 and "'2024-03-01T1O:00'" in done.err and "since" in done.err
    for offset in ("+05:60", "+25:00"):  # read as +06:00, or refused with a timedelta's repr, before
        done = command(*args, "--since", f"2024-03-01T10:00{offset}")
        assert done.status == 2 and f"offset '{offset}' out of range: hours 00-23 and minutes 00-59" in done.err
        assert "timedelta" not in done.err and "--since" in done.err


def test_a_session_time_with_an_offset_out_of_range_is_refused_by_ingest_naming_row_and_column(
    pipeline, tmp_path, row_prefix
):
    """'+05:60' was stored as +06:00 (an hour's shift without a word); nothing is written."""
    subject = row_prefix + "offset"
    add_references(pipeline, [subject], [], [])
    source = tmp_path / "offsets.csv"
    source.write_text(f"subject,session_datetime\n{subject},2024-06-01T10:00+05:60\n")
    try:
        with pytest.raises(InputError) as refused:
            ingest("sessions", source, pipeline=pipeline)
        assert not pipeline.session.Session() & {"subject": subject}
    finally:
        remove_references(pipeline, [subject], [], [])
    (problem,) = refused.value.problems
    assert (problem.row, problem.column, problem.value) == (2, "session_datetime", "2024-06-01T10:00+05:60")
    assert "offset '+05:60' out of range" in problem.reason


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00", "0001-01-01T00:00[+01:00]"]
)
def test_times_beyond_the_range_of_datetime_are_typed_errors_everywhere(window_sessions, pipeline, value):
    module, subject = window_sessions
    with pytest.raises(InputError, match="column 'until': outside the years 1-9999"):
        find_sessions(module, until=value)
    with pytest.raises(InputError, match="column 'since': outside the years 1-9999"):
        find_sessions(module, since="0001-01-01[+01:00]")  # a date: its midnight, at UTC+1
    with pytest.raises(InputError, match="outside the years 1-9999"):
        list_jobs(pipeline, tables=TABLES, restriction={"session_datetime": value})
    with pytest.raises(InputError, match="outside the years 1-9999"):
        find_session_key(module, subject, session_datetime=value)
    with pytest.raises(InputError, match=r"row 1, column 'session_datetime': outside the years 1-9999"):
        ingest("sessions", [{"subject": subject, "session_datetime": value}], pipeline=pipeline)


# --------------------------------------------------------------------------- property: any form, every entry point

PROPERTY_SUBJECT = "ti-any"
# Europe/Berlin's repeated hour of 2024-10-27 (02:00-03:00 local) and its skipped hour of 2024-03-31
PROPERTY_TIMES = [
    dt.datetime(2024, 10, 27, 0, 30),  # 02:30+02:00
    dt.datetime(2024, 10, 27, 1, 30),  # 02:30+01:00, the same wall time an hour later
    dt.datetime(2024, 10, 27, 1, 30, 1),
    dt.datetime(2024, 3, 31, 1, 0),  # 03:00+02:00, just after the skipped hour
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu", "+05:45", "-09:30", "Pacific/Kiritimati"]
SHIFTS = [dt.timedelta(0), dt.timedelta(seconds=1), dt.timedelta(seconds=-1), dt.timedelta(microseconds=500000),
          dt.timedelta(microseconds=-1), dt.timedelta(hours=1), dt.timedelta(hours=-1)]  # fmt: skip


@pytest.fixture(scope="module")
def property_sessions(pipeline, tmp_path_factory):
    """Sessions at PROPERTY_TIMES, each with a failed job of SessionInventory (its directory is missing)."""
    add_references(pipeline, [PROPERTY_SUBJECT], [], [])
    rows = [
        {"subject": PROPERTY_SUBJECT, "session_datetime": f"{t.isoformat()}Z", "session_dir": "gone"}
        for t in PROPERTY_TIMES
    ]
    ingest("sessions", rows, pipeline=pipeline)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SESSION_ROOT_DIRS", str(tmp_path_factory.mktemp("empty-root")))
        summary = populate(pipeline, tables=TABLES, restriction={"subject": PROPERTY_SUBJECT}, progress=False)
    assert len(summary.errors) == len(PROPERTY_TIMES)
    yield pipeline
    (SessionInventory.jobs & {"subject": PROPERTY_SUBJECT}).delete_quick()
    remove_references(pipeline, [PROPERTY_SUBJECT], [], [])


def written_forms(instant: dt.datetime, zone: str) -> list[tuple[object, str]]:
    """``instant`` (naive UTC) in every accepted form, each with the ``timezone`` argument it needs."""
    tz = timezones.zone_info(zone)
    local = instant.replace(tzinfo=dt.UTC).astimezone(tz)
    naive = local.replace(tzinfo=None)
    forms: list[tuple[object, str]] = [
        (local, "UTC"),  # aware datetime
        (naive, zone),  # naive datetime + timezone
        (local.isoformat(), "UTC"),  # ISO text with offset
        (local.isoformat(sep=" ").replace("+00:00", "Z"), "Asia/Tokyo"),  # the offset wins over timezone
        (naive.isoformat(), zone),  # ISO text without offset + timezone
    ]
    if zone[0] not in "+-":
        forms += [(f"{local.isoformat()}[{zone}]", "UTC"), (f"{naive.isoformat()}[{zone}]", "Asia/Tokyo")]
    return forms


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(PROPERTY_TIMES), shift=st.sampled_from(SHIFTS), zone=st.sampled_from(ZONES))
def test_any_instant_in_any_form_selects_the_same_sessions_everywhere(property_sessions, base, shift, zone):
    pipeline = property_sessions
    module = pipeline.session
    instant = base + shift
    whole = not instant.microsecond
    for value, timezone in written_forms(instant, zone):
        try:
            expected = timezones.read_time(value, timezone).utc
        except timezones.TimeError as err:  # a local time a DST change skips or repeats: refused everywhere
            assert "daylight-saving" in str(err)
            with pytest.raises(InputError, match="daylight-saving"):
                find_sessions(module, subject=PROPERTY_SUBJECT, since=value, timezone=timezone)
            with pytest.raises(InputError, match="daylight-saving"):
                list_jobs(pipeline, tables=TABLES, restriction={"session_datetime": value}, timezone=timezone)
            with pytest.raises(InputError, match="daylight-saving"):
                find_session_key(module, PROPERTY_SUBJECT, session_datetime=value, timezone=timezone)
            continue
        assert expected == instant, value
        since = find_sessions(module, subject=PROPERTY_SUBJECT, since=value, timezone=timezone)
        until = find_sessions(module, subject=PROPERTY_SUBJECT, until=value, timezone=timezone)
        assert {r["session_datetime"] for r in since.to_dicts()} == {t for t in PROPERTY_TIMES if t >= instant}
        assert {r["session_datetime"] for r in until.to_dicts()} == {t for t in PROPERTY_TIMES if t < instant}
        key = {"subject": PROPERTY_SUBJECT, "session_datetime": value}
        if not whole:  # a stored session time has whole seconds: a key with a fraction is refused, not rounded
            with pytest.raises(InputError, match="fraction of a second"):
                list_jobs(pipeline, tables=TABLES, restriction=key, timezone=timezone)
            with pytest.raises(InputError, match="fraction of a second"):
                find_session_key(module, PROPERTY_SUBJECT, session_datetime=value, timezone=timezone)
            continue
        jobs = list_jobs(pipeline, tables=TABLES, restriction=key, timezone=timezone)
        assert [j.key["session_datetime"] for j in jobs] == [t for t in PROPERTY_TIMES if t == instant]
        if instant in PROPERTY_TIMES:
            found = find_session_key(module, PROPERTY_SUBJECT, session_datetime=value, timezone=timezone)
            assert found == {"subject": PROPERTY_SUBJECT, "session_datetime": instant}
        else:
            with pytest.raises(SessionNotFoundError):
                find_session_key(module, PROPERTY_SUBJECT, session_datetime=value, timezone=timezone)


# --------------------------------------------------------------------------- the reader itself (no database)


@pytest.mark.parametrize(
    ("value", "timezone", "utc", "zone"),
    [
        ("2024-02-05T09:30:00+01:00", "UTC", dt.datetime(2024, 2, 5, 8, 30), "+01:00"),
        ("2024-02-05 09:30Z", "Europe/Berlin", dt.datetime(2024, 2, 5, 9, 30), "UTC"),
        ("2024-02-05T09:30:00[Europe/Berlin]", "UTC", dt.datetime(2024, 2, 5, 8, 30), "Europe/Berlin"),
        ("2024-10-27T02:30:00+01:00[Europe/Berlin]", "UTC", dt.datetime(2024, 10, 27, 1, 30), "Europe/Berlin"),
        ("2024-02-05T09:30:00.25", "Europe/Berlin", dt.datetime(2024, 2, 5, 8, 30, 0, 250000), "Europe/Berlin"),
        (dt.datetime(2024, 2, 5, 9, 30), "+01:00", dt.datetime(2024, 2, 5, 8, 30), "+01:00"),
        (dt.datetime(2024, 2, 5, 9, 30, tzinfo=ZoneInfo("Etc/UTC")), "+01:00", dt.datetime(2024, 2, 5, 9, 30), "UTC"),
        (dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Berlin")), "UTC",
         dt.datetime(2024, 10, 27, 1, 30), "Europe/Berlin"),  # an aware datetime: its fold says which one
    ],
)  # fmt: skip
def test_read_time_forms(value, timezone, utc, zone):
    assert timezones.read_time(value, timezone) == (utc, zone)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2024-03-31T02:30:00[Europe/Berlin]", "does not exist in Europe/Berlin"),
        ("2024-10-27T02:30:00", "ambiguous in Europe/Berlin"),
        (dt.datetime(2024, 3, 31, 2, 30, tzinfo=ZoneInfo("Europe/Berlin")), "does not exist in Europe/Berlin"),
        ("2024-02-05T09:30:00+02:00[Europe/Berlin]", "not the offset of Europe/Berlin"),
        ("2024-02-05T09:30:00[Mars/Base]", "unknown time zone 'Mars/Base'"),
        ("2024-02-05T09:30:00[+24:00]", r"offset '\+24:00' out of range"),
        ("2024-02-05T09:30:00[-02:60]", "offset '-02:60' out of range"),
        ("2024-02-05T09:30:00+05:60", r"offset '\+05:60' out of range"),  # fromisoformat read it as +06:00
        ("2024-02-05T09:30:00-0560", "offset '-05:60' out of range"),
        ("2024-02-05T09:30:00+25:00", r"offset '\+25:00' out of range: hours 00-23"),  # not a timedelta's repr
        ("2024-02-05T09:30:00+24:00[Europe/Berlin]", r"offset '\+24:00' out of range"),
        ("2024-02-30T09:30:00", "impossible date"),
        ("2024-02-05", "not an ISO 8601 date and time"),
        (dt.date(2024, 2, 5), "a date without a time of day"),
        ("0001-01-01T00:00:00+01:00", "outside the years 1-9999"),
        (1707121800, "expected a datetime or ISO 8601 text, not int"),
    ],
)
def test_read_time_refusals(value, reason):
    with pytest.raises(timezones.TimeError, match=reason):
        timezones.read_time(value, "Europe/Berlin")


def test_dates_are_midnight_where_allowed_and_sessions_need_whole_seconds():
    assert timezones.read_time("2024-02-05", "Europe/Berlin", dates=True).utc == dt.datetime(2024, 2, 4, 23)
    assert timezones.read_time(dt.date(2024, 2, 5), "-09:30", dates=True).utc == dt.datetime(2024, 2, 5, 9, 30)
    assert timezones.read_time("2024-02-05[Asia/Tokyo]", dates=True).utc == dt.datetime(2024, 2, 4, 15)
    with pytest.raises(timezones.TimeError, match="fraction of a second"):
        timezones.parse_session_time("2024-02-05T09:30:00.5Z")
    with pytest.raises(timezones.TimeError, match="year outside 1000-9999"):
        timezones.parse_session_time("0999-12-31T23:30:00-01:00")
    with pytest.raises(timezones.TimeError, match="unknown time zone 'Nowhere'"):
        timezones.read_time("2024-02-05T09:30:00Z", "Nowhere")  # the zone is checked even where not needed


@pytest.mark.parametrize("zone", ["+24:00", "-99:00", "+05:60", "+\u0660\u0665:\u0660\u0660"])
def test_offsets_out_of_range_are_refused_as_zones_everywhere(zone):
    """dt.timezone raised a bare ValueError for '+24:00' and read '+05:60' as +06:00; other digits are no offset."""
    with pytest.raises(timezones.TimeError, match=r"out of range|unknown time zone"):
        timezones.zone_info(zone)
    with pytest.raises(InputError, match="timezone"):
        timezones.zone_argument(zone)
    with pytest.raises(timezones.TimeError):
        timezones.read_time("2024-02-05T09:30:00", zone)


def test_the_year_range_holds_in_the_local_zone_at_both_ends():
    """The local year is checked where an offset can move it out of 1000-9999: the first and last years."""
    assert timezones.parse_session_time("1000-01-01T00:30:00-01:00").utc == dt.datetime(1000, 1, 1, 1, 30)
    assert timezones.parse_session_time("9999-12-31T22:30:00[Asia/Tokyo]").utc == dt.datetime(9999, 12, 31, 13, 30)
    for value in ("0999-12-31T23:30:00-01:00", "1000-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"):
        with pytest.raises(timezones.TimeError, match=r"year|outside"):  # local 999, UTC 999, UTC 10000
            timezones.parse_session_time(value)
