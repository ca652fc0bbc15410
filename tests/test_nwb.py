"""NWB export: sessions of both variants written with pynwb, read back, and checked by nwbinspector."""

from __future__ import annotations

import datetime as dt
import sys
import warnings
from zoneinfo import ZoneInfo

import numpy as np
import nwbinspector
import pynwb
import pytest

from element_session import blob_json, cli
from element_session.errors import (
    DandiWarning,
    ElementSessionError,
    InputError,
    OutputExistsError,
    SessionNotFoundError,
)
from element_session.export.dandi import subject_problems
from element_session.export.nwb import (
    ATTRIBUTES_TABLE,
    NwbExportError,
    NwbUnavailableError,
    find_session_key,
    nwb_identifier,
    session_to_nwb,
    subject_arguments,
    write_nwb,
)
from element_session.ingest import ingest

SUBJECTS, PEOPLE, PROJECTS = ["nw-m1", "nw-m2"], ["nw-ada", "nw-bob"], ["nw-maps", "nw-rig"]
NEW_YORK = ZoneInfo("America/New_York")
# 09:30 in New York on the day daylight-saving time began there: UTC-4, 13:30 UTC
START_UTC = dt.datetime(2024, 3, 10, 13, 30)
SESSION = {
    "subject": "nw-m1",
    "session_datetime": "2024-03-10T09:30:00",
    "session_id": "7",
    "experimenter": ["nw-bob", "nw-ada"],
    "project": ["nw-rig", "nw-maps"],
    "session_note": "first session, ✓",
    "attr.rig": "rig-a",
    "attr.task": "go-nogo",
}


GAIN_JSON = '{"gain": {"__type__": "ndarray", "dtype": "<f8", "shape": [2], "data": [1.5, 2.0]}, "n": 3}'


@pytest.fixture
def refs(references):
    subjects = [
            {"subject": "nw-m1", "sex": "F", "subject_birth_date": "2023-01-02", "subject_nickname": "Zoë",
             "subject_description": "a mouse"},
            {"subject": "nw-m2", "sex": "U", "subject_birth_date": "2023-05-06"},
    ]  # fmt: skip
    people = [{"user": "nw-ada", "user_fullname": "Lovelace, Ada"}, {"user": "nw-bob"}]
    projects = [{"project": "nw-maps", "project_description": "cortical maps"}, {"project": "nw-rig"}]
    return references(subjects, people, projects)


@pytest.fixture
def id_sessions(pipeline, prefix):
    """The id variant, activated in its own schema and dropped afterwards."""
    from element_session import session_with_id
    from element_session.linking import drop_schema

    session_with_id.activate(prefix + "nwb_session_by_id", linking_module=pipeline)
    yield session_with_id
    drop_schema(session_with_id.schema)


#: What the workflow's Subject lacks for DANDI (a species); the sex and birth date come from the table.
MOUSE = {"species": "Mus musculus"}


def critical_and_worse(path) -> list:
    return list(nwbinspector.inspect_nwbfile(nwbfile_path=path, importance_threshold="CRITICAL"))


