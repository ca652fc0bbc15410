"""A session's status: every transition allowed and refused, concurrent changes, edits of a checked session
refused, the status column of ingest, and the selection by status (issue 22)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import re
import subprocess
import sys
import time

import pytest

from element_session import status as lifecycle
from element_session.errors import InputError, InvalidStatusTransitionError, SessionLockedError
from element_session.ingest import ingest
from element_session.query import find_sessions, session_table, status_table
from tests.helpers import snapshot

T0 = dt.datetime(2024, 5, 6, 7, 8, 9)


@pytest.fixture
def lab(references, row_prefix):
    p = row_prefix
    pipeline = references([f"{p}m1", f"{p}m2"], [f"{p}ada"], [f"{p}maps"])
    rows = [
        {"subject": f"{p}m1", "session_datetime": (T0 + dt.timedelta(hours=i)).isoformat(), "status": state,
         "session_note": f"note {i}", "experimenter": f"{p}ada"}
        for i, state in enumerate(["planned", "acquiring", None])
    ]  # fmt: skip
    for row in rows:
        if row["status"] is None:
            del row["status"]
    ingest("sessions", rows, linking_module=pipeline, progress=False)
    keys = [{"subject": f"{p}m1", "session_datetime": T0 + dt.timedelta(hours=i)} for i in range(3)]
    return pipeline, keys


def test_ingest_stores_the_status_of_new_sessions_and_none_counts_as_acquired(lab):
    pipeline, (planned, acquiring, plain) = lab
    assert [lifecycle.status_of(k) for k in (planned, acquiring, plain)] == ["planned", "acquiring", "acquired"]
    assert len(pipeline.session.SessionStatus & plain) == 0
    row = (pipeline.session.SessionStatus & planned).fetch1()
    assert row["status_set_by"] and abs(row["status_set_time"] - dt.datetime.utcnow()) < dt.timedelta(minutes=5)


def test_every_transition_allowed_and_every_other_refused_leaving_the_database_as_it_was(lab):
    pipeline, (key, aborting, _) = lab
    walk = [("acquiring", None), ("acquired", None), ("qc_failed", None), ("acquired", "fixed the sync"),
            ("qc_passed", None), ("acquired", "reopened for a re-sort"), ("qc_passed", None)]  # fmt: skip
    for asked, reason in walk:
        current = lifecycle.status_of(key)
        for refused in set(lifecycle.STATES) - set(lifecycle.TRANSITIONS[current]):
            before = snapshot(pipeline)
            with pytest.raises(InvalidStatusTransitionError) as caught:
                lifecycle.set_status(key, refused, reason="x")
            err = caught.value
            assert (err.current, err.asked, err.allowed) == (current, refused, lifecycle.TRANSITIONS[current])
            assert f"is {current!r}" in str(err) and repr(refused) in str(err) and key["subject"] in str(err)
            assert snapshot(pipeline) == before
        change = lifecycle.set_status(key, asked, reason=reason)
        assert (change.before, change.after) == (current, asked)
        stored = (pipeline.session.SessionStatus & key).fetch1()
        assert stored["session_status"] == asked and stored["status_reason"] == (reason or "")
    lifecycle.set_status(aborting, "aborted")
    with pytest.raises(InvalidStatusTransitionError, match="none: it is final"):
        lifecycle.set_status(aborting, "acquired")


@pytest.mark.parametrize("state", ["qc_failed", "qc_passed"])
def test_moving_a_checked_session_back_needs_a_reason(lab, state):
    _, (_, _, key) = lab
    lifecycle.set_status(key, state)
    for reason in (None, "  "):
        with pytest.raises(InputError, match="required to move") as caught:
            lifecycle.set_status(key, "acquired", reason=reason)
        assert caught.value.in_arguments
    assert lifecycle.status_of(key) == state


class _Records(logging.Handler):
    """The messages of the records it handles."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_set_status_counts_the_downstream_rows_without_datajoints_tuples_log_lines(lab):
    import datajoint as dj

    pipeline, (_, _, key) = lab
    logger, records = logging.getLogger("datajoint"), _Records()
    level, filters = logger.level, list(logger.filters)
    logger.setLevel(logging.INFO)  # DataJoint's default, whatever another test set
    logger.addHandler(records)
    try:
        change = lifecycle.set_status(key, "qc_failed")  # moving into qc_failed lists the downstream rows
        assert change.downstream is not None
        assert not [m for m in records.messages if "tuples)" in m], records.messages
        assert logger.level == logging.INFO and logger.filters == filters  # DataJoint's logging as it was
        dj.Diagram.cascade(pipeline.session.Session & key).counts()  # DataJoint's own count still logs
        assert any(m.endswith(" tuples)") for m in records.messages), records.messages
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)


