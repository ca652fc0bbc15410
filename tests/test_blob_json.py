"""Stored object values (attribute blobs): one lossless JSON form, used by NWB export and ``sessions --format json``."""

from __future__ import annotations

import datetime as dt
import json

import datajoint as dj
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from element_session import blob_json, cli, formats, query
from element_session.attribute_blobs import Unreadable, read_attribute_blobs
from element_session.errors import FormatError
from element_session.export.nwb import ATTRIBUTES_TABLE, session_to_nwb
from tests.blob_examples import EXAMPLES, SUBARRAY, same
from tests.helpers import add_references, remove_references

SUBJECTS, PEOPLE, PROJECTS = ["bj-m1"], ["bj-ada"], ["bj-maps"]
KEY = {"subject": "bj-m1", "session_datetime": dt.datetime(2024, 5, 6, 7, 8, 9)}


@pytest.fixture(scope="module")
def session(pipeline):
    add_references(pipeline, SUBJECTS, PEOPLE, PROJECTS)
    pipeline.session.Session.insert1(KEY)
    yield pipeline
    (pipeline.session.Session & KEY).delete()
    remove_references(pipeline, SUBJECTS, PEOPLE, PROJECTS)


UNREADABLE = object()  # outputs' answer for a value DataJoint stores but cannot read back


def outputs(pipeline, name: str) -> tuple[object, object, object]:
    """The stored value of attribute ``name``, and its values as read back from NWB export and from JSON output.

    None is stored as SQL NULL, which both outputs show as "no object value": NWB as '', JSON by leaving it out.
    """
    module = pipeline.session
    try:
        (stored,) = (module.Session.Attribute & KEY & {"attribute_name": name}).to_dicts()
    except dj.errors.DataJointError:  # DataJoint 2.3.5 stores values it cannot read (e.g. a record field named NUL)
        with pytest.raises(FormatError, match=f"attribute {name!r}: its object value cannot be exported"):
            session_to_nwb(KEY, session_module=module)
        return UNREADABLE, None, None
    nwb = session_to_nwb(KEY, session_module=module).acquisition[ATTRIBUTES_TABLE].to_dataframe()
    nwb_text = nwb.set_index("attribute_name").loc[name, "attribute_blob"]
    found = query.find_sessions(module, subject="bj-m1")
    frame = query.session_table(found, module)
    records = formats.session_records(frame, module.Session, read_attribute_blobs(found, module))
    shown = json.loads(json.dumps(records, allow_nan=False))[0]["attribute_blobs"]
    if stored["attribute_blob"] is None:
        assert nwb_text == "" and name not in shown
        return None, None, None
    return stored["attribute_blob"], blob_json.loads(nwb_text), blob_json.decode(shown[name])


