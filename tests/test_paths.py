"""Root data directories, session_dir normalisation, and session directory lookup in both directions."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from element_session.errors import DirectoryNotFoundError, SessionDirectoryError, SessionNotFoundError
from element_session.paths import (
    ROOT_DIRS_ENV,
    find_full_path,
    find_session_key,
    get_root_dirs,
    get_session_directory,
    normalize_session_dir,
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


# --------------------------------------------------------------------------- configuration


def test_root_dirs_come_from_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(ROOT_DIRS_ENV, os.pathsep.join(["", str(tmp_path / "a"), "", "/mnt/b", " "]))
    assert get_root_dirs() == [tmp_path / "a", Path("/mnt/b")]
    monkeypatch.setenv(ROOT_DIRS_ENV, "")
    assert get_root_dirs() == []
    monkeypatch.delenv(ROOT_DIRS_ENV)
    assert get_root_dirs() == []


def test_set_root_dirs_overrides_the_variable_and_child_processes_inherit_it(monkeypatch, tmp_path):
    monkeypatch.setenv(ROOT_DIRS_ENV, "/from/the/environment")  # monkeypatch restores it after set_root_dirs
    monkeypatch.chdir(tmp_path)
    set_root_dirs([tmp_path / "a", "relative/b"])
    expected = [tmp_path / "a", tmp_path / "relative" / "b"]  # made absolute, so children elsewhere agree
    assert get_root_dirs() == expected
    assert os.environ[ROOT_DIRS_ENV] == os.pathsep.join(map(str, expected))
    child = subprocess.run(
        [sys.executable, "-c", "from element_session.paths import get_root_dirs; print(*get_root_dirs(), sep='\\n')"],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.splitlines() == [str(p) for p in expected]
    set_root_dirs([])
    assert get_root_dirs() == []


@pytest.mark.parametrize(
    ("dirs", "message"),
    [
        ("/one/path", "a list of directories, not a single path"),
        (Path("/one/path"), "a list of directories, not a single path"),
        (["/a", ""], "is empty"),
        ([f"/a{os.pathsep}/b"], "give each root as its own list item"),
        (["/a\x00b"], "control character"),
        ([42], "is a int, not a path"),
    ],
)
def test_set_root_dirs_rejects_what_it_cannot_store(monkeypatch, dirs, message):
    monkeypatch.setenv(ROOT_DIRS_ENV, "/unchanged")
    with pytest.raises(SessionDirectoryError, match=re.escape(message)):
        set_root_dirs(dirs)
    assert os.environ[ROOT_DIRS_ENV] == "/unchanged"


def test_normalize_uses_the_configured_roots_and_relative_input_needs_none(monkeypatch):
    monkeypatch.delenv(ROOT_DIRS_ENV, raising=False)
    assert normalize_session_dir("m1/s1") == "m1/s1"
    with pytest.raises(SessionDirectoryError, match=f"no root data directories are configured.*{ROOT_DIRS_ENV}"):
        normalize_session_dir("/data/raw/m1/s1")
    monkeypatch.setenv(ROOT_DIRS_ENV, os.pathsep.join(["/data/other", "/data/raw"]))
    assert normalize_session_dir("/data/raw/m1/s1") == "m1/s1"
    set_root_dirs(["/data/other"])
    with pytest.raises(SessionDirectoryError, match="outside every root"):
        normalize_session_dir("/data/raw/m1/s1")


# --------------------------------------------------------------------------- normalisation

ROOTS = ["/data/raw", "/data/raw/nested-root", "/mnt/lab data/", "D:\\acquisition", "//nas/share"]


@pytest.mark.parametrize(
    ("path", "stored"),
    [
        ("m1/2024-01-02", "m1/2024-01-02"),
        ("./m1//2024-01-02/./", "m1/2024-01-02"),
        (Path("m1/2024-01-02"), "m1/2024-01-02"),
        ("/data/raw/m1/s1", "m1/s1"),
        ("/data/raw/nested-root/m1", "nested-root/m1"),  # the first root that contains it
        ("/data//raw/./m1/s1/", "m1/s1"),
        ("/mnt/lab data/m1", "m1"),
        ("/data/raw-other/m1", None),  # a sibling that shares the root's prefix is not under it
        # backslashes are separators everywhere (Windows acquisition machines)
        ("m1\\2024-01-02\\", "m1/2024-01-02"),
        ("m1\\sub/s1", "m1/sub/s1"),
        ("D:\\acquisition\\m1\\s1", "m1/s1"),
        ("d:/acquisition/m1", "m1"),  # drive letters compare case-insensitively
        ("\\\\nas\\share\\m1\\s1", "m1/s1"),
        ("//nas/share/m1", "m1"),
        ("E:\\acquisition\\m1", None),
        ("x" * 256, "x" * 256),
        ("/data/raw/" + "y" * 256, "y" * 256),  # the limit applies to the stored, relative form
    ],
)
def test_valid_paths_are_stored_relative_with_slashes(path, stored):
    if stored is None:
        with pytest.raises(SessionDirectoryError, match="outside every root data directory"):
            normalize_session_dir(path, ROOTS)
    else:
        assert normalize_session_dir(path, ROOTS) == stored


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/srv/elsewhere/m1", "outside every root data directory"),
        ("m1/../m2", "'..' part"),
        ("..", "'..' part"),
        ("/data/raw/m1/../../etc", "'..' part"),
        ("m1\\..\\m2", "'..' part"),
        ("", "is empty"),
        ("   ", "is empty"),
        (".", "is empty"),
        ("./", "is empty"),
        ("/data/raw", "is the root data directory '/data/raw' itself"),
        ("m1/s1\x00", "control character '\\x00' at position 5"),
        ("m1\ts1", "control character '\\t'"),
        ("m1/s1\n", "control character '\\n'"),
        ("m1\x7f", "control character"),
        ("m1\x85", "control character"),
        ("m1/\udcff", "lone surrogate"),
        ("C:m1", "relative to the current directory of drive C:"),
        ("x" * 257, "257 characters long"),
        ("a/" * 128 + "b", "257 characters long"),
        (b"m1/s1", "is bytes"),
        (None, "is a NoneType, not a path"),
    ],
)
def test_invalid_paths_raise_an_error_naming_the_value(path, reason):
    with pytest.raises(SessionDirectoryError, match=re.escape(reason)) as err:
        normalize_session_dir(path, ROOTS)
    if isinstance(path, str):
        assert repr(path) in str(err.value)


def test_outside_every_root_names_each_root():
    with pytest.raises(SessionDirectoryError) as err:
        normalize_session_dir("/srv/elsewhere/m1", ROOTS)
    assert all(repr(root) in str(err.value) for root in ROOTS)


def test_roots_are_compared_after_normalisation_without_resolving_links(tmp_path):
    real = tmp_path / "real"
    (real / "m1").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(real)
    assert normalize_session_dir(f"{real}/m1", [f"{tmp_path}/x/../real/"]) == "m1"
    with pytest.raises(SessionDirectoryError, match="outside every root"):
        normalize_session_dir(f"{link}/m1", [real])  # the link is not followed
    assert normalize_session_dir(f"{link}/m1", [link]) == "m1"


def test_roots_must_be_a_list():
    with pytest.raises(SessionDirectoryError, match="not a single path"):
        normalize_session_dir("/data/raw/m1", "/data/raw")


NAME_CHARS = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/\\")
PART = st.text(NAME_CHARS, min_size=1, max_size=24).filter(lambda p: p not in (".", "..") and p.strip())
REL_PARTS = st.lists(PART, min_size=1, max_size=8).filter(
    lambda parts: not re.match("[A-Za-z]:", parts[0]) and len("/".join(parts)) <= 256  # not a drive letter
)
SEPARATORS = st.sampled_from(["/", "\\", "//", "/./", "\\.\\"])


@settings(deadline=None, max_examples=300)
@given(
    parts=REL_PARTS,
    root=st.sampled_from(ROOTS),
    seps=st.lists(SEPARATORS, min_size=9, max_size=9),
    trailing=st.sampled_from(["", "/", "\\", "/."]),
)
def test_property_valid_relative_paths(parts, root, seps, trailing):
    rel = "/".join(parts)
    messy = parts[0] + "".join(sep + part for sep, part in zip(seps, parts[1:], strict=False)) + trailing
    stored = normalize_session_dir(rel, ROOTS)
    assert stored == rel
    assert normalize_session_dir(messy, ROOTS) == stored
    assert normalize_session_dir(root.rstrip("/\\") + seps[-1] + messy, [root]) == stored
    assert normalize_session_dir(stored, ROOTS) == stored
    assert normalize_session_dir(Path(rel), ROOTS) == stored


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
    with pytest.raises(SessionNotFoundError, match="has no directory"):
        get_session_directory(NO_DIR, sessions, roots)
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


def test_importing_reads_no_environment_and_touches_no_database():
    code = (
        f"import os; os.environ[{ROOT_DIRS_ENV!r}] = '/before'\n"
        "import element_session.paths as p\n"
        f"os.environ[{ROOT_DIRS_ENV!r}] = '/after'\n"
        "print(*p.get_root_dirs())\n"
    )
    unreachable = {"DJ_HOST": "127.0.0.1", "DJ_PORT": "1", "DJ_USER": "nobody", "DJ_IGNORE_CONFIG_FILE": "1"}
    child = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **unreachable}, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "/after"