def test_datetime_session_round_trip(refs, tmp_path):
    module = refs.session
    ingest("sessions", [SESSION], pipeline=refs, timezone="America/New_York")
    key = {"subject": "nw-m1", "session_datetime": START_UTC}
    module.Session.Attribute.insert1(
        {**key, "attribute_name": "levels", "attribute_blob": {"gain": np.array([1.5, 2.0]), "n": 3}}
    )
    with pytest.warns(DandiWarning) as said:  # the workflow's Subject has no species (issue 20.3)
        path = write_nwb(
            key, tmp_path / "s.nwb", session_module=module, linking_module=refs, institution="Uni", lab="Lab"
        )
    assert path == tmp_path / "s.nwb"
    (warning,) = said  # one: nwbinspector's finding on the species is the same, not said twice
    assert "lacks what the DANDI archive requires" in str(warning.message)
    assert "species: add a `species` column to the Subject table" in str(warning.message)
    assert "subject_kwargs={'species': 'Mus musculus'}" in str(warning.message)
    assert "sex" not in str(warning.message) and "date_of_birth" not in str(warning.message)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        start = nwb.session_start_time
        assert start == START_UTC.replace(tzinfo=dt.UTC)
        assert start.utcoffset() == dt.timedelta(hours=-4)  # the session's zone at that instant
        assert nwb.timestamps_reference_time == start
        assert nwb.identifier == nwb_identifier(module.Session, key)
        assert nwb.session_id == "7"
        assert list(nwb.experimenter) == ["Lovelace, Ada", "nw-bob"]  # full name where there is one, else the key
        assert nwb.notes == "first session, ✓"
        assert list(nwb.keywords[:]) == ["nw-maps", "nw-rig"]
        assert nwb.experiment_description == "nw-maps: cortical maps; nw-rig"
        assert "nw-m1" in nwb.session_description and "nw-maps, nw-rig" in nwb.session_description
        assert "2024-03-10T09:30:00-04:00 (America/New_York)" in nwb.session_description
        assert (nwb.institution, nwb.lab) == ("Uni", "Lab")
        subject = nwb.subject
        assert (subject.subject_id, subject.sex) == ("nw-m1", "F")
        assert subject.date_of_birth == dt.datetime(2023, 1, 2, tzinfo=NEW_YORK)
        assert subject.date_of_birth.utcoffset() == dt.timedelta(hours=-5)
        assert subject.description == "a mouse (nickname: Zoë)"
        assert subject.species is None  # the workflow's Subject has no species
        table = nwb.acquisition[ATTRIBUTES_TABLE].to_dataframe()
        assert table.to_dict("records") == [
            {"attribute_name": "levels", "attribute_value": "", "attribute_blob": GAIN_JSON},
            {"attribute_name": "rig", "attribute_value": "rig-a", "attribute_blob": ""},
            {"attribute_name": "task", "attribute_value": "go-nogo", "attribute_blob": ""},
        ]
        levels = blob_json.loads(table["attribute_blob"][0])  # element-session's JSON form gives the array back
        assert levels["n"] == 3 and levels["gain"].dtype == np.float64 and list(levels["gain"]) == [1.5, 2.0]
    messages = list(nwbinspector.inspect_nwbfile(nwbfile_path=path))
    found = {(m.importance.name, m.check_function_name) for m in messages}
    # what the inspector reports on this file: nothing critical; a suggestion and two best-practice violations
    assert found == {
        ("BEST_PRACTICE_SUGGESTION", "check_experimenter_form"),  # 'nw-bob' is not 'Last, First'
        ("BEST_PRACTICE_VIOLATION", "check_subject_species_exists"),
        ("BEST_PRACTICE_VIOLATION", "check_table_values_for_dict"),  # the dict blob, kept as JSON text
    }, messages
    assert critical_and_worse(path) == []
    # DANDI's stricter configuration makes the missing species critical ...
    dandi = nwbinspector.load_config("dandi")
    strict = nwbinspector.inspect_nwbfile(nwbfile_path=path, config=dandi, importance_threshold="CRITICAL")
    assert [m.check_function_name for m in strict] == ["check_subject_species_exists"]
    # ... and with the species given, nothing is
    write_nwb(key, path, overwrite=True, session_module=module, subject_kwargs={"species": "Mus musculus"})
    assert list(nwbinspector.inspect_nwbfile(nwbfile_path=path, config=dandi, importance_threshold="CRITICAL")) == []
    assert session_to_nwb(key, session_module=module).identifier == nwb_identifier(module.Session, key)


