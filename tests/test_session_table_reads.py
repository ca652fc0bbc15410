"""How ``session_table`` reads the database: any restriction gives the rows of the whole table,
any character arrives intact, and the connection is left as it was (settings, transaction).

The rows are inserted with DataJoint directly, past ingest's checks, so that names hold what
ingest would refuse (separators, quotes, line breaks, surrounding spaces, text that reads as NULL
or NaN): the table must give back exactly what the database holds.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from element_session import session_frame
from element_session.query import find_sessions, session_table
from element_session.session_frame import AGGREGATED_KEYS, session_rows
from tests.helpers import add_references, remove_references

NAMES = [
    "pq-a,b;c",
    'pq-"q"',
    "pq-line\nbreak",
    "pq-cr\r\nlf",
    " pq-spaces ",
    "pq-\ufeffbom",
    "pq-NULL",
    "pq-nan",
    "pq-tab\tx",
    "pq-back\\slash",
    "pq-ü✓\u2028😀",
]
SUBJECTS = ["pq-m1", 'pq-"m,2"\n', " pq-m3", "pq-50%_m4"]  # '%': DataJoint writes it '%%' for the driver
START = dt.datetime(2024, 5, 1, 8, 30, 15)


def _key(i: int) -> dict:
    return {"subject": SUBJECTS[i % len(SUBJECTS)], "session_datetime": START + dt.timedelta(days=i)}


@pytest.fixture(scope="module")
def stored(pipeline):
    """Six sessions: the first five with names of every kind, the last with nothing but its key."""
    module = pipeline.session
    add_references(pipeline, SUBJECTS, NAMES, NAMES)
    keys = [_key(i) for i in range(6)]
    module.Session.insert([{**k, "session_id": i or None} for i, k in enumerate(keys)])
    module.Session.Attribute.insert(
        [{**k, "attribute_name": name[:32], "attribute_value": value} for k in keys[:5] for name, value in
         zip(NAMES, [*NAMES[3:], "", "NULL", "nan"], strict=False)]
    )  # fmt: skip
    module.SessionExperimenter.insert([{**k, "user": n} for i, k in enumerate(keys[:5]) for n in NAMES[i::2]])
    module.ProjectSession.insert([{**k, "project": n} for i, k in enumerate(keys[:4]) for n in NAMES[i + 1 :: 3]])
    module.SessionNote.insert([{**k, "session_note": note} for k, note in zip(keys, ["", *NAMES[:3]], strict=False)])
    module.SessionDirectory.insert([{**k, "session_dir": f"{n}/dir"} for k, n in zip(keys[:3], NAMES, strict=False)])
    module.SessionTimezone.insert([{**k, "session_timezone": "Europe/Berlin"} for k in keys[:5]])
    yield module
    remove_references(pipeline, SUBJECTS, NAMES, NAMES)


def _ours(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["subject"].isin(SUBJECTS)].reset_index(drop=True)


def test_every_value_is_the_stored_one(stored):
    frame = _ours(session_table(stored))
    assert len(frame) == 6
    for _, row in frame.iterrows():
        key = {"subject": row["subject"], "session_datetime": row["session_datetime"].tz_localize(None).to_pydatetime()}
        stored_attributes = {
            r["attribute_name"]: r["attribute_value"] for r in (stored.Session.Attribute & key).to_dicts()
        }
        got = {c.removeprefix("attr."): row[c] for c in frame.columns if c.startswith("attr.") and not pd.isna(row[c])}
        assert got == stored_attributes
        assert row["experimenters"] == sorted(r["user"] for r in (stored.SessionExperimenter & key).to_dicts())
        assert row["projects"] == sorted(r["project"] for r in (stored.ProjectSession & key).to_dicts())
        for table, column in ((stored.SessionNote, "session_note"), (stored.SessionDirectory, "session_dir")):
            values = [r[column] for r in (table & key).to_dicts()]
            assert values == ([] if pd.isna(row[column]) else [row[column]])
    bare = _row(frame, 5)  # a session with nothing but its key
    assert bare["experimenters"] == [] and bare["projects"] == [] and pd.isna(bare["session_timezone"])
    assert pd.isna(bare["session_dir"]) and bare["session_datetime_local"] == "2024-05-06T08:30:15+00:00"
    assert _row(frame, 0)["session_note"] == ""  # the empty text, not a missing note
    assert _row(frame, 1)["session_note"] == NAMES[0] and _row(frame, 0)["experimenters"] == sorted(NAMES[::2])
    assert frame["attr.pq-back\\slash"].dropna().tolist() == ["NULL"] * 5 and _row(frame, 0)["attr.pq-tab\tx"] == ""


def _row(frame: pd.DataFrame, i: int) -> pd.Series:
    (row,) = frame[frame["session_datetime"] == pd.Timestamp(_key(i)["session_datetime"], tz="UTC")].to_dict("records")
    return pd.Series(row)


def test_any_restriction_gives_the_rows_of_the_whole_table(stored):
    whole = _ours(session_table(stored)).set_index(["subject", "session_datetime"])
    restrictions = [
        find_sessions(stored, subject=SUBJECTS[1]),
        find_sessions(stored, subject=SUBJECTS[3]),  # the child rows' restriction holds a '%'
        find_sessions(stored, experimenter=NAMES[2]),
        find_sessions(stored, project=NAMES[2]) & "session_id IS NOT NULL",
        stored.Session & [_key(0), _key(5)],
        stored.Session * stored.SessionNote & {"session_note": ""},
    ]
    for restriction in restrictions:
        part = session_table(restriction, stored).set_index(["subject", "session_datetime"])
        assert len(part) > 0, restriction.make_sql()
        expected = whole.loc[part.index]
        absent = [c for c in whole.columns if c not in part.columns]
        assert all(c.startswith("attr.") for c in absent) and expected[absent].isna().all().all()
        pd.testing.assert_frame_equal(part, expected[part.columns])


@pytest.mark.parametrize("aggregated_keys", [AGGREGATED_KEYS, 0], ids=["a page", "more keys than a page"])
def test_rows_read_by_keys_are_the_rows_of_the_table(stored, aggregated_keys, monkeypatch):
    """session_rows by keys (one IN condition, any order, a key of no session left out) gives the
    table's rows: the same values session_table types, whichever way PostgreSQL reads them."""
    monkeypatch.setattr(session_frame, "AGGREGATED_KEYS", aggregated_keys)
    whole = _rows_of_frame(_ours(session_table(stored)))
    chosen = [5, 0, 3, 1]
    keys = [tuple(_key(i).values()) for i in chosen] + [(SUBJECTS[0], dt.datetime(1999, 1, 1))]
    rows = session_rows(None, stored, keys=keys)
    assert len(rows) == len(chosen)
    times = {_key(i)["session_datetime"].replace(tzinfo=dt.UTC) for i in chosen}
    expected = [row for row in whole if row["session_datetime"] in times]  # in key order, as the table's
    names = {c for row in rows.records() for c in row}  # the attributes these sessions have
    assert [{c: v for c, v in row.items() if c in names} for row in expected] == rows.records()
    assert len(session_rows(None, stored, keys=[])) == 0


