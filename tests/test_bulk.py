"""The bulk write path: COPY on PostgreSQL, packet-sized multi-row INSERTs on MySQL/MariaDB.

Values that each format must escape arrive intact, NULL stays NULL, a server refusal is a typed
error and leaves nothing written, and a server that refuses ``LOAD DATA LOCAL`` still ingests.
"""

from __future__ import annotations

import datetime as dt

import pytest

from element_session import bulk
from element_session.errors import DatabaseRefusedError
from element_session.ingest import ingest
from tests.helpers import add_references, remove_references

SUBJECTS = ["bk-m1"]
NOTES = [
    "tab\there",
    "new\nline and \r return",
    "back\\slash and \\N and \\t as text",
    "\\N",
    "NULL",
    "quote ' and \" and `",
    "50% and %s and %(x)s",
    "emoji 🐭 and ü",
    "",
]


@pytest.fixture
def subject(pipeline):
    add_references(pipeline, SUBJECTS, [], [])
    yield pipeline
    (pipeline.session.Session & {"subject": "bk-m1"}).delete()
    remove_references(pipeline, SUBJECTS, [], [])


def starts(count: int) -> list[dt.datetime]:
    return [dt.datetime(2024, 5, 1, 8) + dt.timedelta(hours=i) for i in range(count)]


def test_values_that_need_escaping_and_nulls_arrive_intact(subject):
    session = subject.session
    keys = [{"subject": "bk-m1", "session_datetime": t} for t in starts(len(NOTES))]
    rows = [k | {"session_id": None if i % 2 else i} for i, k in enumerate(keys)]
    with session.Session.connection.transaction:
        assert sum(bulk.insert(session.Session, rows)) == len(rows)
        notes = [k | {"session_note": note} for k, note in zip(keys, NOTES, strict=True)]
        assert sum(bulk.insert(session.SessionNote, notes)) == len(NOTES)
    stored = (session.Session & {"subject": "bk-m1"}).to_dicts(order_by="session_datetime")
    assert [r["session_id"] for r in stored] == [r["session_id"] for r in rows]
    back = (session.SessionNote & {"subject": "bk-m1"}).to_dicts(order_by="session_datetime")
    assert [r["session_note"] for r in back] == NOTES
    assert [r["session_datetime"] for r in back] == starts(len(NOTES))


def test_with_no_backslash_escapes_values_still_arrive_intact(subject, server):
    if server.backend != "mysql":
        pytest.skip("sql_mode is MySQL's and MariaDB's")
    session = subject.session
    connection = session.Session.connection
    (mode,) = connection.query("SELECT @@SESSION.sql_mode").fetchone()
    keys = [{"subject": "bk-m1", "session_datetime": t} for t in starts(len(NOTES))]
    connection.query("SET SESSION sql_mode = %s", args=(mode + ",NO_BACKSLASH_ESCAPES",))
    try:
        with connection.transaction:
            list(bulk.insert(session.Session, [k | {"session_id": None} for k in keys]))
            list(bulk.insert(session.SessionNote, [k | {"session_note": n} for k, n in zip(keys, NOTES, strict=True)]))
    finally:
        connection.query("SET SESSION sql_mode = %s", args=(mode,))
    back = (session.SessionNote & {"subject": "bk-m1"}).to_dicts(order_by="session_datetime")
    assert [r["session_note"] for r in back] == NOTES


def test_a_duplicate_is_a_typed_refusal_naming_the_row_and_the_transaction_leaves_nothing(subject):
    session = subject.session
    rows = [{"subject": "bk-m1", "session_datetime": t, "session_id": None} for t in starts(3)]
    with pytest.raises(DatabaseRefusedError, match="key") as refused, session.Session.connection.transaction:
        list(bulk.insert(session.Session, rows[:2]))  # written in the transaction ...
        list(bulk.insert(session.Session, rows[1:]))  # ... then refused by the server
    assert refused.value.transient  # a duplicate key: ingest checks again and retries
    assert len(session.Session & {"subject": "bk-m1"}) == 0