def test_an_unknown_status_is_refused_in_arguments_and_in_ingest(lab):
    pipeline, (key, _, _) = lab
    with pytest.raises(InputError, match="not a session status") as caught:
        lifecycle.set_status(key, "done")
    assert caught.value.in_arguments
    row = {"subject": key["subject"], "session_datetime": "2030-01-01T00:00:00", "status": "done"}
    with pytest.raises(InputError, match="not a session status"):
        ingest("sessions", [row], linking_module=pipeline, progress=False)


def test_a_misspelt_key_attribute_is_refused_not_left_out(lab, row_prefix):
    """DataJoint leaves a name that is no attribute out of a restriction: {"subject": S, "sesion_id": 3} named S's only
    session, whatever its number, and its status was read and set."""
    pipeline, _ = lab
    subject = f"{row_prefix}m2"
    row = {"subject": subject, "session_datetime": "2031-02-03T04:05:06", "session_id": 1, "status": "acquiring"}
    ingest("sessions", [row], linking_module=pipeline, progress=False)
    before = snapshot(pipeline)
    for call in (lambda k: lifecycle.set_status(k, "acquired"), lifecycle.status_of):
        with pytest.raises(InputError, match=r"sesion_id: not an attribute of Session \(subject, session_dat") as err:
            call({"subject": subject, "sesion_id": 3})
        assert err.value.in_arguments
    assert snapshot(pipeline) == before


def test_two_setters_at_once_one_wins_the_other_gets_the_typed_error(lab, subprocess_env):
    """Two processes move the same acquired session to qc_passed at once: never both."""
    _, (_, _, key) = lab
    code = (
        "import time, datetime as dt\n"
        "from workflow import pipeline\n"
        "from element_session.status import set_status\n"
        "from element_session.errors import InvalidStatusTransitionError\n"
        f"key = {{'subject': {key['subject']!r}, 'session_datetime': dt.datetime.fromisoformat("
        f"{key['session_datetime'].isoformat()!r})}}\n"
        "time.sleep(max(0.0, {start} - time.time()))\n"
        "try:\n    set_status(key, 'qc_passed', reason='mine'); print('won')\n"
        "except InvalidStatusTransitionError as err:\n    print('lost', err.current)\n"
    )
    start = time.time() + 3
    children = [
        subprocess.Popen([sys.executable, "-c", code.replace("{start}", str(start))], env=subprocess_env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [child.communicate(timeout=120) for child in children]
    results = sorted(out.strip().splitlines()[-1] if out.strip() else err for out, err in outputs)  # DataJoint logs too
    assert results == ["lost qc_passed", "won"]
    assert lifecycle.status_of(key) == "qc_passed"


def _while_another_sets(server, m, key, state: str, call) -> list:
    """Run ``call()`` in a thread while another connection holds the session's row and sets its status to
    ``state`` (not committed yet); check that the call waits for it; commit; what the call returned or raised."""
    import threading

    import datajoint as dj

    other = dj.Connection(
        server.host, server.user, server.password, port=server.port, use_tls=server.use_tls, backend=server.backend
    )
    other.start_transaction()
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as err:
            outcome.append(err)

    try:
        other.query(f"SELECT 1 FROM {m.Session.full_table_name}{(m.Session & key).where_clause()} FOR UPDATE")
        other.query(
            f"INSERT INTO {m.SessionStatus.full_table_name} (subject, session_datetime, session_status, "
            "status_set_time, status_set_by) VALUES (%s, %s, %s, %s, 'other')",
            args=(key["subject"], key["session_datetime"], state, dt.datetime(2024, 1, 1)),
        )
        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(1.5)
        assert worker.is_alive() and not outcome  # waiting for the other's lock
        other.commit_transaction()
        worker.join(60)
    finally:
        if other.in_transaction:
            other.cancel_transaction()
        other.close()
    return outcome


def test_a_setter_waits_for_a_concurrent_change_and_sees_its_result(lab, server):
    """A second connection holds the session's row and changes the status; the first then finds it changed."""
    pipeline, (_, _, key) = lab
    outcome = _while_another_sets(server, pipeline.session, key, "qc_failed",
                                  lambda: str(lifecycle.set_status(key, "qc_passed")))  # fmt: skip
    assert isinstance(outcome[0], InvalidStatusTransitionError) and outcome[0].current == "qc_failed"
    assert lifecycle.status_of(key) == "qc_failed"


def test_an_edit_waits_for_a_concurrent_qc_pass_and_is_refused_after_it(lab, server):
    """Another connection passes the session's QC (its row locked, not committed yet) while the web edits it:
    the edit waits for it and is refused, never an edit of a session that passed QC meanwhile."""
    from element_session.web.accounts import UserPipeline
    from element_session.web.service import update_session

    pipeline, (_, _, key) = lab
    m = pipeline.session
    user = UserPipeline("test", m.Session.connection, pipeline, m)
    (m.SessionStatus & key).delete_quick()  # acquired (no row): a QC pass is allowed
    outcome = _while_another_sets(server, m, key, "qc_passed", lambda: update_session(user, key, "edited in QC", {}))
    assert isinstance(outcome[0], SessionLockedError), outcome
    assert (m.SessionNote & key & {"session_note": "edited in QC"}).to_dicts() == []
    lifecycle.set_status(key, "acquired", reason="test: reopened")


def test_a_key_names_its_session_by_the_instant_of_its_start_in_any_zone(lab):
    """An aware start time (datetime, pandas Timestamp) or ISO text with an offset, in the lab's zone, names the
    session its UTC time names: both servers drop an offset written into SQL, so 09:08:09+02:00 looked up
    09:08:09 UTC and the key's own session was 'not found' (as history() already reads such keys)."""
    import pandas as pd

    from element_session.errors import SessionNotFoundError
    from element_session.paths import get_session_directory

    _, (key, _, _) = lab
    berlin = key["session_datetime"].replace(tzinfo=dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=2)))
    for when in (berlin, pd.Timestamp(berlin), berlin.isoformat()):
        given = {**key, "session_datetime": when}
        assert lifecycle.status_of(given) == "planned", when
        with pytest.raises(SessionNotFoundError, match="has no directory"):  # found: it has none
            get_session_directory(given)
    change = lifecycle.set_status({**key, "session_datetime": berlin}, "acquiring")
    assert change.key == key and lifecycle.status_of(key) == "acquiring"


