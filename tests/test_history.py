"""The history of every change, written by database triggers: ingest, status changes with their reason, a plain
``delete()``, plain SQL from another account, nothing for a rolled-back write; an account that may not create
triggers activates with one clear warning (issue 22)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets

import datajoint as dj
import numpy as np
import pytest

from element_session.history import TABLE, history, install
from element_session.history import problems as history_problems
from element_session.ingest import ingest
from element_session.status import set_status
from element_session.upgrade.doctor import diagnose
from tests.helpers import create_account, drop_account

WHEN = dt.datetime(2024, 6, 7, 8, 9, 10)


@pytest.fixture
def session_key(references, row_prefix):
    p = row_prefix
    subject = f"{p}m{secrets.token_hex(3)}"  # the history of this module's other tests stays: a subject of its own
    pipeline = references([subject], [f"{p}ada"])
    row = {
        "subject": subject,
        "session_datetime": WHEN.isoformat(),
        "session_note": "first",
        "experimenter": f"{p}ada",
    }
    ingest("sessions", [row], linking_module=pipeline, progress=False)
    return pipeline, {"subject": subject, "session_datetime": WHEN}


def _account(connection) -> str:
    sql = "SELECT session_user" if connection.adapter.backend == "postgresql" else "SELECT USER()"
    return connection.query(sql).fetchone()[0]


def test_ingest_and_a_status_change_with_its_reason_are_recorded(session_key, connection):
    _, key = session_key
    entries = history(key)
    inserted = {e["table_name"] for e in entries if e["action"] == "insert"}
    assert {"session", "session_note", "session_experimenter", "session_timezone"} <= inserted
    note = next(e for e in entries if e["table_name"] == "session_note")
    assert note["new_values"]["session_note"] == "first" and note["old_values"] is None
    assert note["account"] == _account(connection)
    assert abs(note["changed_at"] - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(minutes=5)
    set_status(key, "qc_failed")
    set_status(key, "acquired", reason="sync cable fixed")
    changes = [e for e in history(key) if e["table_name"] == "session_status"]
    assert [e["action"] for e in changes] == ["insert", "update"]
    assert changes[1]["old_values"]["session_status"] == "qc_failed"
    assert changes[1]["new_values"]["session_status"] == "acquired"
    assert changes[1]["reason"] == "sync cable fixed" and changes[0]["reason"] is None


def test_history_finds_a_session_by_its_start_time_however_it_is_given(session_key):
    """A key from session_table (an aware pandas Timestamp), an aware datetime or ISO text names the same session."""
    import pandas as pd

    from element_session.query import find_sessions, session_table

    pipeline, key = session_key
    expected = history(key)
    assert expected
    (row,) = session_table(find_sessions(pipeline.session, subject=key["subject"])).to_dict("records")
    berlin = dt.timezone(dt.timedelta(hours=2))
    for when in (
        row["session_datetime"],
        WHEN.replace(tzinfo=dt.UTC),
        WHEN.replace(tzinfo=dt.UTC).astimezone(berlin),
        pd.Timestamp(WHEN, tz="UTC"),
        WHEN.isoformat(),
        WHEN.isoformat(sep=" "),
        WHEN.isoformat() + "Z",
    ):
        assert history({**key, "session_datetime": when}) == expected, when
    assert history({**key, "session_datetime": WHEN + dt.timedelta(seconds=1)}) == []


def test_a_plain_delete_is_recorded_and_the_history_outlives_the_session(session_key):
    pipeline, key = session_key
    (pipeline.session.Session & key).delete()
    deleted = {e["table_name"] for e in history(key) if e["action"] == "delete"}
    assert {"session", "session_note", "session_experimenter"} <= deleted
    note = next(e for e in history(key) if e["action"] == "delete" and e["table_name"] == "session_note")
    assert note["old_values"]["session_note"] == "first" and note["new_values"] is None


def test_plain_sql_from_another_account_is_recorded_with_that_account(session_key, connection, server, prefix):
    pipeline, key = session_key
    user, password = f"hist_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    create_account(connection, user, password, [prefix + "session"], "SELECT, INSERT, UPDATE, DELETE")
    try:
        other = dj.Connection(server.host, user, password, port=server.port, use_tls=server.use_tls,
                              backend=server.backend)  # fmt: skip
        try:
            table = pipeline.session.SessionNote.full_table_name
            other.query(
                f"UPDATE {table} SET session_note = %s WHERE subject = %s AND session_datetime = %s",
                args=("second", key["subject"], WHEN),
            )
        finally:
            other.close()
    finally:
        drop_account(connection, user)
    update = [e for e in history(key) if e["action"] == "update" and e["table_name"] == "session_note"]
    assert len(update) == 1
    assert update[0]["account"].split("@")[0] == user
    assert (update[0]["old_values"]["session_note"], update[0]["new_values"]["session_note"]) == ("first", "second")


def test_a_blob_is_recorded_as_the_md5_of_its_stored_bytes_in_column_order(session_key, connection):
    """Both servers give the same entry: a blob's MD5 (PostgreSQL's JSON holds its bytes), the table's column order."""
    pipeline, key = session_key
    attribute = pipeline.session.Session.Attribute
    attribute.insert1({**key, "attribute_name": "gains", "attribute_blob": np.arange(1000.0)})
    q = connection.adapter.quote_identifier
    stored = connection.query(
        f"SELECT {q('attribute_blob')} FROM {attribute.full_table_name} WHERE {q('attribute_name')} = 'gains' "
        f"AND {q('subject')} = %s",
        args=(key["subject"],),
    ).fetchone()[0]
    [entry] = [e for e in history(key) if e["table_name"] == "session__attribute"]
    assert entry["new_values"]["attribute_blob"] == hashlib.md5(bytes(stored), usedforsecurity=False).hexdigest()
    assert list(entry["new_values"]) == list(attribute.heading.names)


