"""A missing value of pandas (NaN) in a lookup is an InputError naming the argument, at every entry point (20.1).

The issue's example: a float NaN, what pandas gives for an empty cell, given to ``find_sessions``,
to a populate/jobs restriction or to ``get_session_directory`` reached SQL as the bare word ``nan``
("Unknown column 'nan'"), and populate's workers died of it. Each entry point passes its values
through :mod:`element_session.lookups`; nothing reaches the server and no worker starts.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import types

import numpy as np
import pandas as pd
import pytest

from element_session import cli
from element_session.errors import InputError
from element_session.paths import get_session_directory
from element_session.populate import clear_jobs, list_jobs, populate
from element_session.query import find_sessions, session_key_of_subject
from workflow.inventory import FileTypeSummary, SessionInventory

NAN = float("nan")
KEY = {"subject": "lk-m1", "session_datetime": dt.datetime(2024, 1, 2, 3, 4, 5)}


def jobs_rows() -> list[dict]:
    return [*SessionInventory.jobs.to_dicts(), *FileTypeSummary.jobs.to_dicts()]


def refused(error: InputError, name: str, source: str = "arguments") -> bool:
    """Whether ``error`` names the argument ``name`` and a missing value, as a problem of ``source``."""
    (problem,) = error.problems
    return problem.source == source and problem.column == name and "missing value" in problem.reason


@pytest.mark.parametrize("argument", ["subject", "project", "experimenter", "attribute", "value"])
def test_find_sessions_refuses_nan_naming_the_argument(pipeline, argument):
    given = {argument: NAN} | ({"attribute": "rig"} if argument == "value" else {})
    with pytest.raises(InputError) as err:
        find_sessions(pipeline.session, **given)
    assert refused(err.value, argument) and err.value.in_arguments
    assert f"column '{argument}': a missing value (NaN" in str(err.value)


def test_find_sessions_refuses_pandas_missing_values_and_lists_where_one_value_goes(pipeline):
    row = pd.read_csv(io.StringIO("subject,project\nlk-m1,\n")).iloc[0]  # the example: an empty cell
    assert math.isnan(row.project)
    with pytest.raises(InputError) as err:
        find_sessions(pipeline.session, subject=row.subject, project=row.project)
    assert refused(err.value, "project")
    with pytest.raises(InputError) as err:
        find_sessions(pipeline.session, subject=["lk-m1", pd.NA])  # a nullable string column's empty cell
    assert refused(err.value, "subject")
    with pytest.raises(InputError, match=r"column 'project': not a single value but a list"):
        find_sessions(pipeline.session, project=["a", "b"])
    assert len(find_sessions(pipeline.session, project=None)) == len(pipeline.session.Session())  # None: not given


def test_the_session_of_an_nwb_export_refuses_a_nan_subject(pipeline):
    with pytest.raises(InputError) as err:
        session_key_of_subject(pipeline.session, NAN, session_id=1)
    assert refused(err.value, "subject")


@pytest.mark.parametrize("run", [populate, list_jobs, clear_jobs], ids=lambda f: f.__name__)
def test_a_nan_restriction_is_refused_before_any_worker_or_query(pipeline, run):
    before = jobs_rows()
    options = {"progress": False} if run is populate else {}
    for restriction in ({"subject": NAN}, [{"subject": "lk-m1"}, {"subject": np.nan}], {"subject": pd.NaT}):
        with pytest.raises(InputError) as err:
            run(pipeline, restriction=restriction, **options)
        assert refused(err.value, "subject", source="restriction") and err.value.in_arguments
    with pytest.raises(InputError, match=r"column 'subject': not a single value but a list"):
        run(pipeline, restriction={"subject": ["lk-m1"]}, **options)
    assert jobs_rows() == before  # no worker started, none failed


def test_none_in_a_restriction_means_is_null(pipeline):
    assert list_jobs(pipeline, restriction={"subject": None}) == []


@pytest.mark.parametrize("module", [True, False], ids=["session_module", "found_from_key"])
def test_get_session_directory_refuses_nan_and_none_in_the_key(pipeline, module):
    session_module = pipeline.session if module else None
    with pytest.raises(InputError) as err:
        get_session_directory(KEY | {"subject": NAN}, session_module)
    assert refused(err.value, "key['subject']")
    with pytest.raises(InputError, match=r"column \"key\['session_datetime'\]\": a value is required"):
        get_session_directory(KEY | {"session_datetime": None}, session_module)


@pytest.mark.parametrize("zone", [NAN, pd.NA, b"UTC", 3, None], ids=repr)
def test_a_zone_that_is_not_text_is_refused_naming_timezone(pipeline, zone):
    for call in (
        lambda: find_sessions(pipeline.session, timezone=zone),
        lambda: list_jobs(pipeline, timezone=zone),
        lambda: populate(pipeline, timezone=zone, progress=False),
    ):
        with pytest.raises(InputError, match=r"column 'timezone': a time zone is text") as err:
            call()
        assert err.value.in_arguments


def test_a_missing_time_and_a_status_that_is_not_text_are_refused(pipeline):
    with pytest.raises(InputError, match=r"column 'since': a missing time \(NaT"):
        find_sessions(pipeline.session, since=pd.NaT)
    with pytest.raises(InputError, match=r"column 'session_datetime': a missing value"):
        list_jobs(pipeline, restriction={"session_datetime": pd.NaT})
    for status in (pd.NA, np.array(["planned", "acquired"]), pd.Series(["planned"])):
        with pytest.raises(InputError, match=r"column 'status': not a session status"):
            find_sessions(pipeline.session, status=status)


def test_a_subject_dict_of_other_attributes_is_refused_not_every_session(pipeline):
    for subject in ({"subjet": "lk-m1"}, {}, [{"subject": "lk-m1"}, {"name": "x"}]):
        with pytest.raises(InputError, match=r"column 'subject': give subjects as dicts of \['subject'\]"):
            find_sessions(pipeline.session, subject=subject)


@pytest.mark.parametrize("run", [populate, list_jobs, clear_jobs], ids=lambda f: f.__name__)
def test_a_restriction_attribute_no_table_has_is_refused_not_every_key(pipeline, run):
    before, made = jobs_rows(), len(SessionInventory())
    options = {"progress": False} if run is populate else {}
    for restriction in (
        {"subjet": "lk-m1"},
        [{"subject": "lk-m1"}, {"sesion_datetime": "2024-01-01T00:00:00Z"}],
        {"file_count": 3},  # a secondary attribute: keys are restricted by their own attributes only
    ):
        with pytest.raises(InputError, match=r"no selected table has this attribute") as err:
            run(pipeline, restriction=restriction, **options)
        assert err.value.in_arguments and err.value.problems[0].source == "restriction"
    assert jobs_rows() == before and len(SessionInventory()) == made  # nothing made, nothing cleared


def test_the_commands_refuse_a_misspelt_restrict_with_exit_2(pipeline, command):
    for name in ("populate", "jobs"):
        option = "--no-progress" if name == "populate" else "--table=SessionInventory"
        ran = command(name, "--restrict", "subjet=lk-m1", option)
        assert ran.status == 2, ran
        assert "--restrict subjet: no selected table has this attribute" in ran.err
        assert "Traceback" not in ran.err


def test_a_nan_age_of_stale_reservations_is_refused_not_a_silent_nothing(pipeline, command):
    for age in (NAN, -1, "5", True):
        with pytest.raises(InputError, match=r"column 'older_than': give a number of minutes >= 0") as refused:
            clear_jobs(pipeline, stale=True, older_than=age)
        assert refused.value.problems[0].value is age
    ran = command("jobs", "--clear-stale", "--older-than", "nan")
    # the option as typed, not the Python argument it gave its value to
    assert ran.status == 2 and "--older-than: give a number of minutes >= 0 (value: nan)" in ran.err, ran
    assert "older_than" not in ran.err and "Traceback" not in ran.err


@pytest.fixture
def numbered(prefix):
    """A pipeline module whose Computed table's key is a number (``item: int``), with items 0 and 3."""
    from tests.slurm_tables import make_tables

    item, made = make_tables(prefix + "lk_")
    item.insert([{"item": 0}, {"item": 3}], skip_duplicates=True)
    module = types.ModuleType("numbered_pipeline")
    module.Item, module.Made = item, made
    return module