def test_a_qc_passed_session_cannot_be_edited_until_reopened(lab):
    from element_session.web.accounts import UserPipeline
    from element_session.web.service import update_session

    pipeline, (_, _, key) = lab
    m = pipeline.session
    lifecycle.set_status(key, "qc_passed")
    user = UserPipeline("test", m.Session.connection, pipeline, m)
    before = snapshot(pipeline)
    with pytest.raises(SessionLockedError, match="reopen it first"):
        update_session(user, key, "changed", {})
    row = {"subject": key["subject"], "session_datetime": key["session_datetime"].isoformat(), "session_note": "new"}
    with pytest.raises(SessionLockedError, match="reopen it first") as refused:
        ingest("sessions", [row], linking_module=pipeline, progress=False)
    assert "ingest never changes a stored session" in str(refused.value)  # reopening alone would not let it
    added = {**row, "session_note": "note 2", "attr.rig": "A"}  # a part the session lacks is an edit too
    with pytest.raises(
        SessionLockedError, match=re.escape("'attr.rig': conflict: the stored session has no value; session")
    ):
        ingest("sessions", [added], linking_module=pipeline, progress=False)
    assert snapshot(pipeline) == before
    same = {**row, "session_note": "note 2"}
    assert ingest("sessions", [same], linking_module=pipeline, progress=False).present  # unchanged: fine
    lifecycle.set_status(key, "acquired", reason="fix the note")
    update_session(user, key, "changed", {})
    assert (m.SessionNote & key).fetch1("session_note") == "changed"


def test_sessions_are_selected_and_shown_by_status(lab):
    pipeline, (planned, acquiring, plain) = lab
    m = pipeline.session
    subject = planned["subject"]
    mine = m.Session & {"subject": subject}
    assert find_sessions(m, subject=subject, status="planned").keys() == [planned]
    both = find_sessions(m, subject=subject, status=["acquired", "acquiring"]).keys()
    assert sorted(both, key=str) == sorted([acquiring, plain], key=str)
    assert (mine & m.in_status("acquired")).keys() == [plain]
    frame = session_table(mine, m)
    assert frame["status"].tolist() == ["planned", "acquiring", "acquired"]
    shown = status_table(mine, m)
    assert shown["status"].tolist() == ["planned", "acquiring", "acquired"]
    assert shown["set_time"].isna().tolist() == [False, False, True]


