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