def _rows_of_frame(frame: pd.DataFrame) -> list[dict]:
    """A typed table's rows with plain values (missing: None), as SessionRows.records gives them."""
    return [
        {c: None if not isinstance(v, list) and pd.isna(v) else v.to_pydatetime() if c == "session_datetime" else v
         for c, v in row.items()}
        for row in frame.to_dict("records")
    ]  # fmt: skip


def test_a_small_group_concat_max_len_of_the_connection_cuts_no_name(stored, connection):
    if connection.adapter.backend == "postgresql":
        pytest.skip("MySQL/MariaDB: the JSON aggregates")
    whole = _ours(session_table(stored))
    connection.query("SET SESSION group_concat_max_len = 4")
    try:
        pd.testing.assert_frame_equal(_ours(session_table(stored)), whole)
        assert connection.query("SELECT @@SESSION.group_concat_max_len").fetchone()[0] == 4
    finally:
        connection.query("SET SESSION group_concat_max_len = DEFAULT")


SETTINGS = {"postgresql": ["jit", "enable_hashjoin", "enable_nestloop", "transaction_isolation"], "mysql": []}


def _settings(connection) -> dict:
    if connection.adapter.backend == "postgresql":
        return {name: connection.query(f"SHOW {name}").fetchone()[0] for name in SETTINGS["postgresql"]}
    return {"group_concat_max_len": connection.query("SELECT @@SESSION.group_concat_max_len").fetchone()[0]}


def test_the_connection_settings_are_as_they_were(stored, connection):
    postgres = connection.adapter.backend == "postgresql"
    own = ["SET jit = on", "SET enable_nestloop = off"] if postgres else ["SET SESSION group_concat_max_len = 12345"]
    for statement in own:  # a caller's own settings stay
        connection.query(statement)
    try:
        before = _settings(connection)
        session_table(stored)
        session_table(find_sessions(stored, subject=SUBJECTS[0]), stored)
        assert _settings(connection) == before
        assert "12345" in str(before) or postgres
    finally:
        for statement in (
            ["RESET jit", "RESET enable_nestloop"] if postgres else ["SET SESSION group_concat_max_len = DEFAULT"]
        ):
            connection.query(statement)


class _RollBack(Exception):
    """Raised to leave a transaction by rolling it back."""


def test_inside_a_transaction_it_sees_the_transaction_and_leaves_it_open(stored, connection):
    key = {"subject": SUBJECTS[0], "session_datetime": dt.datetime(2030, 1, 1)}
    before = _settings(connection)
    with pytest.raises(_RollBack), connection.transaction:
        stored.Session.insert1({**key, "session_id": 99})
        stored.SessionNote.insert1({**key, "session_note": "pq-uncommitted"})
        frame = _ours(session_table(stored))
        assert (frame["session_note"] == "pq-uncommitted").sum() == 1
        assert _settings(connection) == before
        stored.SessionExperimenter.insert1({**key, "user": NAMES[0]})  # the transaction is still usable
        assert connection.in_transaction
        raise _RollBack
    assert not stored.Session & key
    assert _settings(connection) == before