def test_status_commands(lab, command):
    _, (planned, _, plain) = lab
    subject, when = planned["subject"], planned["session_datetime"].isoformat()
    ran = command("status", "set", "--subject", subject, "--datetime", when, "acquiring")
    assert ran.status == 0, ran.err
    assert "planned -> acquiring" in ran.out
    refused = command("status", "set", "--subject", subject, "--datetime", when, "qc_passed")
    assert refused.status == 1
    assert "'acquiring': it cannot become 'qc_passed'" in refused.err and "acquired, aborted" in refused.err
    neither = command("status", "set", "--subject", subject, "acquired")
    assert neither.status == 2 and "give --datetime or --id\n" in neither.err
    both = command("status", "set", "--subject", subject, "--datetime", when, "--id", "2", "acquired")
    assert both.status == 2 and "give --datetime or --id, not both" in both.err
    assert command("status", "set", "--subject", subject, "--datetime", when, "done").status == 2
    shown = command("status", "show", "--subject", subject, "--format", "json")
    assert shown.status == 0, shown.err
    assert [r["status"] for r in json.loads(shown.out)] == ["acquiring", "acquiring", "acquired"]
    only = command("sessions", "--subject", subject, "--status", "acquired", "--format", "json")
    assert [r["session_datetime"][:19] for r in json.loads(only.out)] == [plain["session_datetime"].isoformat()]
    as_csv = command("status", "show", "--subject", subject, "--format", "csv")
    assert as_csv.out.splitlines()[0] == "subject,session_datetime,status,set_time,set_by,reason"
    assert as_csv.out.splitlines()[3].endswith(",acquired,,,")  # no status row: acquired, nothing else
    table = command("status", "show", "--subject", subject, "--status", "acquiring")
    assert table.status == 0 and table.out.count("acquiring") == 2
    for listing in (("status", "show"), ("sessions",)):  # an empty selection: an empty JSON list, as written
        empty = command(*listing, "--subject", subject, "--status", "aborted", "--format", "json")
        assert (empty.status, empty.out) == (0, "[]\n"), empty.err


def test_status_set_and_show_name_the_session_as_sessions_does_with_times_marked_utc(lab, command):
    """docs/times.md: one rule for every time shown; the change as old -> new."""
    _, keys = lab
    subject = keys[0]["subject"]
    key = f"session subject={subject}, session_datetime=2024-05-06T07:08:09+00:00"
    ran = command("status", "set", "--subject", subject, "--datetime", "2024-05-06T09:08:09+02:00", "acquiring")
    assert (ran.status, ran.out) == (0, f"{key}: planned -> acquiring\n"), ran.err
    refused = command("status", "set", "--subject", subject, "--datetime", "2024-05-06T07:08:09Z", "qc_passed")
    assert refused.status == 1 and f"element-session: {key} is 'acquiring': it cannot become 'qc_passed'" in refused.err
    stamp = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?\+00:00")
    as_csv = list(csv.DictReader(io.StringIO(command("status", "show", "--subject", subject, "--format", "csv").out)))
    as_json = json.loads(command("status", "show", "--subject", subject, "--format", "json").out)
    for rows in (as_csv, as_json):
        assert rows[0]["session_datetime"] == "2024-05-06T07:08:09+00:00" and stamp.fullmatch(rows[0]["set_time"])
    table = command("status", "show", "--subject", subject).out
    assert "2024-05-06T07:08:09+00:00 acquiring" in table and as_json[0]["set_time"] in table
    missing = command("status", "set", "--subject", subject, "--datetime", "2024-05-06T07:00:00Z", "acquired")
    assert (
        missing.status == 1
        and f"no session with subject={subject}, session_datetime=2024-05-06T07:00:00+00:00 in schema " in missing.err
        and "`" not in missing.err
        and "names no zone" not in missing.err  # the time carried its zone
    ), missing.err
    # a local time copied without its zone is read in UTC: the refusal says so and how to name the zone
    local = command("status", "set", "--subject", subject, "--datetime", "2024-05-06T05:55:55", "acquired")
    assert local.status == 1 and "names no zone and was read in UTC" in local.err and "--timezone" in local.err