HASHABLE = st.one_of(
    st.integers(-(2**70), 2**70), st.text(max_size=5), st.floats(allow_nan=False), st.booleans(),
    st.integers(-(2**31), 2**31 - 1).map(np.int64), st.tuples(st.integers(), st.text(max_size=3)),
)  # fmt: skip
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**200), 2**200), st.floats(), st.complex_numbers(),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=8), st.binary(max_size=8),
    st.datetimes(), st.dates(), st.times(), st.decimals(allow_nan=False), st.uuids(),
)  # fmt: skip
DTYPES = st.one_of(
    hnp.boolean_dtypes(), hnp.integer_dtypes(endianness="="), hnp.unsigned_integer_dtypes(endianness="="),
    hnp.floating_dtypes(sizes=(32, 64), endianness="="), hnp.complex_number_dtypes(endianness="="),
    hnp.datetime64_dtypes(endianness="="), hnp.unicode_string_dtypes(endianness="=", max_len=4),
)  # fmt: skip
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)
ARRAYS = st.one_of(
    hnp.arrays(DTYPES, SHAPES),
    hnp.arrays(hnp.array_dtypes(hnp.scalar_dtypes().filter(lambda d: d.kind in "biuf"), max_size=3), SHAPES),
    hnp.arrays(np.dtype(object), SHAPES, elements=SCALARS),
)
VALUES = st.recursive(
    st.one_of(SCALARS, ARRAYS),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
        st.dictionaries(HASHABLE, inner, max_size=3),
        st.sets(HASHABLE, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUES)
@example(value=np.array((False,), dtype=[("\x00", "?")]))  # stored by DataJoint 2.3.5, not readable (found in CI)
def test_any_stored_blob_is_exported_and_shown_losslessly(session, value):
    module = session.session
    row = {**KEY, "attribute_name": "blob", "attribute_blob": value}
    try:
        module.Session.Attribute.insert1(row)
    except Exception as err:
        if "DataJoint" not in type(err).__name__ and not isinstance(err, ValueError | TypeError):
            raise
        reject()
    try:
        stored, from_nwb, from_json = outputs(session, "blob")
    finally:
        (module.Session.Attribute & KEY).delete_quick()
    if stored is UNREADABLE:
        return  # refused with a FormatError naming the attribute (checked in outputs)
    assert same(from_nwb, stored), (value, stored, from_nwb)
    assert same(from_json, stored), (value, stored, from_json)


def test_examples_stored_by_datajoint_are_exported_and_shown_losslessly(session):
    module = session.session
    attribute = module.Session.Attribute
    stored_examples = 0
    for index, value in enumerate(EXAMPLES):
        try:
            attribute.insert1({**KEY, "attribute_name": f"ex{index}", "attribute_blob": value})
        except Exception:  # noqa: S112 (DataJoint refuses e.g. 'S' and big-endian arrays)
            continue
        stored_examples += 1
    assert stored_examples >= 30
    # DataJoint 2.3.5 stores a structured array with a sub-array field but cannot read it back: refused, typed
    (blobs,) = read_attribute_blobs(module.Session & KEY, module).values()
    unreadable = [name for name, value in blobs.items() if isinstance(value, Unreadable)]
    assert unreadable == [f"ex{next(i for i, v in enumerate(EXAMPLES) if v is SUBARRAY)}"]
    with pytest.raises(FormatError, match=rf"attribute '{unreadable[0]}': its object value cannot be exported"):
        session_to_nwb(KEY, session_module=module)
    (attribute & {"attribute_name": unreadable[0]}).delete_quick()
    for index in range(len(EXAMPLES)):
        if attribute & KEY & {"attribute_name": f"ex{index}"}:
            stored, from_nwb, from_json = outputs(session, f"ex{index}")
            assert same(from_nwb, stored) and same(from_json, stored), EXAMPLES[index]
    (attribute & KEY).delete_quick()


def test_a_blob_datajoint_cannot_read_is_named_and_hides_nothing(session, capsys, tmp_path):
    module = session.session
    attribute = module.Session.Attribute
    attribute.insert(
        [{**KEY, "attribute_name": "good", "attribute_value": "", "attribute_blob": {"n": 1}},
         {**KEY, "attribute_name": "sparse", "attribute_value": "from MATLAB", "attribute_blob": [0]}]
    )  # fmt: skip
    # a MATLAB sparse matrix, as the mYm format stores it: datajoint-python cannot read it
    restriction = {"attribute_name": "sparse", "subject": "bj-m1"}
    update = f"UPDATE {attribute.full_table_name} SET attribute_blob = %s WHERE attribute_name = %s AND subject = %s"
    attribute.connection.query(update, args=(b"mYm\0P" + bytes(16), "sparse", "bj-m1"))
    assert attribute & restriction
    with pytest.raises(
        FormatError, match=r"session subject=bj-m1, session_datetime=2024-05-06T07:08:09\+00:00, attribute 'sparse'"
    ):
        session_to_nwb(KEY, session_module=module)
    capsys.readouterr()
    output = tmp_path / "s.nwb"
    status = cli.main(
        ["export-nwb", "--subject", "bj-m1", "--datetime", "2024-05-06T07:08:09", "--output", str(output)]
    )
    _, err = capsys.readouterr()
    assert status == 1 and "attribute 'sparse'" in err and "Traceback" not in err and not output.exists()
    status = cli.main(["sessions", "--subject", "bj-m1", "--format", "json"])
    out, err = capsys.readouterr()
    (record,) = json.loads(out)
    assert status == 1 and "Traceback" not in err
    assert record["attribute_blobs"] == {"good": {"n": 1}}
    assert record["attributes"] == {"good": "", "sparse": "from MATLAB"}  # every text value is there
    assert (
        record["problems"]
        and "attribute 'sparse'" in record["problems"][0]
        and "sparse arrays" in record["problems"][0]
    )
    assert "session subject=bj-m1" in err and "'sparse'" in err
    (attribute & KEY).delete_quick()
