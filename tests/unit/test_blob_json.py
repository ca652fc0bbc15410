"""Lossless JSON of blob values (blob_json), without a database."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from element_session import blob_json
from element_session.errors import FormatError
from tests.blob_examples import EXAMPLES, same


@pytest.mark.parametrize("value", EXAMPLES, ids=lambda v: type(v).__name__)
def test_every_example_round_trips_through_strict_json(value):
    text = blob_json.dumps(value)
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON token {c}"))
    assert same(blob_json.loads(text), value), text


def test_the_documented_forms():
    assert blob_json.encode({"gain": [1.5, 2], "ok": None}) == {"gain": [1.5, 2], "ok": None}  # plain JSON stays
    assert blob_json.encode(math.nan) == {"__type__": "float", "value": "NaN"}
    assert blob_json.encode({1: "a"}) == {"__type__": "dict", "items": [[1, "a"]]}
    assert blob_json.encode(np.array([[1.0, np.inf]])) == {
        "__type__": "ndarray", "dtype": "<f8", "shape": [1, 2], "data": [[1.0, "Infinity"]]
    }  # fmt: skip
    assert blob_json.encode(b"\x00") == {"__type__": "bytes", "base64": "AA=="}
    assert blob_json.encode(np.int64(3)) == {"__type__": "scalar", "dtype": "<i8", "data": 3}


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (object(), "value is of type object"),
        ({"a": [1, object()]}, "value['a'][1] is of type object"),
        (np.array([1], dtype=np.longdouble), "dtype '<f16'"),
        (np.ma.masked_array([1]), "numpy.ma.MaskedArray"),
        (np.zeros(1, dtype="V3"), "dtype '|V3'"),
        (np.array([1], dtype="M8[5s]"), "dtype '<M8[5s]'"),
    ],
)
def test_what_cannot_be_written_losslessly_is_a_typed_error_naming_where(value, where):
    with pytest.raises(FormatError, match=r"cannot be written losslessly") as caught:
        blob_json.dumps(value)
    assert where in str(caught.value)


def test_text_not_in_the_form_is_a_typed_error():
    for text in ("{", '{"__type__": "nope"}', '{"__type__": "ndarray", "dtype": "<f8", "shape": [2], "data": 1}'):
        with pytest.raises(FormatError):
            blob_json.loads(text)


# -- on the database: what DataJoint stores and returns, through every output ----------------------------------


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("{", "not JSON: expecting property name enclosed in double quotes at line 1, column 2"),
        ('{"a": 1}\n{"b": 2}', "not JSON: more text after the JSON value at line 2, column 1"),
    ],
)
def test_text_that_is_not_json_is_said_with_where(text, said):
    """In words and with its line and column, as the web API and ingest say it (errors.not_json)."""
    with pytest.raises(FormatError) as caught:
        blob_json.loads(text)
    assert str(caught.value) == said
