"""The transfer bundle: one zip file of ``manifest.json`` and one Parquet file of rows per table.

The format is described in ``docs/transfer.md``. Tables are named by their role in the pipeline
(``session.Session``, ``subject.Subject``), never by the source's schema names, so a bundle imports
under any schema prefix. Values are the ones the database stores: a blob is the bytes DataJoint
wrote (Parquet ``large_binary``), a time keeps its microseconds (``timestamp[us]``). Each table's
file has its SHA-256 in the manifest: :func:`open_bundle` refuses a bundle whose files changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import BundleError, FormatError, OutputExistsError, not_json

#: The version of the bundle format this code writes and the newest it reads.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Column:
    """One column of a table as the bundle records it.

    ``type`` is the portable type (DataJoint's core type such as ``int32``, ``datetime``,
    ``varchar(32)``, or the codec such as ``<blob>``), compared with the target's on import.
    """

    name: str
    type: str
    in_key: bool
    nullable: bool


@dataclass
class TableEntry:
    """One table of a bundle: its role, its columns, how many rows and the SHA-256 of its file."""

    role: str
    tier: str
    definition: str
    columns: list[Column]
    rows: int = 0
    sha256: str = ""

    @property
    def file(self) -> str:
        """The name of the table's Parquet file inside the zip file."""
        return f"tables/{self.role}.parquet"

    @property
    def primary_key(self) -> list[str]:
        """The names of the primary-key columns."""
        return [c.name for c in self.columns if c.in_key]

    @property
    def column_names(self) -> list[str]:
        """The names of the columns, in the order of the rows' values."""
        return [c.name for c in self.columns]


@dataclass
class Manifest:
    """What a bundle holds and where it comes from (``manifest.json``)."""

    product_version: str
    source_backend: str
    created: str
    account: str
    selection: dict[str, Any]
    downstream: bool
    tables: list[TableEntry] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        """The manifest as the JSON text stored in the bundle."""
        return json.dumps(dataclasses.asdict(self), indent=1, ensure_ascii=False, default=str)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """The manifest read from its JSON text.

        Raises
        ------
        BundleError
            The text is not a manifest, or one of a newer format version than this code reads.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise BundleError(f"{MANIFEST} is {not_json(err)}") from None
        except ValueError as err:  # e.g. text that is not UTF-8
            raise BundleError(f"{MANIFEST} cannot be read: {err}") from None
        problem = _shape_problem("the manifest", data, _MANIFEST_FIELDS, only=["format_version"])
        if problem:
            raise BundleError(f"{MANIFEST} cannot be read: {problem}")
        version = data["format_version"]
        if version > FORMAT_VERSION:
            raise BundleError(
                f"the bundle has format version {version}; this element-session reads versions up to "
                f"{FORMAT_VERSION}: upgrade element-session to import it"
            )
        problem = _shape_problem("the manifest", data, _MANIFEST_FIELDS)
        for n, table in enumerate(data["tables"] if problem is None else []):
            problem = _shape_problem(f"tables[{n}]", table, _TABLE_FIELDS)
            for c, column in enumerate(table["columns"] if problem is None else []):
                problem = problem or _shape_problem(f"tables[{n}].columns[{c}]", column, _COLUMN_FIELDS)
            if problem:
                break
        if problem:
            raise BundleError(f"{MANIFEST} cannot be read: {problem}")
        tables = [
            TableEntry(
                **_known(t, _TABLE_FIELDS) | {"columns": [Column(**_known(c, _COLUMN_FIELDS)) for c in t["columns"]]}
            )
            for t in data["tables"]
        ]
        return cls(**_known(data, _MANIFEST_FIELDS) | {"tables": tables})


#: The fields of the manifest, of each of its tables and of each table's columns, and their JSON types.
_MANIFEST_FIELDS = {
    "format_version": int,
    "product_version": str,
    "source_backend": str,
    "created": str,
    "account": str,
    "selection": dict,
    "downstream": bool,
    "tables": list,
}
_TABLE_FIELDS = {"role": str, "tier": str, "definition": str, "columns": list, "rows": int, "sha256": str}
_COLUMN_FIELDS = {"name": str, "type": str, "in_key": bool, "nullable": bool}
_JSON_TYPES = {int: "a whole number", str: "text", dict: "an object", bool: "true or false", list: "a list"}


def _shape_problem(where: str, data: object, fields: Mapping[str, type], only: Sequence[str] = ()) -> str | None:
    """What is wrong with the JSON object ``data`` (named ``where``) for ``fields``, or None; ``only``: these fields."""
    if not isinstance(data, dict):
        return f"{where} is not a JSON object"
    for name in only or fields:
        kind = fields[name]
        if name not in data:
            return f"{where} lacks the field {name!r}"
        value = data[name]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            return f"{where}'s field {name!r} is not {_JSON_TYPES[kind]} (it is {json.dumps(value)[:40]})"
        if isinstance(value, int) and value < (1 if name == "format_version" else 0):
            return f"{where}'s field {name!r} is out of range (it is {value})"
    return None


def _known(data: Mapping[str, Any], fields: Mapping[str, type]) -> dict[str, Any]:
    """The items of ``data`` that are ``fields`` (a field a later minor version adds is left out)."""
    return {name: data[name] for name in fields}


def now_text() -> str:
    """The current time as the manifest records it: ISO 8601, UTC, microseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