@pytest.mark.parametrize("run", [populate, list_jobs, clear_jobs], ids=lambda f: f.__name__)
def test_a_restriction_value_of_another_type_than_its_attribute_is_refused(pipeline, numbered, run):
    """MySQL compared text with a number as numbers ('abc' is 0: item=abc made item 0); PostgreSQL answered a raw
    "operator does not exist: character varying = integer" for a number given for a text attribute."""
    options = {"progress": False} if run is populate else {}
    for value in ("abc", "3x", "3.5", ""):
        with pytest.raises(InputError, match=r"column 'item': not a whole number") as err:
            run(numbered, restriction={"item": value}, **options)
        assert err.value.in_arguments and err.value.problems[0].source == "restriction"
    with pytest.raises(InputError, match=r"column 'subject': a number for a text attribute") as err:
        run(pipeline, restriction={"subject": 1}, tables=["SessionInventory"], **options)
    assert len(numbered.Made()) == 0  # nothing made
    if run is not populate:  # (populate's workers import the pipeline by name: this one has none)
        assert run(numbered, restriction={"item": " 3"}) == []  # a whole number, as text: read as 3


def test_the_commands_read_restrict_values_as_their_attributes_types(numbered, capsys):
    """``--restrict`` gives text: a whole number for a number attribute is read as one, other text refused."""
    assert cli.main(["jobs", "--restrict", "item=abc"], pipeline=numbered) == 2
    assert "--restrict item: not a whole number" in capsys.readouterr().err
    assert cli.main(["jobs", "--restrict", "item=3"], pipeline=numbered) == 0


def test_a_number_for_a_text_attribute_is_refused_by_every_lookup(pipeline):
    """``find_sessions`` and ``get_session_directory`` read values as restrictions do: a subject 1 (pandas' reading
    of a column of ``001``) was a raw "operator does not exist" on PostgreSQL, on MySQL it matched '1' and '01'."""
    calls = {
        "subject": lambda: find_sessions(pipeline.session, subject=1),
        "project": lambda: find_sessions(pipeline.session, project=np.int64(2)),
        "experimenter": lambda: find_sessions(pipeline.session, experimenter=3.0),
        "key['subject']": lambda: get_session_directory(KEY | {"subject": 1}, pipeline.session),
    }
    for name, call in calls.items():
        with pytest.raises(InputError, match=r"a number for a text attribute") as err:
            call()
        assert err.value.problems[0].column == name and err.value.in_arguments
