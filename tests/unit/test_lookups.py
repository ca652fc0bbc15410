"""Which values can be looked up (element_session.lookups), without a server."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import numpy as np
import pandas as pd
import pytest

from element_session.errors import InputError
from element_session.lookups import check_lookups, check_restriction, lookup_problem

MISSING = [float("nan"), np.nan, np.float32("nan"), pd.NA, pd.NaT, np.datetime64("NaT"), decimal.Decimal("NaN")]
SCALARS = ["m1", "", 3, np.int64(3), 2.5, np.float64(2.5), True, np.bool_(False), decimal.Decimal("1.5"),
           dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3), pd.Timestamp("2024-01-02"), dt.time(1),
           uuid.UUID("8efdbab0-36fa-4666-8979-5a9e34917f4b")]  # fmt: skip
NOT_SCALARS = [["m1"], ("m1",), {"m1"}, {"subject": "m1"}, np.array(["m1"]), pd.Series(["m1"]), b"m1", 1j,
               np.datetime64("2024-01-02"), object()]  # fmt: skip


@pytest.mark.parametrize("value", MISSING, ids=repr)
def test_missing_values_of_pandas_and_numpy_are_refused(value):
    assert "missing value" in lookup_problem(value)


@pytest.mark.parametrize("value", SCALARS, ids=repr)
def test_single_values_can_be_looked_up(value):
    assert lookup_problem(value) is None


@pytest.mark.parametrize("value", NOT_SCALARS, ids=lambda v: type(v).__name__)
def test_other_values_are_not_single_values(value):
    assert lookup_problem(value).startswith("not a single value but a ")


def test_infinity_nul_and_a_required_none():
    assert lookup_problem(float("inf")) == "not a finite number"
    assert lookup_problem("a\x00") == "contains a NUL character"
    assert lookup_problem(None) is None
    assert "required" in lookup_problem(None, required=True)


def test_every_problem_names_its_argument_and_several_allows_lists():
    with pytest.raises(InputError) as err:
        check_lookups("arguments", {"subject": ["m1", float("nan")], "project": ["p"], "value": None},
                      several=frozenset({"subject"}))  # fmt: skip
    assert err.value.in_arguments
    assert [p.column for p in err.value.problems] == ["subject", "project"]
    check_lookups("arguments", {"subject": [{"subject": "m1"}, "m2"]}, several=frozenset({"subject"}))
    with pytest.raises(InputError, match=r"column 'subject\.subject': a missing value"):
        check_lookups("arguments", {"subject": [{"subject": pd.NA}]}, several=frozenset({"subject"}))


def test_a_restriction_checks_every_dict_and_none_means_is_null():
    check_restriction("restriction", [{"subject": "m1"}, {"session_datetime": None}])
    with pytest.raises(InputError) as err:
        check_restriction("restriction", [{"subject": "m1"}, {"subject": np.nan}, {"subject": ["a"]}])
    assert [p.column for p in err.value.problems] == ["subject", "subject"]
    assert "problem(s) in the restriction" in str(err.value)