def test_statements_fit_the_packet():
    class Attribute:
        type = "varchar(2000)"

    class Heading(dict):
        pass

    class Table:
        heading = Heading(a=Attribute(), b=Attribute())

    per_row = 2 * (2 * 4 * 2000 + 8)
    rows = bulk._rows_per_statement(Table, ["a", "b"], 16 * 2**20)
    assert rows == (16 * 2**20 - bulk.PACKET_HEADROOM) // per_row
    assert bulk._rows_per_statement(Table, ["a", "b"], 2**30) == bulk.MAX_ROWS
    assert bulk._rows_per_statement(Table, ["a", "b"], 1024) == 1


def test_a_server_refusing_load_data_local_still_ingests(subject, server):
    if server.backend != "mysql":
        pytest.skip("LOAD DATA LOCAL is MySQL's and MariaDB's")
    connection = subject.session.Session.connection
    (before,) = connection.query("SELECT @@GLOBAL.local_infile").fetchone()
    connection.query("SET GLOBAL local_infile = 0")
    try:
        rows = [
            {"subject": "bk-m1", "session_datetime": f"{t:%Y-%m-%dT%H:%M:%S}Z", "session_note": note}
            for t, note in zip(starts(len(NOTES)), NOTES, strict=True)
            if note
        ]
        report = ingest("sessions", rows, pipeline=subject)
    finally:
        connection.query(f"SET GLOBAL local_infile = {int(before)}")
    assert report.new == len(rows)
    notes = (subject.session.SessionNote & {"subject": "bk-m1"}).to_dicts(order_by="session_datetime")
    assert [r["session_note"] for r in notes] == [r["session_note"] for r in rows]


def test_tuple_rows_sharing_literals_across_tables_arrive_intact(subject):
    """Rows as tuples of ``columns``; one Literals for two tables formats each shared key value once."""
    session = subject.session
    literals = bulk.Literals(session.Session.connection)
    times, key = starts(len(NOTES)), ("subject", "session_datetime")
    with session.Session.connection.transaction:
        rows = [("bk-m1", t, i) for i, t in enumerate(times)]
        assert sum(bulk.insert(session.Session, rows, columns=(*key, "session_id"), literals=literals)) == len(NOTES)
        notes = [("bk-m1", t, note) for t, note in zip(times, NOTES, strict=True)]
        assert sum(bulk.insert(session.SessionNote, notes, columns=(*key, "session_note"), literals=literals)) == 9
    assert "bk-m1" in literals and times[0] in literals and 3 in literals  # text, naive datetimes, integers kept
    back = (session.SessionNote & {"subject": "bk-m1"}).to_dicts(order_by="session_datetime")
    assert [(r["session_datetime"], r["session_note"]) for r in back] == list(zip(times, NOTES, strict=True))
    ids = (session.Session & {"subject": "bk-m1"}).to_dicts(order_by="session_datetime")
    assert [r["session_id"] for r in ids] == list(range(len(NOTES)))


def test_literals_keep_only_values_whose_equals_share_their_text(subject):
    """An aware datetime equals other zones' instants, and a float is not an int: those are formatted at each use."""
    literals = bulk.Literals(subject.session.Session.connection)
    aware = dt.datetime(2024, 5, 1, 8, tzinfo=dt.UTC)
    for value in (aware, 1.5, None):
        assert literals[value] == literals[value]
    assert aware not in literals and 1.5 not in literals and None not in literals
    assert literals["1"] != literals[1] or subject.session.Session.connection.adapter.backend == "postgresql"


def test_a_refused_tuple_row_is_named_by_its_origin(subject):
    from element_session.readers import Record

    session = subject.session
    rows = [("bk-m1", t, None) for t in starts(3)]
    where = [Record("sessions.csv", line, {}) for line in (2, 3, 4)]
    columns = ("subject", "session_datetime", "session_id")
    with pytest.raises(DatabaseRefusedError) as refused, session.Session.connection.transaction:
        list(bulk.insert(session.Session, rows[:2], where[:2], columns=columns))
        list(bulk.insert(session.Session, rows[1:], where[1:], columns=columns))  # rows[1] again: sessions.csv row 3
    (problem,) = refused.value.problems
    assert (problem.source, problem.row) == ("sessions.csv", 3)
    assert len(session.Session & {"subject": "bk-m1"}) == 0
