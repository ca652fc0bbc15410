"""Root data directories, and the session directory of a session in both directions.

Root data directories are configured in one place, the environment variable ``SESSION_ROOT_DIRS``
(paths separated by :data:`os.pathsep`); :func:`set_root_dirs` overrides it by writing that same
variable, so that worker processes started afterwards inherit it. Nothing is read at import.

``SessionDirectory.session_dir`` holds a path relative to a root, as :func:`normalize_session_dir`
makes it: ``/``-separated, without ``.`` parts, empty parts or a trailing ``/``.

**Backslashes** are path separators, on every operating system: Windows acquisition machines
write ``rig1\\mouse1\\2024-03-04``, which is stored as ``rig1/mouse1/2024-03-04``. A POSIX file
name that itself contains a backslash therefore cannot be part of a session directory. Likewise
``C:\\...`` and ``C:/...`` (a drive letter) and ``\\\\server\\share\\...`` are absolute paths
anywhere, and compared with the roots like any other absolute path; ``C:rel`` (relative to a
drive's current directory) is rejected.
"""

from __future__ import annotations

import os
import pathlib
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from .errors import DirectoryNotFoundError, SessionDirectoryError, SessionNotFoundError
from .formats import key_text
from .lookups import as_stored, check_lookups
from .pipeline import session_module_of

#: The environment variable that lists the root data directories.
ROOT_DIRS_ENV = "SESSION_ROOT_DIRS"

#: Width of ``SessionDirectory.session_dir``: a longer path is an error, never truncated.
MAX_SESSION_DIR_LENGTH = 256

_DRIVE = re.compile(r"[A-Za-z]:")
_CONTROL_OR_SURROGATE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # Unicode categories Cc and Cs
_HOW_TO_CONFIGURE = f"set the environment variable {ROOT_DIRS_ENV} or call element_session.paths.set_root_dirs()"

PathInput = str | os.PathLike


# --------------------------------------------------------------------------- configuration


def get_root_dirs() -> list[pathlib.Path]:
    """The root data directories, in order, from the environment variable ``SESSION_ROOT_DIRS``.

    The variable holds paths separated by :data:`os.pathsep`; empty parts are ignored, so an unset
    or empty variable means no roots.
    """
    value = os.environ.get(ROOT_DIRS_ENV, "")
    return [pathlib.Path(part) for part in value.split(os.pathsep) if part.strip()]


#: The root-directory functions that published downstream elements look up in their linking module
#: (element-array-ephys, element-calcium-imaging, element-miniscope, element-deeplabcut,
#: element-facemap, element-event). Each is :func:`get_root_dirs`: every modality's raw data lies
#: under the session roots. A lab that keeps a modality elsewhere defines its own function of that
#: name in its linking module instead of importing this one.
get_ephys_root_data_dir = get_root_dirs
get_imaging_root_data_dir = get_root_dirs
get_miniscope_root_data_dir = get_root_dirs
get_dlc_root_data_dir = get_root_dirs
get_facemap_root_data_dir = get_root_dirs
get_experiment_root_data_dir = get_root_dirs


def set_root_dirs(dirs: Sequence[PathInput]) -> None:
    """Configure the root data directories, overriding ``SESSION_ROOT_DIRS``.

    The roots are made absolute (against the current directory) and written to the environment
    variable itself, the one place of configuration: child processes started later inherit them.
    An empty sequence configures no roots.

    Raises :class:`~element_session.errors.SessionDirectoryError` for a single path instead of a
    list, an empty entry, or an entry holding the separator or a control character.
    """
    if isinstance(dirs, str | bytes | os.PathLike):
        raise SessionDirectoryError(f"set_root_dirs() takes a list of directories, not a single path: {dirs!r}")
    dirs = list(dirs)
    values: list[str] = []
    for entry in dirs:
        text = _as_text(entry, "root data directory")
        if not text.strip():
            raise SessionDirectoryError(f"root data directory {entry!r} is empty (in {dirs!r})")
        if os.pathsep in text:
            raise SessionDirectoryError(
                f"root data directory {text!r} contains {os.pathsep!r}, the separator of {ROOT_DIRS_ENV}; "
                "give each root as its own list item"
            )
        _check_characters(text, f"root data directory {text!r}")
        values.append(text if _is_anchored(text) else os.path.abspath(text))
    os.environ[ROOT_DIRS_ENV] = os.pathsep.join(values)


