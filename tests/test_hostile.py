"""Hostile input: property-based tests over ingestion of every kind and over every option of the command.

Inputs carry SQL metacharacters, quotes, backslashes, NUL and control characters, text of every
Unicode plane (surrogates aside: they cannot be encoded), huge values, malformed dates and paths.
Each is either stored and read back exactly, or rejected with the package's typed error (exit status
1, or 2 for wrong usage: never a traceback, never status 3), and a rejection leaves the database
unchanged. Lookups by the command's options are checked both ways: everything listed matches the
option, and nothing that matches is left out.

Inputs that are refused whatever else they hold, each pinned by
:func:`test_each_kind_of_hostile_input_is_refused_with_a_typed_error`: ``%`` or a trailing space in a
key, NUL in a lookup value (PostgreSQL cannot receive it in SQL text), times that leave years
1000-9999 in UTC or in their zone, file names longer than the file system allows, and YAML anchors
and aliases. On MySQL/MariaDB key comparisons ignore trailing spaces (``utf8mb4_bin`` is a PAD SPACE
collation): lookups are checked with that rule there, and
:func:`test_keys_that_differ_only_by_trailing_spaces_are_never_merged` pins what it means.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from element_session import cli, paths, timezones
from element_session.errors import InputError
from element_session.ingest import ingest
from element_session.query import session_table
from tests.helpers import snapshot

POSTGRES = os.environ.get("DJ_BACKEND", "mysql") == "postgresql"
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
FEWER = settings(EXAMPLES, max_examples=30)

# -------------------------------------------------------------------------------------------- hostile text

ANY_CHAR = st.characters(exclude_categories=("Cs",))  # every plane, NUL and control characters included
PIECES = [
    "'", '"', "\\", "`", ";", "--", "/*", "*/", "#", "%", "_", "\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\x85",
    "\u2028", "\u202e", "\u200b", "\ufeff", "\uffff", "\U0001d54f", "🐭", "\U0010fffd", " ", "' OR '1'='1", "\\'",
    "'; DROP TABLE session; --", "$$", "E'", "\\x00", "%s", "%(x)s", "{0}", "${x}", "\\N", "NULL", "\u0301", "ß",
]  # fmt: skip


def hostile(max_size: int = 30) -> st.SearchStrategy[str]:
    """Text made of metacharacters, controls and characters of every plane."""
    return st.one_of(
        st.text(ANY_CHAR, max_size=max_size),
        st.lists(st.one_of(st.sampled_from(PIECES), st.text(ANY_CHAR, max_size=3)), max_size=8).map("".join),
    )


HUGE = st.builds(
    lambda piece, n: piece * n,
    st.sampled_from(["x", "é", "🐭", "'", "\\", "a\\b"]),
    st.sampled_from([33, 65, 129, 257, 1025, 2001, 100_000]),
)
TEXT = st.one_of(hostile(), hostile(300), HUGE)


@st.composite
def session_times(draw) -> str:
    """Session start times: valid in every written form, nearly valid, malformed, and beyond years 1000-9999."""
    year = draw(st.integers(1000, 9998))
    stamp = dt.datetime(year, draw(st.integers(1, 12)), draw(st.integers(1, 28)), draw(st.integers(0, 23)),
                        draw(st.integers(0, 59)), draw(st.integers(0, 59)))  # fmt: skip
    zone = draw(st.sampled_from(["", "Z", "+01:00", "-13:45", "+0530", "[Europe/Berlin]", "[America/New_York]",
                                 "[Mars/Base]", "+99:99", "[UTC]", "[+05:45]", "[\x00]", "['; --]"]))  # fmt: skip
    text = stamp.isoformat(sep=draw(st.sampled_from(["T", " ", "t", "_"]))) + zone
    return draw(
        st.one_of(
            st.just(text),
            st.just(text.replace("-", "/", 1)),
            st.just(text[:-1]),
            st.just(f" {text} "),
            st.just(text + ".5"),
            st.sampled_from(["2024-02-30T10:00:00", "2024-13-01T00:00:00Z", "2024-03-31T02:30:00[Europe/Berlin]",
                             "2024-10-27T02:30:00[Europe/Berlin]", "0999-12-31T00:00:00Z", "yesterday", "",
                             "2024-01-01", "24:00:00", "2024-01-01T24:00:00Z", "9999-12-31T23:00:00-05:00",
                             "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00[America/New_York]",
                             "\uff12\uff10\uff12\uff14-01-01T00:00:00"]),
            hostile(40),
        )
    )  # fmt: skip


NUMBERS = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(str),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["", " 7 ", "+7", "-0", "007", "1e3", "3.0", "0x1F", "٣", "\uff19", "1_000", "NaN", "inf"]),
    hostile(12),
)


# -------------------------------------------------------------------------------------------- fixtures

SUBJECT = "hs-m1"
#: Names stored once as subjects, experimenters and projects, for lookups to find exactly.
NAMES = [
    "hs-m1", "hs-O'Neil", 'hs-"dq"', "hs-a\\b", "hs-%_", "hs-🐭\U0001d54f", "hs-\u202eRTL", "hs-tab\there",
    "hs-new\nline", "hs-\x01ctl", "hs-zero\u200bwidth", "hs-' OR '1'='1", "hs-`tick`", "hs-$$", "hs-Ünï",
    "hs-\U0010fffd", "hs-e\u0301", "hs-\u00e9", "hs-CASE", "hs-case", "hs- inner space",
]  # fmt: skip
START = dt.datetime(2024, 4, 1, 9, 0, 0)


@pytest.fixture(scope="module")
def stored(pipeline, tmp_path_factory) -> Iterator[ModuleType]:
    """Subjects, experimenters and projects named by :data:`NAMES`, each with one session linking them."""
    # inserted as they are: ingestion refuses a name with '%' (see the top), stored ones must still be found
    pipeline.Subject.insert([{"subject": n, "sex": "U", "subject_birth_date": "2020-01-01"} for n in NAMES])
    pipeline.User.insert([{"user": n} for n in NAMES])
    pipeline.Project.insert([{"project": n} for n in NAMES])
    rows = [
        {"subject": n, "session_datetime": f"{START + dt.timedelta(hours=i):%Y-%m-%dT%H:%M:%S}Z",
         "session_id": str(i), "experimenter": [n, NAMES[(i + 1) % len(NAMES)]], "project": [n],
         "session_dir": f"hs/{i}", "attr.name": n}
        for i, n in enumerate(NAMES)
    ]  # fmt: skip
    ingest("sessions", rows, pipeline=pipeline)
    yield pipeline
    delete_sessions(pipeline.session, [{"subject": n} for n in NAMES])
    (pipeline.Subject & [{"subject": n} for n in NAMES]).delete_quick()
    (pipeline.User & [{"user": n} for n in NAMES]).delete_quick()
    (pipeline.Project & [{"project": n} for n in NAMES]).delete_quick()


def delete_sessions(module: ModuleType, restriction: dict | list[dict]) -> None:
    """Delete sessions and their satellite rows table by table (DataJoint's cascade misses keys holding '%')."""
    for table in (module.Session.Attribute, module.SessionExperimenter, module.ProjectSession,
                  module.SessionDirectory, module.SessionNote, module.SessionTimezone, module.Session):  # fmt: skip
        (table & restriction).delete_quick()


def same_key(stored: str, given: str) -> bool:
    """Whether the server compares the key ``given`` equal to ``stored``.

    Exact on PostgreSQL; on MySQL/MariaDB (``utf8mb4_bin``, PAD SPACE) trailing spaces are ignored.
    """
    return stored == given if POSTGRES else stored.rstrip(" ") == given.rstrip(" ")


def near(names: list[str]) -> st.SearchStrategy[str]:
    """Stored names, and near misses of them: one character more, less or changed, another case or normal form."""
    name = st.sampled_from(names)
    return st.one_of(
        name,
        st.tuples(name, hostile(3)).map("".join),
        st.tuples(hostile(3), name).map("".join),
        name.map(lambda n: n[:-1]),
        name.map(str.swapcase),
        name.map(lambda n: unicodedata.normalize("NFD", n)),
        name.map(lambda n: n + " "),
        name.map(lambda n: n.replace("\\", "\\\\")),
        name.map(lambda n: n.replace("'", "''")),
        name.map(lambda n: n.replace("%", "_")),
    )


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """``element-session argv`` in this process: (exit status, stdout, stderr); never an exception."""
    capsys.readouterr()
    status = cli.main(argv)  # wrong usage is a status (2) too, never SystemExit
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert status in (0, 1, 2), (status, err)
    if status == 1:
        assert err.startswith("element-session"), err
    return status, out, err


# -------------------------------------------------------------------------------------------- ingest, every kind

REFERENCE_KINDS = {
    "subjects": ("Subject", "subject", {"sex": "U", "subject_birth_date": "2020-01-01"},
                 ["sex", "subject_birth_date", "subject_nickname", "subject_description"]),
    "experimenters": ("User", "user", {}, ["user_email", "user_cellphone", "user_fullname"]),
    "projects": ("Project", "project", {}, ["project_description"]),
}  # fmt: skip


@EXAMPLES
@given(
    kind=st.sampled_from(sorted(REFERENCE_KINDS)),
    key=st.one_of(hostile(29), HUGE),
    values=st.dictionaries(st.sampled_from(["sex", "subject_birth_date", "subject_nickname", "subject_description",
                                            "user_email", "user_cellphone", "user_fullname", "project_description"]),
                           st.one_of(TEXT, st.sampled_from(["M", "F", "U", "2020-02-29", " 2021-01-01 ",
                                                            "2021-02-29"])),
                           max_size=4),
    extra=st.one_of(st.none(), hostile(12)),
)  # fmt: skip
def test_reference_rows_of_every_kind_are_stored_exactly_or_rejected_without_a_trace(
    pipeline, kind, key, values, extra
):
    table_name, key_column, base, columns = REFERENCE_KINDS[kind]
    table = getattr(pipeline, table_name)
    row = {key_column: "hx-" + key, **base, **{c: v for c, v in values.items() if c in columns}}
    if extra is not None:
        row[extra] = "x"  # a column name of any text
    before = snapshot(pipeline)
    try:
        report = ingest(kind, [row], pipeline=pipeline)
    except InputError as err:
        assert snapshot(pipeline) == before, err
        event("rejected")
        return
    event("stored")
    try:
        assert report.new == 1
        (stored,) = (table & {key_column: row[key_column]}).to_dicts()  # the dict restriction finds it exactly
        for column, value in row.items():
            if value == "":
                continue  # not given
            if column == "subject_birth_date":
                assert stored[column] == dt.date.fromisoformat(value.strip())
            else:
                assert stored[column] == value, column
    finally:
        (table & {key_column: row[key_column]}).delete()
    assert snapshot(pipeline) == before  # and it could be deleted again


@st.composite
def hostile_sessions(draw) -> dict:
    row: dict = {"subject": SUBJECT, "session_datetime": "2024-06-01T12:00:00Z"}
    changes = draw(st.dictionaries(
        st.sampled_from(["subject", "session_datetime", "session_id", "experimenter", "project", "session_dir",
                         "session_note", "attr"]),
        st.just(None), min_size=1, max_size=4,
    ))  # fmt: skip
    for column in changes:
        if column == "subject":
            row[column] = draw(st.one_of(near(NAMES), TEXT))
        elif column == "session_datetime":
            row[column] = draw(session_times())
        elif column == "session_id":
            row[column] = draw(NUMBERS)
        elif column in ("experimenter", "project"):
            value = draw(st.one_of(
                st.lists(st.sampled_from(NAMES), min_size=1, max_size=3),
                st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(";".join),
                near(NAMES), TEXT, st.just("hs-a\x00b"),
            ))  # fmt: skip
            row[column] = value
        elif column == "session_dir":
            row[column] = draw(st.one_of(
                TEXT, st.lists(st.one_of(hostile(8), st.sampled_from(["..", ".", "", "C:", "\\\\srv"])), max_size=5)
                .map(draw(st.sampled_from(["/", "\\"])).join),
            ))  # fmt: skip
        elif column == "session_note":
            row[column] = draw(TEXT)
        else:
            for name, value in draw(st.dictionaries(st.one_of(hostile(12), HUGE), TEXT, max_size=3)).items():
                row[f"attr.{name}"] = value
    return row


@EXAMPLES
@given(row=hostile_sessions(), zone=st.one_of(st.sampled_from(["UTC", "Asia/Kolkata", "-03:30"]), hostile(20)))
def test_sessions_with_hostile_values_in_every_column_are_stored_exactly_or_rejected(stored, row, zone, monkeypatch):
    monkeypatch.setenv("SESSION_ROOT_DIRS", "/nonexistent/hostile-root")
    module = stored.session
    before = snapshot(stored)
    try:
        report = ingest("sessions", [row], pipeline=stored, timezone=zone)
    except InputError as err:
        assert snapshot(stored) == before, err
        event("rejected")
        return
    event("stored")
    subject = row["subject"]
    utc, recorded_zone = timezones.parse_session_time(row["session_datetime"], zone)
    key = {"subject": subject, "session_datetime": utc}
    if report.present:  # the very session the fixture stored: nothing may have changed
        assert snapshot(stored) == before
        return
    try:
        (out,) = session_table(module.Session & key, module).to_dict("records")
        assert out["subject"] == subject
        assert out["session_datetime"].replace(tzinfo=None) == utc and out["session_timezone"] == recorded_zone
        if row.get("session_id", "") != "":
            assert out["session_id"] == int(row["session_id"])
        for column in ("experimenter", "project"):
            value = row.get(column)
            if value not in (None, "", []):
                names = value if isinstance(value, list) else value.split(";")
                assert out[column + "s"] == sorted(n.strip() for n in names)
        if row.get("session_dir", "") != "":
            assert out["session_dir"] == paths.normalize_session_dir(row["session_dir"])
        if row.get("session_note", "") != "":
            assert out["session_note"] == row["session_note"]
        for column, value in row.items():
            if column.startswith("attr.") and value != "":
                assert out[column] == value, column
    finally:
        delete_sessions(module, key)
    assert snapshot(stored) == before


def test_keys_that_differ_only_by_trailing_spaces_are_never_merged(pipeline, capsys):
    """On MySQL/MariaDB 'a' and 'a ' are the same key (PAD SPACE); on PostgreSQL two keys. Never a silent merge.

    Ingestion refuses a key ending in a space on every server, with nothing changed; a lookup with a
    trailing space follows the server's collation.
    """
    subject = {"sex": "F", "subject_birth_date": "2021-01-01"}
    ingest("subjects", [{"subject": "hp-pad", **subject}], pipeline=pipeline)
    ingest("sessions", [{"subject": "hp-pad", "session_datetime": "2024-01-01T00:00:00Z", "attr.x": "1"}],
           pipeline=pipeline)  # fmt: skip
    try:
        before = snapshot(pipeline)
        with pytest.raises(InputError, match="may not end with a space"):
            ingest("subjects", [{"subject": "hp-pad ", **subject, "subject_nickname": "other"}], pipeline=pipeline)
        assert snapshot(pipeline) == before  # 'hp-pad' keeps its own values
        # two attribute names that differ by a trailing space, in one new session
        row = {"subject": "hp-pad", "session_datetime": "2024-01-02T00:00:00Z", "attr.y": "1", "attr.y ": "2"}
        with pytest.raises(InputError, match="may not end with a space"):
            ingest("sessions", [row], pipeline=pipeline)
        assert snapshot(pipeline) == before
        # a lookup with a trailing space: on MySQL/MariaDB it finds 'hp-pad' (the server's collation)
        status, out, err = run(["sessions", "--subject", "hp-pad ", "--format", "json"], capsys)
        assert status == 0, err
        assert {s["subject"] for s in json.loads(out)} == (set() if POSTGRES else {"hp-pad"})
    finally:
        (pipeline.Subject & [{"subject": "hp-pad"}, {"subject": "hp-pad "}]).delete()


# -------------------------------------------------------------------------------------------- command options


def listed(out: str) -> list[dict]:
    return json.loads(out)


@EXAMPLES
@given(
    option=st.sampled_from(["--subject", "--project", "--experimenter"]),
    value=st.one_of(near(NAMES), TEXT),
)
@example(option="--subject", value="hs-a\x00b")  # NUL: refused on every server (it failed in CI when drawn)
def test_session_lookups_by_name_list_exactly_the_matching_sessions(stored, option, value, capsys):
    before = snapshot(stored)
    status, out, err = run(["sessions", f"{option}={value}", "--format", "json"], capsys)
    if "\x00" in value:  # no server compares it: PostgreSQL cannot receive it, MySQL would cut or keep it
        assert status == 2 and "contains a NUL character" in err, err  # a bad option value
        event("NUL refused")
        return
    assert status == 0, err
    found = {(s["subject"], s["session_datetime"]) for s in listed(out) if s["subject"] in NAMES}
    names = {"--subject": lambda i, n: [n], "--experimenter": lambda i, n: [n, NAMES[(i + 1) % len(NAMES)]],
             "--project": lambda i, n: [n]}[option]  # fmt: skip
    expected = {
        (n, (START + dt.timedelta(hours=i)).replace(tzinfo=dt.UTC).isoformat())
        for i, n in enumerate(NAMES)
        if any(same_key(stored_name, value) for stored_name in names(i, n))
    }
    assert found == expected  # of the sessions stored here: all that match, and only those
    event(f"{len(expected)} found")
    field = {"--subject": lambda s: [s["subject"]], "--experimenter": lambda s: s["experimenters"],
             "--project": lambda s: s["projects"]}[option]  # fmt: skip
    assert all(any(same_key(name, value) for name in field(s)) for s in listed(out))  # of any session listed
    assert snapshot(stored) == before


@EXAMPLES
@given(
    since=st.one_of(st.none(), session_times(), st.dates(dt.date(1000, 1, 2), dt.date(9998, 12, 30)).map(str)),
    until=st.one_of(st.none(), session_times(), st.dates(dt.date(1000, 1, 2), dt.date(9998, 12, 30)).map(str)),
    zone=st.one_of(st.sampled_from(["UTC", "Pacific/Kiritimati", "-09:30", "Etc/GMT+12"]), hostile(20)),
    fmt=st.one_of(st.sampled_from(["table", "csv", "json"]), hostile(8)),
)
def test_time_window_zone_and_format_options_are_exact_or_rejected(stored, since, until, zone, fmt, capsys):
    argv = ["sessions", f"--timezone={zone}", f"--format={fmt}"]  # --name=value: a value may start with '-'
    argv += [f"--since={since}"] if since is not None else []
    argv += [f"--until={until}"] if until is not None else []
    status, out, err = run(argv, capsys)
    if fmt not in ("table", "csv", "json"):
        assert status == 2 and "Invalid value for '--format'" in err
        return
    try:
        window = [_window_end(t, zone, end) if t is not None else None for t, end in ((since, False), (until, True))]
    except (timezones.TimeError, ValueError):
        assert status == 2, (argv, out)  # a bad option value
        return
    try:
        timezones.zone_info(zone)
    except timezones.TimeError:
        assert status == 2 and "timezone" in err, err  # checked whether or not a window end needs it
        return
    if window[0] is not None and window[1] is not None and window[0] >= window[1]:
        assert status == 2 and "--until: until is not after since" in err, err  # a window that selects nothing
        return
    assert status == 0, err
    if fmt != "json":
        return
    got = {(s["subject"], s["session_datetime"]) for s in listed(out) if s["subject"] in NAMES}
    expected = {
        (n, (START + dt.timedelta(hours=i)).replace(tzinfo=dt.UTC).isoformat())
        for i, n in enumerate(NAMES)
        if (window[0] is None or START + dt.timedelta(hours=i) >= window[0])
        and (window[1] is None or START + dt.timedelta(hours=i) < window[1])
    }
    assert got == expected


def _window_end(text: str, zone: str, until: bool) -> dt.datetime:
    """The UTC instant a window end means: a date is its midnight in ``zone`` (``until``: the midnight that ends
    it, the next day's); else as every time is read."""
    if until and len(text) == 10:  # a date alone: the whole day is in the window
        day = dt.date.fromisoformat(text) + dt.timedelta(days=1)
        midnight = timezones.localize(dt.datetime(day.year, day.month, day.day), zone)
        return midnight.astimezone(dt.UTC).replace(tzinfo=None)
    return timezones.read_time(text, zone, dates=True).utc


@FEWER
@given(
    subject=st.one_of(st.sampled_from(NAMES[:3]), near(NAMES[:3]), hostile(20)),
    which=st.sampled_from(["--datetime", "--id"]),
    value=st.one_of(
        st.sampled_from(["2024-04-01T09:00:00Z", "2024-04-01T11:00:00+02:00", "2024-04-01T10:00:00[UTC]", "0", "1"]),
        session_times(),
        NUMBERS,
    ),
    zone=st.one_of(st.just("UTC"), hostile(10)),
    name=st.one_of(
        st.text(ANY_CHAR.filter(lambda c: c not in "/\x00"), min_size=1, max_size=40), st.just("x.nwb")
    ).filter(lambda n: n not in (".", "..") and len(n.encode()) < 200),
)
def test_export_options_write_the_one_session_or_are_rejected(stored, subject, which, value, zone, name, capsys,
                                                              tmp_path_factory):  # fmt: skip
    folder = tmp_path_factory.mktemp("export")
    output = folder / name
    before = snapshot(stored)
    status, out, err = run(["export-nwb", f"--subject={subject}", f"{which}={value}", f"--timezone={zone}",
                            f"--output={output}"], capsys)  # fmt: skip
    assert snapshot(stored) == before
    if status == 0:
        assert out.strip() == str(output) and output.is_file() and output.stat().st_size > 0
        assert any(same_key(n, subject) for n in NAMES[:3])
        event("exported")
    else:
        assert status == option_or_data(err) and not output.exists(), err
    assert [p.name for p in folder.iterdir()] == ([output.name] if status == 0 else [])  # no partial file left


@FEWER
@given(roots=st.lists(st.one_of(hostile(30), st.sampled_from(["", "/", ".", "..", "~", "/proc/self", "C:\\",
                                                              "/nonexistent/" + "r" * 300])), max_size=3))  # fmt: skip
def test_dirs_with_hostile_root_directories(stored, roots, capsys, monkeypatch):
    assume(not any("\x00" in root for root in roots))  # an environment variable cannot hold NUL
    monkeypatch.setenv("SESSION_ROOT_DIRS", os.pathsep.join(roots))
    status, out, err = run(["dirs"], capsys)
    assert status == 0, err
    lines = [line for line in out.split("\n") if line.startswith("hs-")]
    assert len(lines) == len(NAMES)  # one line per session


@FEWER
@given(
    zone=st.one_of(st.sampled_from(["UTC", "Europe/Berlin"]), hostile(30), HUGE),
    name=st.text(ANY_CHAR.filter(lambda c: c not in "/\x00"), min_size=1, max_size=30).filter(
        lambda n: n not in (".", "..")
    ),
    suffix=st.sampled_from([".csv", ".yaml", ".json", ".CSV", ".txt", ""]),
    content=st.one_of(
        st.binary(max_size=200),
        hostile(200),
        st.sampled_from([
            "subject,session_datetime\nhs-m1,2024-06-02T10:00:00\n",
            "subject,session_datetime\nhs-m1,2024-02-30T10:00:00\n",
            "subject,session_datetime\r\nhs-m1,\"2024-06-02T10:00:00\nZ\"\r\n",
            "- subject: hs-m1\n  session_datetime: 2024-06-02T10:00:00\n",
            '[{"subject": "hs-m1", "session_datetime": "2024-06-02T10:00:00", "subject": "x"}]',
            '[{"subject": "hs-m1", "session_datetime": "2024-06-02T10:00:00\\u0000"}]',
            "\ufeffsubject,session_datetime\nhs-m1,2024-06-02T10:00:00Z\n",
        ]),
    ),
)  # fmt: skip
def test_ingest_files_and_timezone_option_are_ingested_or_rejected(stored, zone, name, suffix, content, capsys,
                                                                   tmp_path_factory):  # fmt: skip
    path = tmp_path_factory.mktemp("in") / (name + suffix)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    before = snapshot(stored)
    status, out, err = run(["ingest", "sessions", str(path), f"--timezone={zone}"], capsys)
    if status == 0:
        assert "row(s) read" in out
        delete_sessions(stored.session, [{"subject": SUBJECT, "session_datetime": dt.datetime(2024, 6, 2, h)}
                                         for h in range(24)])  # fmt: skip
    else:
        assert status == option_or_data(err), err
    assert snapshot(stored) == before


# -------------------------------------------------------------------------------------------- a real process


@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (["sessions", "--subject", "'; DROP TABLE session; --", "--format", "json"], 0),
        (["sessions", "--experimenter", "hs-O'Neil", "--since", "2024-02-30"], 2),
        (["export-nwb", "--subject", "hs-a\\b", "--id", "1e3", "--output", "x.nwb"], 2),
        (["ingest", "sessions", "missing 'file'.csv", "--timezone", "Europe/Berlin'; --"], 2),
    ],
)
def test_hostile_options_through_the_real_command(stored, subprocess_env, tmp_path, argv, status):
    before = snapshot(stored)
    result = subprocess.run([sys.executable, "-m", "element_session", *argv], env=subprocess_env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    if status == 0:
        assert json.loads(result.stdout) == []
    else:
        assert result.stdout == "" and "element-session" in result.stderr
    assert snapshot(stored) == before
    assert (Path(tmp_path) / "x.nwb").exists() is False


# -------------------------------------------------------------------------------------------- each kind, once

LONG_NAME = "n" * 300  # longer than a file name may be (255 bytes on Linux file systems)
ALIAS_BOMB = (
    "- subject: hs-m1\n  session_datetime: 2024-06-02T10:00:00Z\n  a: &a [lol, lol, lol, lol, lol, lol]\n"
    + "".join(f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 6)}]\n" for i in range(8))
)  # 6**9 copies of 'lol' once constructed
REFUSED = {
    "'%' in a key": (["ingest", "subjects", "{file}"], "subject,sex,subject_birth_date\nhs-50%,F,2021-01-01\n",
                     ".csv", "may not contain '%'"),
    "a key ending in a space": (["ingest", "projects", "{file}"], '[{"project": "hs-p "}]', ".json",
                                "may not end with a space"),
    "NUL in --subject": (["sessions", "--subject", "hs-m1\x00", "--format", "json"], None, None,
                         "contains a NUL character"),
    "NUL in --experimenter": (["sessions", "--experimenter", "\x00"], None, None, "contains a NUL character"),
    "NUL in populate --restrict": (["populate", "--restrict", "subject=hs-m1\x00"], None, None,
                                   "contains a NUL character"),
    "NUL in jobs --restrict": (["jobs", "--restrict", "subject=\x00"], None, None, "contains a NUL character"),
    "NUL in export-nwb --subject": (["export-nwb", "--subject", "hs-m1\x00", "--id", "0", "--output", "x.nwb"],
                                    None, None, "contains a NUL character"),
    "NUL in an experimenter of a file": (["ingest", "sessions", "{file}"],
                                         '[{"subject": "hs-m1", "session_datetime": "2024-06-02T10:00:00Z", '
                                         '"experimenter": "hs-m1;hs-\\u0000"}]', ".json", "contains a NUL character"),
    "a window end after year 9999 in UTC": (["sessions", "--until", "9999-12-31T23:00:00-05:00"], None, None,
                                            "outside the years 1-9999"),
    "a session time before year 1 in UTC": (["ingest", "sessions", "{file}"],
                                            "subject,session_datetime\nhs-m1,0001-01-01T00:30:00+01:00\n", ".csv",
                                            "outside the years 1-9999"),
    "export-nwb --datetime after year 9999": (["export-nwb", "--subject", "hs-m1", "--datetime",
                                               "9999-12-31T23:00:00-05:00", "--output", "x.nwb"], None, None,
                                              "outside the years 1-9999"),
    "an input file name too long": (["ingest", "sessions", f"{LONG_NAME}.csv"], None, None, "File name too long"),
    "an output file name too long": (["export-nwb", "--subject", "hs-m1", "--id", "0", "--output",
                                      f"{LONG_NAME}.nwb"], None, None, "File name too long"),
    "a YAML alias bomb": (["ingest", "sessions", "{file}"], ALIAS_BOMB, ".yaml",
                          "a value must be text or a list of text"),
    "a recursive YAML alias": (["ingest", "sessions", "{file}"], "- subject: &s [*s]\n", ".yaml",
                               "a value must be text or a list of text"),
}  # fmt: skip