def test_upstream_tables_found_without_the_pipeline(refs):
    """Without linking_module=, Subject, Experimenter and Project are the tables the session tables reference."""
    module = refs.session
    ingest("sessions", [SESSION], pipeline=refs, timezone="America/New_York")
    key = {"subject": "nw-m1", "session_datetime": START_UTC}
    with_pipeline = session_to_nwb(key, session_module=module, linking_module=refs)
    without = session_to_nwb(key, session_module=module)
    for name in ("experimenter", "keywords", "experiment_description", "session_description", "identifier"):
        assert getattr(without, name) == getattr(with_pipeline, name), name
    assert without.subject.fields == with_pipeline.subject.fields
    older = session_to_nwb(key, session_module=module, pipeline=refs)  # the earlier keyword, without a warning
    assert older.subject.fields == with_pipeline.subject.fields
    with pytest.raises(TypeError, match="not both"):  # the same rule as ingest's (pipeline.linking_module_argument)
        session_to_nwb(key, session_module=module, pipeline=module, linking_module=refs)


def test_session_keys_as_aware_datetime_or_iso_text(refs):
    module = refs.session
    ingest("sessions", [SESSION], pipeline=refs, timezone="America/New_York")
    expected = nwb_identifier(module.Session, {"subject": "nw-m1", "session_datetime": START_UTC})
    for stamp in (
        dt.datetime(2024, 3, 10, 9, 30, tzinfo=NEW_YORK),
        "2024-03-10T13:30:00",  # text without offset: UTC, as stored
        "2024-03-10T09:30:00-04:00",
    ):
        nwb = session_to_nwb({"subject": "nw-m1", "session_datetime": stamp}, session_module=module)
        assert nwb.identifier == expected, stamp
    assert find_session_key(module, "nw-m1", session_id="7") == {"subject": "nw-m1", "session_datetime": START_UTC}
    assert find_session_key(module, "nw-m1", session_datetime="2024-03-10T09:30:00", timezone="America/New_York") == {
        "subject": "nw-m1",
        "session_datetime": START_UTC,
    }


def test_id_session_round_trip_and_a_session_without_start_time(refs, id_sessions, tmp_path):
    ingest(
        "sessions",
        [
            {**SESSION, "session_id": "3"},
            {"subject": "nw-m2", "session_id": "1", "session_note": "start unknown"},
        ],
        pipeline=refs,
        session_module=id_sessions,
        timezone="America/New_York",
    )
    # a start time without a recorded zone is shown in UTC
    id_sessions.Session.insert1({"subject": "nw-m2", "session_id": 2, "session_datetime": "2024-05-06 07:08:09"})
    key = {"subject": "nw-m1", "session_id": 3}
    path = write_nwb(key, tmp_path / "id.nwb", session_module=id_sessions, linking_module=refs, subject_kwargs=MOUSE)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        assert nwb.session_start_time == START_UTC.replace(tzinfo=dt.UTC)
        assert nwb.session_start_time.utcoffset() == dt.timedelta(hours=-4)
        assert nwb.session_id == "3"
        assert nwb.identifier == nwb_identifier(id_sessions.Session, key)
        assert list(nwb.experimenter) == ["Lovelace, Ada", "nw-bob"]
        assert list(nwb.keywords[:]) == ["nw-maps", "nw-rig"]
        assert nwb.subject.subject_id == "nw-m1"
        assert list(nwb.acquisition[ATTRIBUTES_TABLE]["attribute_name"].data[:]) == ["rig", "task"]
    assert critical_and_worse(path) == []
    assert nwb_identifier(id_sessions.Session, key) != nwb_identifier(id_sessions.Session, {**key, "session_id": 2})

    utc = session_to_nwb({"subject": "nw-m2", "session_id": 2}, session_module=id_sessions)
    assert utc.session_start_time == dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    assert utc.session_start_time.utcoffset() == dt.timedelta(0)
    assert utc.experimenter is None and utc.keywords is None and utc.notes is None
    assert ATTRIBUTES_TABLE not in utc.acquisition
    assert utc.subject.sex == "U" and "nickname" not in (utc.subject.description or "")

    with pytest.raises(NwbExportError, match=r"has no session_datetime, and NWB requires a session_start_time"):
        write_nwb({"subject": "nw-m2", "session_id": 1}, tmp_path / "none.nwb", session_module=id_sessions)
    assert not (tmp_path / "none.nwb").exists()