def test_text_that_looks_like_a_time_is_shown_as_written(session_key, command):
    """Only a time column's value is a time: a note written as '2024-03-10 14:30:00' stays that text in the
    history (Python, JSON, the table, the web's words), not a UTC time; the start time is shown with its offset."""
    from element_session.history import changes_text, history_records
    from element_session.web.changes import change

    pipeline, key = session_key
    pipeline.session.SessionNote.update1({**key, "session_note": "2024-03-10 14:30:00"})
    (entry,) = [e for e in history(key) if e["action"] == "update" and e["table_name"] == "session_note"]
    assert entry["new_values"] == {"subject": key["subject"], "session_datetime": WHEN,
                                   "session_note": "2024-03-10 14:30:00"}  # fmt: skip
    assert history_records([entry])[0]["new_values"]["session_datetime"] == "2024-06-07T08:09:10+00:00"
    assert history_records([entry])[0]["new_values"]["session_note"] == "2024-03-10 14:30:00"
    assert changes_text(entry) == "session_note: first -> 2024-03-10 14:30:00"
    assert [(v.old, v.new) for v in change(entry, {}, {"subject", "session_datetime"}).values] == [
        ("first", "2024-03-10 14:30:00")
    ]
    shown = command("history", "--subject", key["subject"], "--format", "json")
    assert [e["new_values"]["session_note"] for e in json.loads(shown.out) if e["action"] == "update"] == [
        "2024-03-10 14:30:00"
    ]


def test_a_rolled_back_write_leaves_no_history(session_key):
    pipeline, key = session_key
    before = history(key)
    connection = pipeline.session.Session.connection
    connection.start_transaction()
    try:
        pipeline.session.SessionNote.update1({**key, "session_note": "never"})
        pipeline.session.Session.Attribute.insert1({**key, "attribute_name": "rig", "attribute_value": "A"})
    finally:
        connection.cancel_transaction()
    assert history(key) == before
    assert (pipeline.session.SessionNote & key).fetch1("session_note") == "first"


