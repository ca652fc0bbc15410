"""Root data directories and session_dir normalisation, without a database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from element_session.errors import SessionDirectoryError
from element_session.paths import (
    ROOT_DIRS_ENV,
    get_root_dirs,
    normalize_session_dir,
    set_root_dirs,
)

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