def test_bad_keys_and_arguments_are_typed_errors(refs, tmp_path):
    module = refs.session
    ingest("sessions", [SESSION], pipeline=refs, timezone="America/New_York")
    key = {"subject": "nw-m1", "session_datetime": START_UTC}
    with pytest.raises(InputError, match=r"missing primary-key attribute\(s\) \['session_datetime'\]"):
        session_to_nwb({"subject": "nw-m1"}, session_module=module)
    with pytest.raises(InputError, match="column 'session_datetime': not an ISO 8601"):
        session_to_nwb({"subject": "nw-m1", "session_datetime": "yesterday"}, session_module=module)
    with pytest.raises(SessionNotFoundError, match="no session"):
        session_to_nwb({"subject": "nw-m1", "session_datetime": START_UTC.replace(hour=1)}, session_module=module)
    with pytest.raises(SessionNotFoundError, match="no session"):
        find_session_key(module, "nw-m2", session_id=7)
    with pytest.raises(InputError, match="not a whole number"):
        find_session_key(module, "nw-m1", session_id="\uff17")  # a fullwidth 7 is not a number
    with pytest.raises(NwbExportError, match="session_start_time cannot be given"):
        session_to_nwb(key, session_module=module, session_start_time=dt.datetime.now(dt.UTC))
    with pytest.raises(InputError, match=r"column 'nwbfile_kwargs': not a field of NWB's NWBFile, which takes: .*lab"):
        session_to_nwb(key, session_module=module, no_such_argument=1)
    with pytest.raises(InputError, match="'additional_nwbfile_kwargs': not a field of NWB's NWBFile") as caught:
        session_to_nwb(key, session_module=module, additional_nwbfile_kwargs={"labb": "L"})
    assert caught.value.in_arguments and "(value: 'labb')" in str(caught.value)
    with pytest.raises(InputError, match="'subject_kwargs': not a field of NWB's Subject, which takes: age") as caught:
        write_nwb(key, tmp_path / "foo.nwb", session_module=module, subject_kwargs={"foo": "bar"})
    assert "species" in str(caught.value) and "(value: 'foo')" in str(caught.value)
    assert not (tmp_path / "foo.nwb").exists()
    custom = session_to_nwb(key, session_module=module, session_description="custom", identifier="mine")
    assert (custom.session_description, custom.identifier) == ("custom", "mine")
    (tmp_path / "taken.nwb").write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="exists and was left as it is: give --overwrite"):
        write_nwb(key, tmp_path / "taken.nwb", session_module=module)
    assert (tmp_path / "taken.nwb").read_bytes() == b"keep me"
    with pytest.raises(NwbExportError, match="does not exist"):
        write_nwb(key, tmp_path / "no" / "dir.nwb", session_module=module)
    assert issubclass(NwbExportError, ElementSessionError)


def test_subject_arguments_map_sex_birth_and_species():
    row = {"lab": "L1", "animal": 4, "sex": "female", "date_of_birth": dt.datetime(2023, 1, 2, 12, 0),
           "species": "Mus musculus", "strain": "", "subject_description": None, "nickname": "Zoë"}  # fmt: skip
    found = subject_arguments(row, ["lab", "animal"], "Europe/Berlin")
    assert found == {
        "subject_id": "L1_4",
        "sex": "F",
        "date_of_birth": dt.datetime(2023, 1, 2, 13, 0, tzinfo=ZoneInfo("Europe/Berlin")),  # stored as UTC
        "species": "Mus musculus",
        "description": "nickname: Zoë",
    }
    assert subject_arguments({"subject": "x", "sex": "?", "birth_date": "unknown"}, ["subject"], None) == {
        "subject_id": "x",
        "sex": "U",
    }
    text = subject_arguments({"subject": "x", "dob": None, "subject_birth_date": "2023-01-02"}, ["subject"], "+02:00")
    assert text["date_of_birth"].isoformat() == "2023-01-02T00:00:00+02:00"
    pynwb.file.Subject(**found)  # pynwb accepts what it is given