def test_an_account_without_trigger_privilege_activates_with_one_message(connection, prefix, run_python, server):
    """A schema whose history was never switched on, activated by an account that may not create triggers."""
    schema_name = prefix + "nohist"
    run_python(
        "from workflow import pipeline\n"
        "from element_session import session_with_id\n"
        f"session_with_id.activate({schema_name!r}, linking_module=pipeline)\n"
    )
    q = connection.adapter.quote_identifier
    if connection.adapter.backend == "postgresql":  # as if activated before the history existed
        connection.query(f"DROP FUNCTION {q(schema_name)}.element_session_history() CASCADE")
    else:
        for (name,) in connection.query(
            "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = %s", args=(schema_name,)
        ).fetchall():
            connection.query(f"DROP TRIGGER {q(schema_name)}.{q(name)}")
    connection.query(f"DROP TABLE {q(schema_name)}.{q(TABLE)}")
    assert [f for f in diagnose(prefix + "session") if f.check == "history"] == []  # on, and complete
    (finding,) = [f for f in diagnose(schema_name) if f.check == "history"]
    assert finding.severity == "note" and "history of changes is off" in finding.items[0]
    user, password = f"notrig_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    schemas = [prefix + name for name in ("lab", "subject", "session", "inventory", "nohist")]
    create_account(connection, user, password, schemas, "SELECT, INSERT, UPDATE, DELETE")
    try:
        done = run_python(
            "import json, os, warnings\n"
            f"os.environ.update(DJ_USER={user!r}, DJ_PASS={password!r})\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    from workflow import pipeline\n"
            "    from element_session import session_with_id\n"
            f"    session_with_id.activate({schema_name!r}, linking_module=pipeline)\n"
            "print(json.dumps([[type(w.message).__name__, str(w.message)] for w in caught]))\n"
        )
    finally:
        drop_account(connection, user)
    caught = json.loads(done.stdout.strip().splitlines()[-1])
    off = [message for kind, message in caught if kind == "HistoryOffWarning"]
    assert len(off) == 1, caught
    assert f"history is off for schema `{schema_name}`" in off[0] and "TRIGGER" in off[0]
    assert (
        "denied" in off[0].lower() and "((" not in off[0] and "Insufficient privileges" not in off[0]
    )  # the server's words


def test_the_history_command_says_when_the_history_may_miss_changes(session_key, connection, command):
    """A table without its triggers (created by an account without TRIGGER): said on standard error, not silence."""
    pipeline, key = session_key
    schema, q = pipeline.session.SessionNote.database, connection.adapter.quote_identifier
    if connection.adapter.backend == "postgresql":
        connection.query(f"DROP TRIGGER {q('element_session_history_i')} ON {q(schema)}.{q('session_note')}")
    else:
        connection.query(f"DROP TRIGGER {q(schema)}.{q('es_history_i_session_note')}")
    try:
        shown = command("history", "--subject", key["subject"])
        assert shown.status == 0 and "Traceback" not in shown.err
        assert (
            "element-session: warning: the history may miss changes: tables without history triggers: session_note"
            in shown.err
        )
    finally:
        install(pipeline.session.schema)  # what activation does: the missing trigger made again
    assert "may miss changes" not in command("history", "--subject", key["subject"]).err


def test_history_command_shows_a_deleted_sessions_changes(session_key, command):
    pipeline, key = session_key
    set_status(key, "qc_passed")
    (pipeline.session.Session & key).delete()
    shown = command("history", "--subject", key["subject"], "--format", "json")
    assert shown.status == 0, shown.err
    entries = json.loads(shown.out)
    assert [e["action"] for e in entries if e["table_name"] == "session"] == ["insert", "delete"]
    assert {(e["table"], e["table_name"]) for e in entries} >= {
        ("Session", "session"),
        ("SessionStatus", "session_status"),
    }
    assert "SessionStatus" in command("history", "--subject", key["subject"]).out  # as the table output names it
    assert all(e["changed_at"].endswith("+00:00") for e in entries)  # docs/times.md: UTC marked, as everywhere
    table = command("history", "--subject", key["subject"])
    assert table.status == 0 and "session_status: " not in table.out
    assert "qc_passed" in table.out and "delete" in table.out
    assert command("history", "--subject", key["subject"], "--status", "acquired").out.strip() == "no changes recorded"