# --------------------------------------------------------------------------- normalisation


def normalize_session_dir(path: PathInput, roots: Sequence[PathInput] | None = None) -> str:
    """The form of ``path`` stored in ``SessionDirectory.session_dir``.

    A relative path is cleaned: backslashes become ``/``, and ``.`` parts, empty parts and a
    trailing ``/`` are dropped. An absolute path is made relative to the first root that contains
    it (compared after normalisation, without resolving symbolic links). ``roots=None`` means
    :func:`get_root_dirs`; a relative path needs no roots.

    Raises :class:`SessionDirectoryError`, naming the value and the roots, for an empty path, a
    path that is a root itself, a ``..`` part, a NUL or other control character, an absolute path
    outside every root, or a result longer than the column's 256 characters.
    """
    parts = _relative_parts(path, roots)
    result = "/".join(parts)
    if len(result) > MAX_SESSION_DIR_LENGTH:
        raise SessionDirectoryError(
            f"session directory {os.fspath(path)!r} is {len(result)} characters long relative to its root; "
            f"session_dir holds at most {MAX_SESSION_DIR_LENGTH} (it is never truncated)"
        )
    return result


def _relative_parts(path: PathInput, roots: Sequence[PathInput] | None) -> list[str]:
    """The parts of ``path`` relative to a root: every check of :func:`normalize_session_dir` but the length."""
    text = _as_text(path, "session directory")
    _check_characters(text, f"session directory {text!r}")
    if not text.strip():  # a blank cell, not a directory named by spaces
        raise SessionDirectoryError(f"session directory {text!r} is empty: give a path relative to a root")
    anchor, raw = _split(text)
    if ".." in raw:
        raise SessionDirectoryError(
            f"session directory {text!r} contains a '..' part: it must stay inside its root data directory"
        )
    parts = [p for p in raw if p not in ("", ".")]
    if anchor is None:
        if not parts:
            raise SessionDirectoryError(f"session directory {text!r} is empty: give a path relative to a root")
        return parts
    if anchor.endswith(":"):
        raise SessionDirectoryError(
            f"session directory {text!r} is relative to the current directory of drive {anchor}; "
            f"give the full path ({anchor}\\...) or a path relative to a root"
        )
    root_list = _root_texts(roots)
    for root in root_list:
        root_anchor, root_parts = _split_root(root)
        n = len(root_parts)
        if _fold(root_anchor) == _fold(anchor) and [_fold(p) for p in parts[:n]] == [_fold(p) for p in root_parts]:
            if len(parts) == n:
                raise SessionDirectoryError(
                    f"session directory {text!r} is the root data directory {root!r} itself; "
                    "a session's directory must be below a root"
                )
            return parts[n:]
    if not root_list:
        raise SessionDirectoryError(
            f"session directory {text!r} is absolute, but no root data directories are configured to make it "
            f"relative to: {_HOW_TO_CONFIGURE}"
        )
    raise SessionDirectoryError(
        f"session directory {text!r} is outside every root data directory ({_describe_roots(root_list)}); "
        "move the data under a root or add its root"
    )


def _as_text(value: object, what: str) -> str:
    try:
        text = os.fspath(value)  # type: ignore[call-overload]
    except TypeError:
        raise SessionDirectoryError(f"{what} {value!r} is a {type(value).__name__}, not a path") from None
    if not isinstance(text, str):
        raise SessionDirectoryError(f"{what} {value!r} is bytes; give it as text (str or pathlib.Path)")
    return text