#: The Arrow type of a column of a DataJoint core type, for a column whose values do not tell it
#: (an empty table, or NULL in every row): so that pandas and pyarrow read the type documented
#: (docs/transfer.md) and not Arrow's ``null``. Other types (``decimal``, ``time``) stay as inferred.
_ARROW_TYPES: dict[str, pa.DataType] = {
    **{f"int{n}": getattr(pa, f"int{n}")() for n in (8, 16, 32, 64)},
    **{f"uint{n}": getattr(pa, f"uint{n}")() for n in (8, 16, 32, 64)},
    "float32": pa.float32(), "float64": pa.float64(), "bool": pa.bool_(),
    "datetime": pa.timestamp("us"), "date": pa.date32(),
    "varchar": pa.string(), "char": pa.string(), "enum": pa.string(), "json": pa.string(), "uuid": pa.string(),
}  # fmt: skip


def arrow_type(portable: str) -> pa.DataType | None:
    """The Arrow type of a column's portable type (``int32``, ``varchar(32)``, ``<blob>``); None: inferred."""
    if portable.startswith("<"):
        return pa.large_binary()
    return _ARROW_TYPES.get(portable.split("(", 1)[0].strip().lower())


def table_of(entry: TableEntry, columns: Mapping[str, Sequence[Any]]) -> pa.Table:
    """The rows of one table, given column by column, as an Arrow table sorted by the primary key.

    ``columns`` maps each of ``entry``'s column names to its values, one per row (every sequence
    of the same length). Blobs (a codec's column, or any bytes-like values) become ``large_binary``;
    everything else is typed by its values, and a column without a value (no row, or NULL in
    every row) by its portable type (:func:`arrow_type`).

    Raises
    ------
    FormatError
        A column whose values Parquet cannot hold as they are (naming table and column).
    """
    arrays = {}
    for column in entry.columns:
        values = columns[column.name]
        try:
            if column.type.startswith("<"):
                arrays[column.name] = pa.array(values, type=pa.large_binary())
            else:
                array = pa.array(values)
                if array.type == pa.null() and arrow_type(column.type) is not None:
                    array = pa.array(values, type=arrow_type(column.type))
                arrays[column.name] = array.cast(pa.large_binary()) if array.type == pa.binary() else array
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise FormatError(f"{entry.role}.{column.name}: its values cannot be written to Parquet: {err}") from None
    table = pa.table(arrays) if arrays else pa.table({})
    if entry.primary_key and table.num_rows:  # key columns are never NULL
        table = table.take(pc.sort_indices(table, sort_keys=[(name, "ascending") for name in entry.primary_key]))
    return table


def encode_table(table: pa.Table) -> bytes:
    """An Arrow table as the bytes of a Parquet file."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def encode_rows(entry: TableEntry, rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The rows of one table as a Parquet file (:func:`table_of`, from rows as dicts).

    Raises
    ------
    FormatError
        A column whose values Parquet cannot hold as they are (naming table and column).
    """
    return encode_table(table_of(entry, {c.name: [row[c.name] for row in rows] for c in entry.columns}))


def decode_rows(data: bytes) -> list[dict[str, Any]]:
    """The rows of a table's Parquet file, as dicts of Python values (datetimes naive, microseconds).

    Read on the calling thread alone (``use_threads=False``, and ``pre_buffer=False``, which would read
    ahead on pyarrow's I/O thread pool): a command that refuses the bundle exits right after, and
    pyarrow's thread pools torn down by the interpreter's exit while one of their threads lived
    aborted the process ("terminate called without an active exception", exit -6; seen twice in
    tests/test_transfer.py on MariaDB; apache/arrow#34314).
    """
    return read_parquet(data).to_pylist()