def test_the_history_table_speaks_peoples_words_with_times_marked_utc(session_key, command):
    """No Python repr (dicts, datetimes, None), tables by class name, every time with its offset (docs/times.md)."""
    _, key = session_key
    set_status(key, "qc_failed")
    set_status(key, "acquired", reason="fixed the rig")
    shown = command("history", "--subject", key["subject"])
    assert shown.status == 0, shown.err
    header, *lines = shown.out.splitlines()
    assert header.split() == ["changed_at", "account", "action", "session", "table", "changes", "reason"]
    stamp = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?\+00:00"
    assert lines and all(re.match(stamp + " ", line) for line in lines), shown.out
    session = f"{key['subject']}, 2024-06-07T08:09:10+00:00"  # on every row, updates too: which session changed
    assert all(line.split(None, 3)[3].startswith(session + " ") for line in lines), shown.out
    tables = {line.split()[5] for line in lines}
    assert {"Session", "SessionNote", "SessionStatus"} <= tables and all(t[0].isupper() for t in tables), tables
    when = "session_datetime=2024-06-07T08:09:10+00:00"
    [note] = [line for line in lines if line.split()[5] == "SessionNote"]
    values = note.split(None, 6)[6].strip().split(", ")  # in the table's column order on both servers
    assert values == [f"subject={key['subject']}", when, "session_note=first"], note
    assert (
        "session_status: qc_failed -> acquired" in shown.out and "status_reason: (empty) -> fixed the rig" in shown.out
    )
    assert not re.search(r"None|datetime\.|\{|'", shown.out), shown.out


def test_a_sessions_history_is_read_along_an_index_of_its_subject(session_key, connection):
    """One session's history is chosen by an index of the subject, not by a scan of every change (issue 23)."""
    pipeline, key = session_key
    schema = pipeline.session.Session.database
    table = connection.adapter.quote_identifier(schema) + "." + connection.adapter.quote_identifier(TABLE)
    if connection.adapter.backend == "postgresql":
        where = "(COALESCE(new_values, old_values) ->> 'subject') = %s"
        connection.query("SET enable_seqscan = off")  # a small table: ask whether the index can be used at all
    else:
        where = "first_key_value = LEFT(%s, 255)"
    try:
        plan = " ".join(str(row) for row in connection.query(f"EXPLAIN SELECT * FROM {table} WHERE {where}",
                                                             args=(key["subject"],)).fetchall())  # fmt: skip
    finally:
        if connection.adapter.backend == "postgresql":
            connection.query("RESET enable_seqscan")
    assert "es_history_first_key" in plan
    assert {e["table_name"] for e in history(key)} >= {"session", "session_note"}


def test_a_column_added_or_dropped_later_is_followed_after_the_next_activation(session_key, connection):
    """MySQL's triggers name the columns they record: a column added later was missing from the history, and
    writes failed after one was dropped. The next activation remakes them; until then the history command and
    doctor say so. (PostgreSQL records whole rows: it follows any column by itself.)"""
    pipeline, key = session_key
    schema = pipeline.session.schema
    table = pipeline.session.SessionNote.full_table_name
    where = {"subject": key["subject"]}
    connection.query(f"ALTER TABLE {table} ADD COLUMN note_extra VARCHAR(20) NULL")
    try:
        stale = history_problems(connection, schema.database)
        if connection.adapter.backend != "postgresql":
            assert stale == [
                "tables whose columns changed after their history triggers were made: session_note (activate the "
                "pipeline again, as an account holding TRIGGER, to remake them)"
            ]
        install(schema)  # what the next activation does
        assert history_problems(connection, schema.database) == []
        connection.query(f"UPDATE {table} SET note_extra = %s WHERE subject = %s", args=("later", where["subject"]))
        (change,) = [e for e in history(key) if e["table_name"] == "session_note" and e["action"] == "update"]
        assert change["old_values"]["note_extra"] is None and change["new_values"]["note_extra"] == "later"
    finally:
        connection.query(f"ALTER TABLE {table} DROP COLUMN note_extra")
        install(schema)
    assert history_problems(connection, schema.database) == []
    pipeline.session.SessionNote.update1({**key, "session_note": "second"})  # failed: no column note_extra in NEW
    last = [e for e in history(key) if e["table_name"] == "session_note"][-1]
    assert last["new_values"] == {**key, "session_datetime": last["new_values"]["session_datetime"],
                                  "session_note": "second"}  # fmt: skip