def _check_characters(text: str, what: str) -> None:
    found = _CONTROL_OR_SURROGATE.search(text)  # the first character of category Cc or Cs, if any
    if found is not None:
        index, char = found.start(), found[0]
        category = unicodedata.category(char)
        if category == "Cc":
            raise SessionDirectoryError(f"{what} contains the control character {char!r} at position {index}")
        if category == "Cs":
            raise SessionDirectoryError(
                f"{what} contains the lone surrogate {char!r} at position {index} (a file name that is not valid "
                "text); rename the file or directory"
            )


def _split(text: str) -> tuple[str | None, list[str]]:
    """``(anchor, parts)`` of a path with backslashes as separators; anchor ``None`` for a relative path.

    Anchors: ``/``, ``//`` (a UNC ``\\\\server\\share``), ``C:/`` (drive letter), ``C:`` (drive-relative).
    """
    text = text.replace("\\", "/")
    if text.startswith("//") and not text.startswith("///"):
        return "//", text[2:].split("/")
    if text.startswith("/"):
        return "/", text.split("/")
    if _DRIVE.match(text):
        if text[2:3] == "/":
            return text[:2].upper() + "/", text[3:].split("/")
        return text[:2].upper(), text[2:].split("/")
    return None, text.split("/")


def _split_root(root: str) -> tuple[str | None, list[str]]:
    """Anchor and parts of a root made absolute, with ``.`` and ``..`` resolved as os.path.normpath does."""
    if not _is_anchored(root):
        root = os.path.abspath(root)
    anchor, raw = _split(root)
    parts: list[str] = []
    for part in raw:
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return anchor, parts


def _is_anchored(text: str) -> bool:
    anchor, _ = _split(text)
    return anchor is not None and not anchor.endswith(":")


def _fold(text: str | None) -> str | None:
    """A path part as the operating system compares it (case-insensitive on Windows)."""
    return None if text is None else os.path.normcase(text)


def _root_texts(roots: Sequence[PathInput] | None) -> list[str]:
    if roots is None:
        return [str(root) for root in get_root_dirs()]
    if isinstance(roots, str | bytes | os.PathLike):
        raise SessionDirectoryError(f"roots must be a list of directories, not a single path: {roots!r}")
    return [_as_text(root, "root data directory") for root in roots]


def _describe_roots(roots: Sequence[str]) -> str:
    return "roots tried: " + ", ".join(repr(root) for root in roots) if roots else "no roots configured"


# --------------------------------------------------------------------------- resolution


def find_full_path(roots: Sequence[PathInput], relative_path: str) -> pathlib.Path:
    """The first root under which ``relative_path`` exists, joined with it.

    ``relative_path`` is normalised as by :func:`normalize_session_dir` (an absolute path under a
    root is accepted). Raises :class:`DirectoryNotFoundError`, naming every root tried, when it
    exists under none.
    """
    root_list = _root_texts(roots)
    relative = normalize_session_dir(relative_path, root_list)
    return _first_under(root_list, relative, pathlib.Path.exists, f"path {relative!r}")


def _first_under(
    roots: Sequence[str], relative: str, exists: Callable[[pathlib.Path], bool], subject: str
) -> pathlib.Path:
    """``root/relative`` for the first root where ``exists`` holds; ``subject`` names it in the error."""
    if not roots:
        raise DirectoryNotFoundError(
            f"{subject} cannot be found: no root data directories are configured; {_HOW_TO_CONFIGURE}"
        )
    for root in roots:
        candidate = pathlib.Path(os.path.abspath(root), *relative.split("/"))
        try:
            if exists(candidate):
                return candidate
        except OSError:  # e.g. a root whose name is longer than the file system allows: not there
            continue
    tried = ", ".join(repr(os.path.abspath(root)) for root in roots)
    raise DirectoryNotFoundError(f"{subject} exists under none of the root data directories; roots tried: {tried}")