#: The cases of REFUSED whose bad value is in a command's option: exit status 2 (USAGE), not 1.
OPTION_CASES = {
    "NUL in --subject", "NUL in --experimenter", "NUL in populate --restrict", "NUL in jobs --restrict",
    "NUL in export-nwb --subject", "a window end after year 9999 in UTC", "export-nwb --datetime after year 9999",
}  # fmt: skip


def option_or_data(err: str) -> int:
    """The exit status an error message calls for: 2 for a bad option value, 1 for bad data."""
    return 2 if "problem(s) in the options" in err or "problem(s) in the arguments" in err else 1


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_each_kind_of_hostile_input_is_refused_with_a_typed_error(stored, case, capsys, tmp_path, monkeypatch):
    """Once each, on every server: exit status 2 for an option, else 1, naming the reason, nothing written."""
    argv, content, suffix, reason = REFUSED[case]
    monkeypatch.chdir(tmp_path)
    file = tmp_path / f"input{suffix}"
    if content is not None:
        file.write_text(content, encoding="utf-8")
    before = snapshot(stored)
    status, out, err = run([a.replace("{file}", str(file)) for a in argv], capsys)
    assert status == (2 if case in OPTION_CASES else 1) and reason in err, err
    assert out == "" and snapshot(stored) == before
    assert not (tmp_path / "x.nwb").exists()


def test_a_root_directory_name_too_long_is_a_root_where_nothing_is_found(stored, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SESSION_ROOT_DIRS", os.pathsep.join([str(tmp_path / LONG_NAME), str(tmp_path)]))
    (tmp_path / "hs" / "3").mkdir(parents=True)
    status, out, err = run(["dirs"], capsys)
    assert status == 0, err
    lines = {line.split()[0]: line for line in out.split("\n") if line.startswith("hs-")}
    assert len(lines) == len(NAMES) and str(tmp_path / "hs" / "3") in lines[NAMES[3]]


def test_a_reader_that_goes_away_is_not_an_unreachable_database(stored, subprocess_env, tmp_path):
    """``element-session sessions | head -c0``: the pipe broke, the database is fine (not exit 3)."""
    argv = [sys.executable, "-m", "element_session", "sessions", "--format", "json"]
    with subprocess.Popen(argv, env=subprocess_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:  # fmt: skip
        proc.stdout.close()  # the reader is gone before the command writes
        err = proc.stderr.read()
        status = proc.wait(timeout=120)
    print(f"\nexit status {status}: {err}")
    assert status == cli.ExitStatus.BROKEN_PIPE and "cannot reach the database" not in err and "Traceback" not in err