def test_export_command(refs, tmp_path, capsys):
    ingest("sessions", [SESSION], pipeline=refs, timezone="America/New_York")
    out = tmp_path / "cli.nwb"

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(["export-nwb", *argv], pipeline=refs)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    by_time = ("--subject", "nw-m1", "--datetime", "2024-03-10T09:30:00", "--timezone", "America/New_York")
    code, _, err = run(*by_time, "--output", str(out), "--strict")  # for a pipeline that publishes to DANDI
    assert code == 1 and "species: add a `species` column" in err and "refused by --strict" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing written
    full = ("--subject-field", "species=Mus musculus", "--subject-field", "age=P90D")  # what Subject lacks
    code, _, err = run(*by_time, "--output", str(out), "--strict", *full)  # the command alone makes a DANDI file
    assert (code, err) == (0, "") and out.exists()
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        assert (io.read().subject.species, io.read().subject.age) == ("Mus musculus", "P90D")
    out.unlink()
    code, printed, err = run(*by_time, "--output", str(out), "--lab", "Lab")
    assert (code, printed) == (0, f"{out}\n")
    assert err.startswith("element-session: warning: the NWB file's subject lacks what the DANDI archive requires")
    assert err.count("\n") == 1 and "species" in err
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        assert nwb.session_start_time == START_UTC.replace(tzinfo=dt.UTC) and nwb.lab == "Lab"
    code, _, err = run(*by_time, "--output", str(out))
    assert code == 1 and "exists and was left as it is: give --overwrite to replace it" in err
    assert run("--subject", "nw-m1", "--id", "7", "--output", str(out), "--overwrite")[0] == 0
    assert run("--subject", "nw-m1", "--datetime", "2024-03-10T13:30:00Z", "--output", str(out), "--overwrite")[0] == 0
    code, out_text, err = run("--subject", "nw-m1", "--id", "8", "--output", str(tmp_path / "x.nwb"))
    assert (code, out_text) == (1, "") and "no session with subject=nw-m1, session_id=8" in err
    code, _, err = run("--subject", "nw-m1", "--datetime", "2024-03-10T02:30:00", "--timezone", "America/New_York",
                       "--output", str(tmp_path / "x.nwb"))  # fmt: skip
    assert code == 2 and "does not exist in America/New_York" in err  # a bad option value
    code, _, err = run("--subject", "nw-m1", "--id", "seven", "--output", str(tmp_path / "x.nwb"))
    assert code == 2 and "--id: not a whole number (value: 'seven')" in err
    assert not (tmp_path / "x.nwb").exists()
    code, _, err = run("--subject", "s", "--id", "1", "--datetime", "x", "--output", "f")  # both: wrong usage
    assert code == cli.ExitStatus.USAGE and "give --datetime or --id, not both" in err
    assert run("--subject", "s", "--output", "f")[0] == cli.ExitStatus.USAGE  # neither
    born = ("--subject-field", "species=Mus musculus", "--subject-field", "date_of_birth=2023-12-01")
    code, _, err = run(*by_time, "--output", str(tmp_path / "born.nwb"), "--strict", *born)  # DANDI's other way
    assert (code, err) == (0, "")
    with pynwb.NWBHDF5IO(str(tmp_path / "born.nwb"), "r") as io:  # midnight in the session's zone
        assert io.read().subject.date_of_birth == dt.datetime(2023, 12, 1, 5, tzinfo=dt.UTC)
    code, _, err = run(*by_time, "--output", str(tmp_path / "x.nwb"), "--subject-field", "date_of_birth=soon")
    assert code == 2 and "--subject-field: not an ISO 8601 date and time" in err and "(value: 'soon')" in err
    code, _, err = run(*by_time, "--output", str(tmp_path / "x.nwb"), "--subject-field", "foo=bar")
    assert code == 2 and "--subject-field: not a field of NWB's Subject, which takes: age, " in err
    assert "species" in err and "(value: 'foo')" in err and "pynwb" not in err and err.count("\n") == 2
    assert not (tmp_path / "x.nwb").exists()


