"""Downstream of sessions: an inventory of each session's raw-data directory, and a summary of it.

``SessionInventory`` (Imported) scans the directory of a session, found through its
``SessionDirectory`` row and the root data directories (``SESSION_ROOT_DIRS``): every file below
it with its size, modification time and SHA-256. ``FileTypeSummary`` (Computed) adds up bytes
and files per file type. Both fill with ``populate``; see ``docs/populate.md``.

Activate with :func:`activate` after the session schema; the tables reference ``session.Session``
of the session module given there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import pathlib
from collections import defaultdict
from types import ModuleType
from typing import Any

import datajoint as dj

from element_session.errors import ElementSessionError
from element_session.linking import activate_downstream
from element_session.paths import get_session_directory
from element_session.status import ACQUIRED_OR_LATER, KeysInStatus

schema = dj.Schema()

#: Width of ``SessionInventory.File.file_path``: a longer relative path is an error, never truncated.
MAX_FILE_PATH_LENGTH = 512
#: Width of ``FileTypeSummary.FileType.file_type``: a longer extension counts as no extension.
MAX_FILE_TYPE_LENGTH = 32
_CHUNK = 1 << 20


class InventoryError(ElementSessionError):
    """Raised when a session directory cannot be inventoried (a file path too long to store)."""


def activate(
    schema_name: str,
    *,
    session_module: ModuleType,
    create_schema: bool = True,
    create_tables: bool = True,
) -> None:
    """Activate the inventory tables in the database schema ``schema_name``.

    ``session_module`` is the activated session module (``element_session.session_with_datetime``
    or ``element_session.session_with_id``) whose ``Session`` the tables depend on and whose
    ``SessionDirectory`` locates the raw data. Activating again under the same name does nothing.
    """
    activate_downstream(
        schema,
        schema_name,
        session_module=session_module,
        tables=(SessionInventory, FileTypeSummary),
        create_schema=create_schema,
        create_tables=create_tables,
    )


def _session_module() -> ModuleType:
    """The session module the schema was activated with."""
    return schema.add_objects["session"]


def _utc(ns: int) -> dt.datetime:
    """A POSIX time in nanoseconds as a naive UTC datetime, exact to the microsecond."""
    seconds, rest = divmod(ns, 10**9)
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).replace(tzinfo=None) + dt.timedelta(microseconds=rest // 1000)


def list_files(directory: pathlib.Path) -> list[tuple[str, int, int]]:
    """``(relative path with '/', size, mtime in ns)`` of every file below ``directory``, sorted.

    Symbolic links to files are followed; linked directories are not entered; anything else that
    is not a regular file (a broken link, a socket) is left out.
    """
    found = []
    for parent, dirs, names in os.walk(directory):
        dirs.sort()
        for name in names:
            path = pathlib.Path(parent, name)
            try:
                stat = path.stat()
            except FileNotFoundError:  # a broken link, or a file removed while walking
                continue
            if path.is_file():
                found.append((path.relative_to(directory).as_posix(), stat.st_size, stat.st_mtime_ns))
    return sorted(found)


def sha256(path: pathlib.Path) -> str:
    """The SHA-256 of a file's content, read in chunks, as hex."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_type(path: str) -> str:
    """The file type of a relative path: its last extension, lower case, without the dot ('' for none)."""
    suffix = pathlib.PurePosixPath(path).suffix.lower()[1:]
    return suffix if len(suffix) <= MAX_FILE_TYPE_LENGTH else ""


@schema
class SessionInventory(dj.Imported):
    """The inventory of one session's raw-data directory, as found when it was scanned."""

    definition = """
    # files in the raw-data directory of a session
    -> session.Session
    ---
    session_path: varchar(1024)  # absolute directory scanned: the session directory under the first root holding it
    file_count: int32  # number of files below the directory, at any depth
    total_bytes: int64  # sum of the sizes of those files
    newest_mtime=null: datetime(6)  # newest modification time of a file, UTC (null when there is no file)
    scan_time: datetime(6)  # when the directory was scanned, UTC
    """
    key_source = KeysInStatus(*ACQUIRED_OR_LATER)  # not planned, acquiring or aborted sessions (docs/status.md)

    class File(dj.Part):
        """One file below a session's directory."""

        definition = """
        # a file of the session's raw data
        -> master
        file_path: varchar(512)  # path relative to the session directory, '/'-separated
        ---
        file_size: int64  # size in bytes
        file_mtime: datetime(6)  # last modification time, UTC
        file_sha256: char(64)  # SHA-256 of the content, hex
        """

    def make_fetch(self, key: dict[str, Any]) -> tuple[str, list[tuple[str, int, int]]]:
        """The session's directory and its files' paths, sizes and times (raises if the directory is missing).

        DataJoint calls this again just before inserting: if a file was added, removed or changed
        while the checksums were computed, the two answers differ and the key fails (run it again).
        """
        directory = get_session_directory(key, session_module=_session_module())
        return str(directory), list_files(directory)

    def make_compute(
        self, key: dict[str, Any], directory: str, files: list[tuple[str, int, int]]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The inventory row and its file rows; reads every file for its checksum."""
        rows = []
        for path, size, mtime_ns in files:
            if len(path) > MAX_FILE_PATH_LENGTH:
                raise InventoryError(
                    f"file {path!r} in {directory!r} has a path of {len(path)} characters relative to the "
                    f"session directory; SessionInventory.File.file_path holds at most {MAX_FILE_PATH_LENGTH}"
                )
            rows.append(
                {
                    **key,
                    "file_path": path,
                    "file_size": size,
                    "file_mtime": _utc(mtime_ns),
                    "file_sha256": sha256(pathlib.Path(directory, *path.split("/"))),
                }
            )
        master = {
            **key,
            "session_path": directory,
            "file_count": len(rows),
            "total_bytes": sum(size for _, size, _ in files),
            "newest_mtime": _utc(max(mtime for _, _, mtime in files)) if files else None,
            "scan_time": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        }
        return master, rows

    def make_insert(self, key: dict[str, Any], master: dict[str, Any], files: list[dict[str, Any]]) -> None:
        """Insert the inventory and its files (one transaction, opened by populate)."""
        self.insert1(master)
        if files:
            self.File.insert(files)


@schema
class FileTypeSummary(dj.Computed):
    """The files of one session's inventory added up per file type."""

    definition = """
    # bytes and file counts per file type of a session's raw data
    -> SessionInventory
    ---
    n_file_types: int32  # number of distinct file types
    """

    class FileType(dj.Part):
        """The files of one type in one session."""

        definition = """
        # files of one type in a session
        -> master
        file_type: varchar(32)  # last extension of the file name, lower case, without the dot ('' for none)
        ---
        file_count: int32  # number of files of this type
        total_bytes: int64  # sum of their sizes
        """

    def make(self, key: dict[str, Any]) -> None:
        """Add up the inventory's files of ``key`` per file type."""
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for row in (SessionInventory.File & key).proj("file_size").to_dicts():
            entry = counts[file_type(row["file_path"])]
            entry[0] += 1
            entry[1] += row["file_size"]
        self.insert1({**key, "n_file_types": len(counts)})
        if counts:
            self.FileType.insert(
                [{**key, "file_type": kind, "file_count": n, "total_bytes": size} for kind, (n, size) in counts.items()]
            )
