"""Concurrent writers: two ``element-session ingest`` processes write overlapping files at the same time.

Both processes start, wait at a barrier (files in a shared directory) and run the command together.
A second barrier, placed before the first write of each process, holds it until both have checked
their input against the database: both see nothing of the other's rows, both try to insert the
overlap, and one of them must lose the race on the database's unique keys. The loser's
transaction is rolled back, checked again and retried, so the race is run every time, not by luck.
Afterwards every row is in the database once, nothing is lost, and each process's report says what
it wrote and what was already there, or names the row that conflicts.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

SUBJECTS, PEOPLE, PROJECTS = ["cc-m1", "cc-m2"], ["cc-ada", "cc-bob"], ["cc-p"]
START = dt.datetime(2024, 2, 1, 8, 0, 0)
TIMEOUT = 120  # seconds for a child process: a barrier never reached fails the test rather than hanging it

#: A child process: wait for the start signal, then run ``element-session`` with a barrier just before the
#: first rows it writes (its first call of the bulk write path); says how many bulk writes it ran.
CHILD = """
import pathlib, sys, time
import datajoint as dj
from element_session import bulk, cli

barrier, me, other = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
insert, inserts = bulk.insert, []


def wait_for(*names):
    deadline = time.monotonic() + 60
    while not any((barrier / name).exists() for name in names):
        if time.monotonic() > deadline:
            raise SystemExit(f"barrier {names} not reached")
        time.sleep(0.005)


def insert_after_the_other_has_checked(*args, **kwargs):
    inserts.append(1)
    if len(inserts) == 1:
        (barrier / f"checked-{me}").touch()
        wait_for(f"checked-{other}", f"done-{other}")
    yield from insert(*args, **kwargs)


import workflow.pipeline  # connect and activate before the start signal
bulk.insert = insert_after_the_other_has_checked
(barrier / f"ready-{me}").touch()
wait_for("go")
try:
    status = cli.main(sys.argv[4:])
finally:
    (barrier / f"done-{me}").touch()
print(f"inserts run: {len(inserts)}")
sys.exit(status)
"""
REPORT = re.compile(r"(\d+) row\(s\) read, (\d+) new, (\d+) already present")


@pytest.fixture
def refs(references):
    return references(SUBJECTS, PEOPLE, PROJECTS)


def session_file(path: Path, numbers: range, note=lambda i: f"note {i}") -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\r\n")
        writer.writerow(["subject", "session_datetime", "session_id", "experimenter", "project", "session_note",
                         "attr.n"])  # fmt: skip
        for i in numbers:
            when = START + dt.timedelta(minutes=i)
            writer.writerow([SUBJECTS[i % 2], f"{when:%Y-%m-%dT%H:%M:%S}Z", i, "cc-ada;cc-bob", "cc-p", note(i), i])
    return path


def people_file(path: Path, numbers: range) -> Path:
    path.write_text("user,user_fullname\n" + "".join(f"cc-u{i:03d},Person {i}\n" for i in numbers), encoding="utf-8")
    return path


def run_together(env: dict[str, str], cwd: Path, kind: str, files: dict[str, Path]) -> dict[str, tuple[int, str, str]]:
    """Run ``element-session ingest kind FILE`` in two processes at once; (status, stdout, stderr) of each."""
    barrier = cwd / f"barrier-{kind}"
    barrier.mkdir()
    names = list(files)
    procs = {
        me: subprocess.Popen(
            [sys.executable, "-c", CHILD, str(barrier), me, other, "ingest", kind, str(files[me])],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me, other in zip(names, reversed(names), strict=True)
    }
    try:
        deadline = time.monotonic() + TIMEOUT
        while not all((barrier / f"ready-{me}").exists() for me in names):
            assert all(p.poll() is None for p in procs.values()), {me: p.communicate() for me, p in procs.items()}
            assert time.monotonic() < deadline, "the children did not get ready"
            time.sleep(0.01)
        (barrier / "go").touch()
        return {me: (p.wait(TIMEOUT), *p.communicate()) for me, p in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def report(out: str) -> tuple[int, int, int]:
    """(rows read, new, already present) from the command's report."""
    return tuple(int(n) for n in REPORT.search(out).groups())


def inserts(out: str) -> int:
    return int(re.search(r"inserts run: (\d+)", out)[1])


def stored_sessions(module: ModuleType) -> dict[str, list[tuple]]:
    restriction = [{"subject": s} for s in SUBJECTS]
    key = ("subject", "session_datetime")
    return {
        "Session": [tuple(r[k] for k in (*key, "session_id")) for r in (module.Session & restriction).to_dicts()],
        "SessionNote": [tuple(r[k] for k in (*key, "session_note")) for r in (module.SessionNote & restriction)
                        .to_dicts()],
        "SessionExperimenter": [tuple(r[k] for k in (*key, "user")) for r in (module.SessionExperimenter
                                & restriction).to_dicts()],
        "Attribute": [tuple(r[k] for k in (*key, "attribute_value")) for r in (module.Session.Attribute.proj(
            "attribute_value") & restriction).to_dicts()],
    }  # fmt: skip