def get_session_directory(
    key: Mapping[str, Any],
    session_module: ModuleType | None = None,
    roots: Sequence[PathInput] | None = None,
) -> pathlib.Path:
    """The absolute raw-data directory of the session ``key``: the first root in which it exists.

    This is the ``get_session_directory(session_key)`` that published downstream elements (e.g.
    element-array-ephys) call through their linking module: import it there. They pass the result to
    element-interface's ``find_full_path(roots, path)``, which returns an absolute path unchanged.

    ``key`` must hold every primary-key attribute of ``Session`` (other keys, such as a downstream
    table's own, are ignored). ``session_module`` is an activated session module; by default the
    activated variant whose ``Session`` holds ``key``. ``roots=None`` means :func:`get_root_dirs`.

    Raises :class:`SessionNotFoundError` if ``key`` names no session, or a session without a
    ``SessionDirectory`` row, :class:`DirectoryNotFoundError`, naming the relative directory
    and every root tried, if the directory exists under none of the roots, and
    :class:`~element_session.errors.InputError` naming the attribute for a key value that cannot be
    looked up (None, a float NaN or another missing value of pandas, a list, a number for a text attribute;
    :mod:`element_session.lookups`).
    """
    if not isinstance(key, Mapping):
        raise SessionNotFoundError(f"the session key must be a dict of its primary key, not {type(key).__name__}")
    module = session_module or session_module_of(key)
    table = module.SessionDirectory()
    names = list(module.Session.primary_key)
    missing = [name for name in names if name not in key]
    if missing:
        raise SessionNotFoundError(
            f"session key {key_text(key)} lacks {', '.join(missing)}: it must give every attribute of "
            f"Session's primary key ({', '.join(names)}) to name one session"
        )
    check_lookups("arguments", {f"key[{name!r}]": key[name] for name in names}, required=True)
    restriction = as_stored(module.Session, {name: key[name] for name in names}, argument="key")
    rows = (table & restriction).to_dicts()
    if not rows:
        if len(module.Session() & restriction) == 0:
            raise SessionNotFoundError(f"no session {key_text(restriction)} in schema {module.Session.database}")
        raise SessionNotFoundError(
            f"session {key_text(restriction)} has no directory: none is stored for it (SessionDirectory, "
            f"schema {module.Session.database}); give it one with ingest (column session_dir) or the web's edit form"
        )
    root_list = _root_texts(roots)
    relative = normalize_session_dir(rows[0]["session_dir"], root_list)
    subject = f"directory {relative!r} of session {key_text(restriction)}"
    return _first_under(root_list, relative, pathlib.Path.is_dir, subject)


def find_session_key(
    path: PathInput,
    session_module: ModuleType | None = None,
    roots: Sequence[PathInput] | None = None,
) -> dict[str, Any]:
    """The primary key of the session whose directory is ``path`` or contains it.

    ``path`` is a session directory or any file or directory below it: absolute under a root, or
    relative to one (``roots=None`` means :func:`get_root_dirs`). Every ancestor of the relative
    path is looked up in ``SessionDirectory`` in one query; the longest match wins.

    Raises :class:`SessionNotFoundError` when no session directory contains ``path``, and
    :class:`SessionDirectoryError` when ``path`` itself is invalid (outside every root, a ``..``
    part, ...) or when several sessions share the matching directory.
    """
    module = session_module or session_module_of()
    table = module.SessionDirectory()
    parts = _relative_parts(path, roots)
    relative = "/".join(parts)
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    prefixes = [prefix for prefix in prefixes if len(prefix) <= MAX_SESSION_DIR_LENGTH]
    rows = (table & [{"session_dir": prefix} for prefix in prefixes]).to_dicts() if prefixes else []
    rows = [row for row in rows if row["session_dir"] in prefixes]  # exact: some collations ignore trailing spaces
    if not rows:
        raise SessionNotFoundError(
            f"no session's directory contains {os.fspath(path)!r} (looked for {relative!r} and its parents "
            f"in `{table.full_table_name}`)"
        )
    longest = max(len(row["session_dir"]) for row in rows)
    matches = [row for row in rows if len(row["session_dir"]) == longest]
    keys = [{name: row[name] for name in table.primary_key} for row in matches]
    if len(keys) > 1:
        raise SessionDirectoryError(
            f"{os.fspath(path)!r} is in directory {matches[0]['session_dir']!r}, which {len(keys)} sessions share: "
            + "; ".join(repr(k) for k in keys)
        )
    return keys[0]


