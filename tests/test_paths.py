"""Session directory lookup in both directions, against the sessions on the server (and find_full_path)."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest

from element_session.errors import DirectoryNotFoundError, SessionDirectoryError, SessionNotFoundError
from element_session.paths import (
    ROOT_DIRS_ENV,
    find_full_path,
    find_session_key,
    get_session_directory,
    set_root_dirs,
)

SUBJECT = "tp-mouse"
TWIN = "tp-twin"
FOUND = {"subject": SUBJECT, "session_datetime": dt.datetime(2024, 1, 2, 3, 4, 5)}  # directory in the second root
MISSING = {"subject": SUBJECT, "session_datetime": dt.datetime(2024, 1, 3, 3, 4, 5)}  # directory under no root
NO_DIR = {"subject": SUBJECT, "session_datetime": dt.datetime(2024, 1, 4, 3, 4, 5)}  # no SessionDirectory row
NESTED = {"subject": SUBJECT, "session_datetime": dt.datetime(2024, 1, 5, 3, 4, 5)}  # directory inside FOUND's
QUOTED = {"subject": SUBJECT, "session_datetime": dt.datetime(2024, 1, 6, 3, 4, 5)}  # quote, percent, unicode
DIRS = {
    "FOUND": "tp-mouse/2024-01-02",
    "MISSING": "tp-mouse/2024-01-03",
    "NESTED": "tp-mouse/2024-01-02/probe0",
    "QUOTED": "tp-mouse/it's 100% réglé ✓",
}


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> list[Path]:
    """Three roots; FOUND's and QUOTED's directories exist only in the second (the first has a file of that name)."""
    base = tmp_path_factory.mktemp("roots")
    first, second, third = base / "first", base / "second", base / "third"
    (first / "tp-mouse").mkdir(parents=True)
    (first / DIRS["FOUND"]).write_text("a file, not the session's directory")
    for name in ("FOUND", "NESTED", "QUOTED"):
        (second / DIRS[name]).mkdir(parents=True)
    (second / DIRS["NESTED"] / "imec0.ap.bin").write_text("")
    third.mkdir()
    return [first, second, third]


@pytest.fixture(scope="module")
def sessions(pipeline):
    """Sessions of one subject unique to this file, with the directories of DIRS; deleted at the end."""
    s = pipeline.session
    pipeline.Subject.insert1({"subject": SUBJECT, "sex": "U", "subject_birth_date": "2023-05-06"})
    keys = {"FOUND": FOUND, "MISSING": MISSING, "NO_DIR": NO_DIR, "NESTED": NESTED, "QUOTED": QUOTED}
    s.Session.insert([{**key, "session_id": n} for n, key in enumerate(keys.values())])
    s.SessionDirectory.insert([{**keys[name], "session_dir": d} for name, d in DIRS.items()])
    yield s
    (pipeline.Subject & {"subject": SUBJECT}).delete()


# --------------------------------------------------------------------------- find_full_path


def test_find_full_path_takes_the_first_root_where_it_exists(roots):
    first, second, _ = roots
    assert find_full_path(roots, DIRS["NESTED"]) == second / DIRS["NESTED"]
    assert find_full_path(roots, DIRS["FOUND"]) == first / DIRS["FOUND"]  # a file counts for this helper
    assert find_full_path([str(r) for r in roots], "tp-mouse\\2024-01-02\\probe0\\") == second / DIRS["NESTED"]
    assert find_full_path(roots, str(second / DIRS["NESTED"])) == second / DIRS["NESTED"]


def test_find_full_path_names_every_root_when_missing(roots):
    with pytest.raises(DirectoryNotFoundError) as err:
        find_full_path(roots, "tp-mouse/nowhere")
    assert isinstance(err.value, FileNotFoundError)
    assert "'tp-mouse/nowhere'" in str(err.value)
    assert all(repr(str(root)) in str(err.value) for root in roots)
    with pytest.raises(DirectoryNotFoundError, match="no root data directories are configured"):
        find_full_path([], "tp-mouse")
    with pytest.raises(SessionDirectoryError, match=re.escape("'..' part")):
        find_full_path(roots, "../first")


# --------------------------------------------------------------------------- get_session_directory


def test_session_directory_is_found_in_the_second_root(sessions, roots):
    second = roots[1]
    assert get_session_directory(FOUND, sessions, roots) == second / DIRS["FOUND"]  # the first has only a file
    assert get_session_directory(QUOTED, sessions, roots) == second / DIRS["QUOTED"]
    extra = {**FOUND, "session_id": 99, "project": "ignored"}
    assert get_session_directory(extra, sessions, roots) == second / DIRS["FOUND"]
    assert get_session_directory(FOUND, roots=roots) == second / DIRS["FOUND"]  # the default session module


def test_session_directory_missing_everywhere_names_it_and_every_root(sessions, roots):
    with pytest.raises(DirectoryNotFoundError) as err:
        get_session_directory(MISSING, sessions, roots)
    message = str(err.value)
    assert repr(DIRS["MISSING"]) in message
    assert all(repr(str(root)) in message for root in roots)
    with pytest.raises(DirectoryNotFoundError, match="no root data directories are configured"):
        get_session_directory(FOUND, sessions, [])


def test_session_without_directory_or_unknown_session(sessions, roots):
    with pytest.raises(SessionNotFoundError, match="has no directory: none is stored for it") as caught:
        get_session_directory(NO_DIR, sessions, roots)
    assert "`" not in str(caught.value) and '"' not in str(caught.value)  # no SQL table name: a job error shows it
    unknown = {"subject": SUBJECT, "session_datetime": dt.datetime(1999, 1, 1)}
    with pytest.raises(SessionNotFoundError, match="no session"):
        get_session_directory(unknown, sessions, roots)
    with pytest.raises(SessionNotFoundError, match="lacks session_datetime"):
        get_session_directory({"subject": SUBJECT}, sessions, roots)  # would match every session of the subject


def test_session_directory_roots_from_environment_then_api_override(sessions, roots, monkeypatch):
    first, second, third = roots
    monkeypatch.setenv(ROOT_DIRS_ENV, os.pathsep.join([str(first), str(second)]))
    assert get_session_directory(FOUND, sessions) == second / DIRS["FOUND"]
    (third / DIRS["FOUND"]).mkdir(parents=True)
    try:
        set_root_dirs([third, second])  # monkeypatch restores the variable afterwards
        assert get_session_directory(FOUND, sessions) == third / DIRS["FOUND"]
        set_root_dirs([first])
        with pytest.raises(DirectoryNotFoundError, match=re.escape(repr(str(first)))):
            get_session_directory(FOUND, sessions)
    finally:
        (third / DIRS["FOUND"]).rmdir()
        (third / "tp-mouse").rmdir()


# --------------------------------------------------------------------------- find_session_key


def test_reverse_lookup_from_a_nested_file_and_from_the_directory(sessions, roots):
    second = roots[1]
    assert find_session_key(second / DIRS["FOUND"], sessions, roots) == FOUND
    assert find_session_key(f"{second}/{DIRS['FOUND']}/", sessions, roots) == FOUND
    assert find_session_key(second / DIRS["FOUND"] / "video" / "cam0.avi", sessions, roots) == FOUND
    assert find_session_key(DIRS["FOUND"] + "/behavior.csv", sessions, roots) == FOUND  # relative to a root
    assert find_session_key("tp-mouse\\2024-01-02\\video\\", sessions, roots) == FOUND  # from a Windows machine
    assert find_session_key(DIRS["QUOTED"] + "/x.bin", sessions, roots) == QUOTED
    assert find_session_key(DIRS["MISSING"], sessions, roots) == MISSING  # only the database is asked
    assert find_session_key(DIRS["FOUND"], roots=roots) == FOUND  # the default session module


def test_reverse_lookup_longest_directory_wins(sessions, roots):
    nested_file = roots[1] / DIRS["NESTED"] / "imec0.ap.bin"
    assert find_session_key(nested_file, sessions, roots) == NESTED
    assert find_session_key(DIRS["NESTED"], sessions, roots) == NESTED
    assert find_session_key(DIRS["FOUND"] + "/probe1/x.bin", sessions, roots) == FOUND


def test_reverse_lookup_of_a_very_deep_file(sessions, roots):
    deep = DIRS["FOUND"] + "/" + "/".join(["d" * 50] * 8) + "/file.bin"
    assert len(deep) > 256
    assert find_session_key(deep, sessions, roots) == FOUND


def test_reverse_lookup_from_unrelated_paths(sessions, roots):
    second = roots[1]
    for path in [second / "tp-mouse", second / "tp-mouse/2024-01-0", second / "other/2024-01-02", "tp-mouse/x"]:
        with pytest.raises(SessionNotFoundError, match="no session's directory contains"):
            find_session_key(path, sessions, roots)
    with pytest.raises(SessionNotFoundError, match=re.escape(repr(DIRS["FOUND"].upper()))):
        find_session_key(DIRS["FOUND"].upper(), sessions, roots)  # directories compare case-sensitively
    with pytest.raises(SessionDirectoryError, match="outside every root"):
        find_session_key("/srv/elsewhere/" + DIRS["FOUND"], sessions, roots)
    with pytest.raises(SessionDirectoryError, match=re.escape("'..' part")):
        find_session_key(DIRS["FOUND"] + "/../2024-01-03", sessions, roots)


def test_reverse_lookup_of_a_directory_two_sessions_share(pipeline, sessions, roots):
    pipeline.Subject.insert1({"subject": TWIN, "sex": "F", "subject_birth_date": "2023-05-06"})
    try:
        twin = {"subject": TWIN, "session_datetime": dt.datetime(2024, 1, 2, 3, 4, 5)}
        sessions.Session.insert1(twin)
        sessions.SessionDirectory.insert1({**twin, "session_dir": DIRS["FOUND"]})
        with pytest.raises(SessionDirectoryError, match="2 sessions share") as err:
            find_session_key(DIRS["FOUND"] + "/x", sessions, roots)
        assert TWIN in str(err.value) and SUBJECT in str(err.value)
        assert find_session_key(DIRS["NESTED"], sessions, roots) == NESTED  # a longer match is still unique
    finally:
        (pipeline.Subject & {"subject": TWIN}).delete()