def expected_sessions(numbers: set[int], note=lambda i: f"note {i}") -> dict[str, list[tuple]]:
    rows: dict[str, list[tuple]] = {"Session": [], "SessionNote": [], "SessionExperimenter": [], "Attribute": []}
    for i in sorted(numbers):
        key = (SUBJECTS[i % 2], START + dt.timedelta(minutes=i))
        rows["Session"].append((*key, i))
        rows["SessionNote"].append((*key, note(i)))
        rows["SessionExperimenter"] += [(*key, "cc-ada"), (*key, "cc-bob")]
        rows["Attribute"].append((*key, str(i)))
    return {name: sorted(found) for name, found in rows.items()}


def test_two_writers_of_overlapping_sessions_store_every_session_once(refs, subprocess_env, tmp_path):
    first, second = range(0, 600), range(400, 1000)
    files = {"a": session_file(tmp_path / "a.csv", first), "b": session_file(tmp_path / "b.csv", second)}
    results = run_together(subprocess_env, tmp_path, "sessions", files)
    for me, (status, _, err) in results.items():
        assert status == 0, f"{me}: {err}"
        assert "Traceback" not in err
    reports = {me: report(out) for me, (_, out, _) in results.items()}
    print(f"\nconcurrent session writers: {reports}, INSERTs run {[inserts(o) for _, o, _ in results.values()]}")
    assert all(read == 600 for read, _, _ in reports.values())
    assert sum(new for _, new, _ in reports.values()) == 1000  # each session written by exactly one of them
    assert sum(present for _, _, present in reports.values()) == 200  # the overlap, found by the other
    # both had checked their file before either wrote, so both tried to insert the overlap: the one that lost
    # the race was rolled back, checked again (finding the overlap present) and wrote the rest
    stored = stored_sessions(refs.session)
    expected = expected_sessions(set(first) | set(second))
    assert {name: sorted(rows) for name, rows in stored.items()} == expected  # nothing lost, nothing twice


def test_two_writers_that_disagree_on_a_session_one_writes_the_other_names_the_conflict(refs, subprocess_env, tmp_path):
    first, second = range(0, 300), range(200, 500)
    other_note = {250: "changed by b"}

    def note_b(i: int) -> str:
        return other_note.get(i, f"note {i}")

    files = {
        "a": session_file(tmp_path / "a.csv", first),
        "b": session_file(tmp_path / "b.csv", second, note=note_b),
    }
    results = run_together(subprocess_env, tmp_path, "sessions", files)
    statuses = {me: status for me, (status, _, _) in results.items()}
    assert sorted(statuses.values()) == [0, 1], results
    winner = next(me for me, status in statuses.items() if status == 0)
    loser = "b" if winner == "a" else "a"
    _, out, err = results[loser]
    print(f"\nconflicting writers: {winner} wrote, {loser} refused: {err.strip().splitlines()[-1]}")
    # both had checked before either wrote, when nothing was stored: the loser's first insert failed on the
    # overlap and its second check found the conflict
    assert "Traceback" not in err and inserts(out) >= 1
    row = 250 - (second.start if loser == "b" else first.start) + 2  # line of session 250 in the loser's file
    mine, theirs = ("changed by b", "note 250") if loser == "b" else ("note 250", "changed by b")
    assert f"{files[loser]}, row {row}, column 'session_note': conflict: the stored session has {theirs!r}" in err
    assert f"(value: {mine!r})" in err
    assert "nothing was written" in err
    assert report(results[winner][1]) == (300, 300, 0)
    # the winner's file exactly; nothing of the loser's file that the winner did not write
    expected = expected_sessions(set(first)) if winner == "a" else expected_sessions(set(second), note=note_b)
    assert {name: sorted(rows) for name, rows in stored_sessions(refs.session).items()} == expected


def test_two_writers_of_overlapping_experimenters_store_each_person_once(refs, subprocess_env, tmp_path):
    files = {"a": people_file(tmp_path / "a.csv", range(0, 60)), "b": people_file(tmp_path / "b.csv", range(40, 100))}
    try:
        results = run_together(subprocess_env, tmp_path, "experimenters", files)
        for me, (status, _, err) in results.items():
            assert status == 0, f"{me}: {err}"
        reports = [report(out) for _, out, _ in results.values()]
        assert sum(new for _, new, _ in reports) == 100 and sum(present for _, _, present in reports) == 20
        stored = (refs.User & [{"user": f"cc-u{i:03d}"} for i in range(100)]).to_dicts()
        assert sorted((r["user"], r["user_fullname"]) for r in stored) == [
            (f"cc-u{i:03d}", f"Person {i}") for i in range(100)
        ]
    finally:
        (refs.User & [{"user": f"cc-u{i:03d}"} for i in range(100)]).delete()