# --------------------------------------------------------------------------- every session's directory

#: ``status`` of a row of :func:`session_directories`.
FOUND, MISSING, UNRESOLVED, NOT_STORED = "found", "missing", "unresolved", "not stored"


def session_directories(
    session_module: ModuleType | None = None, roots: Sequence[PathInput] | None = None, sessions: Any = None
) -> pd.DataFrame:
    """Every session with its resolved directory: one row per session, none left out.

    With ``sessions`` (a query expression of ``Session``, e.g. :func:`~element_session.query.find_sessions`),
    the rows of those sessions only.

    Returns a pandas DataFrame sorted by key, with the columns of ``Session``'s primary key (the
    dtypes of :func:`~element_session.query.session_table`: ``session_datetime``
    ``datetime64[us, UTC]``, ``session_id`` ``Int64``, text ``string``), then pandas ``string``
    columns ``session_dir`` (as stored), ``directory`` (the absolute directory, ``<NA>`` unless
    found), ``status`` and ``reason`` (``''`` where found):

    - ``found``: the directory exists under a root (the first such root is taken);
    - ``missing``: a valid relative path that exists under no root;
    - ``unresolved``: a stored value that is not a valid path relative to a root (e.g. an absolute
      Windows path outside every root, as the published element stored them), or a directory that
      cannot be checked; ``reason`` says why;
    - ``not stored``: the session has no ``SessionDirectory`` row (``session_dir`` ``<NA>``), so
      nothing downstream can find its files.

    A row that cannot be resolved never hides the others. ``roots=None`` means :func:`get_root_dirs`.
    Raises :class:`SessionDirectoryError` only for unusable ``roots`` themselves.
    """
    import pandas as pd  # imported when called: the other path functions do without pandas

    from .session_frame import key_frame

    module = session_module or session_module_of()
    root_list = _root_texts(roots)
    keys = list(module.Session.primary_key)
    chosen = module.Session() if sessions is None else module.Session & sessions.proj()
    rows = (module.SessionDirectory & chosen.proj()).to_dicts()
    rows += [{**key, "session_dir": None} for key in (chosen - module.SessionDirectory).proj().to_dicts()]
    rows.sort(key=lambda r: tuple((r[k] is None, str(r[k])) for k in keys))
    frame = key_frame(rows, module)
    frame["session_dir"] = pd.Series([row["session_dir"] for row in rows], dtype=pd.StringDtype())
    resolved = [
        _resolve(row["session_dir"], root_list) if row["session_dir"] is not None else _NOT_STORED for row in rows
    ]
    for position, name in enumerate(("directory", "status", "reason")):
        frame[name] = pd.Series([r[position] for r in resolved], dtype=pd.StringDtype())
    return frame


_NOT_STORED = (None, NOT_STORED, "no directory is stored for this session")


def _resolve(stored: str, roots: list[str]) -> tuple[str | None, str, str]:
    """``(directory, status, reason)`` of one stored ``session_dir``."""
    try:
        relative = normalize_session_dir(stored, roots)
        return str(_first_under(roots, relative, pathlib.Path.is_dir, f"directory {relative!r}")), FOUND, ""
    except DirectoryNotFoundError as err:
        return None, MISSING, str(err)
    except SessionDirectoryError as err:
        return None, UNRESOLVED, str(err)
    except OSError as err:  # e.g. a part longer than the file system allows, or no permission to look
        return None, UNRESOLVED, f"directory {stored!r} cannot be checked: {err}"