def test_what_dandi_requires_of_the_subject_is_named_field_by_field(refs, tmp_path):
    assert set(subject_problems(pynwb.NWBFile("d", "i", dt.datetime(2024, 1, 1, tzinfo=dt.UTC)))) == {
        "species", "sex", "age or date_of_birth"}  # fmt: skip
    bare = pynwb.NWBFile("d", "i", dt.datetime(2024, 1, 1, tzinfo=dt.UTC), subject=pynwb.file.Subject(subject_id="m"))
    problems = subject_problems(bare)
    assert (
        "subject_birth_date" in problems["age or date_of_birth"] and "'age': 'P90D'" in problems["age or date_of_birth"]
    )
    assert "`sex` column" in problems["sex"]
    aged = pynwb.file.Subject(subject_id="m", species="Mus musculus", sex="F", age="P90D")
    assert subject_problems(pynwb.NWBFile("d", "i", dt.datetime(2024, 1, 1, tzinfo=dt.UTC), subject=aged)) == {}
    ingest("sessions", [SESSION], pipeline=refs, timezone="America/New_York")
    key = {"subject": "nw-m1", "session_datetime": START_UTC}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete subject: no warning, strict or not
        path = write_nwb(key, tmp_path / "ok.nwb", session_module=refs.session, subject_kwargs=MOUSE, strict=True)
    assert path.is_file()
    for born in ("2023-12-01", dt.date(2023, 12, 1)):  # as a birth date column: midnight in the session's zone
        kwargs = {"species": "Mus musculus", "date_of_birth": born}
        path = write_nwb(key, tmp_path / "b.nwb", session_module=refs.session, subject_kwargs=kwargs, overwrite=True)
        with pynwb.NWBHDF5IO(str(path), "r") as io:
            assert io.read().subject.date_of_birth == dt.datetime(2023, 12, 1, 5, tzinfo=dt.UTC)
    with pytest.raises(InputError, match=r"column \"subject_kwargs\['date_of_birth'\]\": not an ISO 8601"):
        write_nwb(key, tmp_path / "c.nwb", session_module=refs.session, subject_kwargs={"date_of_birth": "soon"})


def test_a_form_dandi_refuses_is_said_beside_a_missing_field(refs, tmp_path):
    """nwbinspector's findings of another kind than the missing field said are kept: they were all dropped."""
    ingest("sessions", [SESSION], pipeline=refs, timezone="America/New_York")
    key = {"subject": "nw-m1", "session_datetime": START_UTC}
    with pytest.warns(DandiWarning) as caught:
        write_nwb(key, tmp_path / "x.nwb", session_module=refs.session, subject_kwargs={"sex": "m", "age": "90"})
    said = [str(w.message) for w in caught if issubclass(w.category, DandiWarning)]
    assert len(said) == 2 and "species: add a `species` column" in said[0]  # the missing species, before writing
    assert "check_subject_sex: Subject.sex should be one of" in said[1]  # the forms DANDI refuses, after
    assert "check_subject_age: Subject age, '90', does not follow ISO 8601" in said[1]
    assert "species" not in said[1]  # the missing species once, in this project's words


def test_missing_pynwb_is_a_clear_error(pipeline, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynwb", None)  # what an environment without pynwb looks like to import
    key = {"subject": "nw-m1", "session_datetime": START_UTC}
    with pytest.raises(NwbUnavailableError, match=r"pip install \"element-session\[nwb\]\"") as err:
        session_to_nwb(key, session_module=pipeline.session)
    assert isinstance(err.value, ElementSessionError) and isinstance(err.value, ImportError)
    with pytest.raises(NwbUnavailableError):
        write_nwb(key, tmp_path / "s.nwb", session_module=pipeline.session)
    assert list(tmp_path.iterdir()) == []