def read_parquet(data: bytes) -> pa.Table:
    """The Arrow table of a Parquet file's bytes, read on the calling thread (see :func:`decode_rows`)."""
    return pq.read_table(io.BytesIO(data), use_threads=False, pre_buffer=False)


def write_bundle(
    path: str | os.PathLike, manifest: Manifest, files: Iterable[tuple[TableEntry, bytes]], overwrite: bool = False
) -> Path:
    """Write the bundle to ``path`` (put there at once when complete: never a half-written file there).

    Each entry's ``sha256`` and the manifest are filled in from ``files``. Without ``overwrite`` the
    complete file is linked to ``path`` only where nothing is there (``os.link`` fails on an existing
    name: two exports to one path never replace each other's file).

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(handle, "wb") as stream, zipfile.ZipFile(stream, "w", zipfile.ZIP_STORED) as bundle:
            for entry, data in files:
                entry.sha256 = hashlib.sha256(data).hexdigest()
                bundle.writestr(entry.file, data)
            bundle.writestr(MANIFEST, manifest.to_json())
        _put(Path(temporary), path, overwrite)
    except FileExistsError:
        raise OutputExistsError(path) from None
    finally:
        Path(temporary).unlink(missing_ok=True)  # gone after os.replace; after os.link ``path`` holds the file
    return path


def _put(temporary: Path, path: Path, overwrite: bool) -> None:
    """Give the complete file ``temporary`` the name ``path`` (FileExistsError: taken, without ``overwrite``)."""
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: checked, then renamed
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(temporary, path)


class Bundle:
    """A bundle opened and checked: its manifest, and the rows of each table.

    Opening reads every table's file and checks its SHA-256 against the manifest, so that a bundle
    changed after export is refused before anything is written.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            with zipfile.ZipFile(self.path) as bundle:
                self.manifest = Manifest.from_json(bundle.read(MANIFEST))
                self._files = {entry.role: bundle.read(entry.file) for entry in self.manifest.tables}
        except KeyError as err:  # zipfile: "There is no item named ... in the archive"
            member = str(err.args[0]).split("'")[1] if "'" in str(err.args[0]) else MANIFEST
            raise BundleError(f"{str(self.path)!r} is not a complete bundle: it lacks the file {member}") from None
        except FileNotFoundError:
            raise BundleError(f"no bundle at {str(self.path)!r}") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
            detail = str(err)  # zipfile's text only where it names a member ("Bad CRC-32 for file '...'")
            said = f": {detail[:1].lower()}{detail[1:]}" if "'" in detail else " (truncated or not a zip file)"
            raise BundleError(f"{str(self.path)!r} is not a complete bundle{said}") from None
        except OSError as err:  # a directory, a file that may not be read
            raise BundleError(f"cannot read the bundle {str(self.path)!r}: {err.strerror or err}") from None
        for entry in self.manifest.tables:
            if hashlib.sha256(self._files[entry.role]).hexdigest() != entry.sha256:
                raise BundleError(
                    f"table {entry.role} in {str(self.path)!r} was changed after export: its SHA-256 differs "
                    "from the manifest's",
                    entry.role,
                )

    def rows(self, entry: TableEntry) -> tuple[list[tuple[Any, ...]], int]:
        """The rows of one of the manifest's tables, each a tuple of values in the order of ``entry.columns``,
        and the bytes their values take (Arrow's, uncompressed).

        Raises
        ------
        BundleError
            The file is not Parquet, lacks one of the manifest's columns, or its row count differs
            from the manifest's.
        """
        try:
            table = read_parquet(self._files[entry.role])
            columns = [table.column(column.name).to_pylist() for column in entry.columns]
        except (pa.ArrowException, OSError, KeyError) as err:
            raise BundleError(f"table {entry.role}: its rows cannot be read: {err}", entry.role) from None
        if table.num_rows != entry.rows:
            raise BundleError(f"table {entry.role}: {table.num_rows} rows, the manifest says {entry.rows}", entry.role)
        rows = list(zip(*columns, strict=True)) if columns else [() for _ in range(table.num_rows)]
        return rows, table.nbytes
