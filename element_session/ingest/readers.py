"""Readers of ingestion input: CSV, YAML and JSON files, pandas DataFrames and lists of dicts.

Every reader yields :class:`Record` objects: where the row came from (source and row number as
numbered in the source) and its values as text, lists of text, or None for "not given".

- CSV and TSV: the row number is the file's line number on which the record starts (the header is
  line 1). Empty cells are "not given". ``.tsv`` files are tab-separated; a ``.csv`` file's separator is
  read from its header line: ``;`` (as Excel writes CSV in locales whose decimal mark is a comma) or tab
  where the header holds one of them and no comma, else ``,``. ``delimiter=`` overrides both.
- Excel workbooks (``.xlsx``, read with openpyxl): the first sheet, or the one named by ``sheet=``; the
  source is named ``file.xlsx[sheet]`` and rows are numbered as Excel shows them. Date-time cells become
  ISO text without an offset (read in ingest's ``timezone``, as Excel stores no zone), date cells (a
  date-only number format) ISO dates, whole numbers integers; formulas give their cached values.
- Every tabular source (CSV, TSV, Excel): columns without a name at the end of the header, which
  spreadsheet programs add, are ignored while their cells are empty; a value under such a column, or a
  column without a name between named ones, is an error naming the row and the column's position.
- YAML: a list of mappings; the row number is the line on which the mapping starts. Scalars are read
  as text exactly as written (no implicit conversion of dates, numbers or yes/no), so that
  ``subject: 0012`` stays ``"0012"``. An empty value or ``~`` is "not given".
- JSON: a list of objects; the row number is the item's position (1-based). ``null`` is "not given";
  numbers are kept as their JSON text.
- DataFrame: the row number is the position (1-based); NaN/None/NaT are "not given".
- list of dicts: the row number is the position (1-based).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from ..errors import InputError, InputProblem, not_json, one_problem, readable

Value = str | list[str] | None


@dataclass(frozen=True)
class Record:
    """One input row: its origin and its values (text, a list of text, or None for not given)."""

    source: str
    row: int
    values: dict[str, Value]
    header_row: int | None = None  # the row of the column names, in a file that has one (CSV, TSV, a worksheet)

    def problem(self, column: str | None, value: object, reason: str) -> InputProblem:
        return InputProblem(self.source, self.row, column, value, reason)

    def column_problem(self, column: str, reason: str) -> InputProblem:
        """A problem of the column itself (a name no table has): at the header where the source has one."""
        return InputProblem(self.source, self.header_row or self.row, column, None, reason)


def iter_records(
    source: str | os.PathLike | Any, *, sheet: str | None = None, delimiter: str | None = None
) -> Iterator[Record]:
    """The records of ``source``, one at a time: a file path (.csv, .tsv, .xlsx, .yaml/.yml, .json), a
    DataFrame or dicts.

    ``sheet`` names the worksheet of an ``.xlsx`` file (default: the first); ``delimiter`` overrides the
    separator of a CSV/TSV file (one character). CSV files and worksheets are read as they are consumed,
    so that memory does not grow with the file.

    Raises :class:`~element_session.errors.InputError` for a file that cannot be read as its type says
    (naming file, sheet, row and column where it can).
    """
    if isinstance(source, str | os.PathLike):
        yield from _read_file(Path(source), sheet, delimiter)
        return
    for name, option in (("sheet", sheet), ("delimiter", delimiter)):
        if option is not None:
            raise one_problem("arguments", name, option, "applies to files only, not to a DataFrame or dicts")
    if is_dataframe(source):
        yield from _read_dataframe(source)
    elif isinstance(source, Iterable) and not isinstance(source, bytes | str | Mapping):
        yield from _read_dicts(source, "input")
    else:
        raise one_problem("input", None, type(source).__name__, "expected a file path, a DataFrame or a list of dicts")


def read_records(source: str | os.PathLike | Any, **options: str | None) -> list[Record]:
    """Every record of ``source`` (see :func:`iter_records`, which takes the same ``options``)."""
    return list(iter_records(source, **options))


FILE_TYPES = (".csv", ".tsv", ".xlsx", ".yaml", ".yml", ".json")


def _read_file(path: Path, sheet: str | None, delimiter: str | None) -> Iterator[Record]:
    suffix = path.suffix.lower()
    if suffix not in FILE_TYPES:
        raise one_problem(str(path), None, path.suffix, f"unknown file type: use {', '.join(FILE_TYPES)}")
    try:
        is_file = path.is_file()
    except OSError as err:  # e.g. a name longer than the file system allows
        raise one_problem(str(path), None, str(path), f"cannot be read: {err.strerror}") from None
    if not is_file:
        raise one_problem(str(path), None, str(path), "no such file")
    if sheet is not None and suffix != ".xlsx":
        raise one_problem(str(path), None, sheet, "a sheet name is given, but only .xlsx workbooks have sheets")
    if delimiter is not None and suffix not in (".csv", ".tsv"):
        raise one_problem(str(path), None, delimiter, "a delimiter is given, but only CSV and TSV files have one")
    if suffix == ".xlsx":
        yield from _read_xlsx(path, sheet)
        return
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:  # a \r inside a quoted cell is data
            if suffix in (".csv", ".tsv"):
                yield from _read_csv(file, str(path), delimiter or ("\t" if suffix == ".tsv" else None))
            else:
                yield from (_read_yaml if suffix in (".yaml", ".yml") else _read_json)(file, str(path))
    except UnicodeDecodeError:
        raise _not_utf8(path) from None


#: Byte order marks of encodings that Excel and Windows editors save "Unicode" text in.
_UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


def _not_utf8(path: Path) -> InputError:
    """The problem of a text file that is not UTF-8: where its first byte that is not UTF-8 is (line and
    column, counted from 1; the column in bytes) and how to save it as UTF-8.

    The position is found in the whole file's bytes (the decoder's error gives it within one chunk).
    """
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        at = err.start
    else:  # not reached: the file was refused as not UTF-8
        at = 0
    line = data.count(b"\n", 0, at) + 1
    column = at - (data.rfind(b"\n", 0, at) + 1) + 1
    what = "UTF-16 (its byte order mark)" if data.startswith(_UTF16_MARKS) else f"byte 0x{data[at]:02X}"
    reason = (
        f"not UTF-8 text: {what} at line {line}, column {column}; save the file as UTF-8 "
        "(Excel: 'CSV UTF-8'; LibreOffice: character set 'Unicode (UTF-8)')"
    )
    return one_problem(str(path), None, None, reason)


def _text(value: object) -> Value:
    """A scalar or list from a parsed document as text; None, empty text and NaN as not given."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return [str(_text(v)) if not isinstance(v, str) else v for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _sniff_delimiter(file: TextIO) -> str:
    """The separator of a CSV file, from its header line: ``;`` or tab where it holds one and no comma."""
    position = file.tell()
    header = file.readline()
    file.seek(position)
    if "," not in header:
        for candidate in (";", "\t"):
            if candidate in header:
                return candidate
    return ","


def _read_csv(file: TextIO, source: str, delimiter: str | None) -> Iterator[Record]:
    if delimiter is not None and len(delimiter) != 1:
        raise one_problem(source, None, delimiter, "a delimiter is one character (e.g. ';' or a tab)")
    reader = csv.reader(file, strict=True, delimiter=delimiter or _sniff_delimiter(file))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as err:
        raise one_problem(source, None, None, f"malformed CSV: {err}", row=1) from None
    header = tabular_header(header, source, 1)
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise one_problem(source, None, None, f"malformed CSV: {err}", row=start) from None
        if any(cells):  # csv gives text only: a row of empty cells is skipped
            yield tabular_record(header, cells, source, start, header_row=1)
        start = reader.line_num + 1


def tabular_header(cells: list[Any], source: str, row: int) -> list[str]:
    """The column names of a header row of a CSV file or a worksheet, without its trailing unnamed columns.

    Raises :class:`~element_session.errors.InputError` for a column given twice or an unnamed column
    between named ones.
    """
    names = ["" if c is None else str(c).strip() for c in cells]
    while names and names[-1] == "":
        names.pop()
    for position, name in enumerate(names, start=1):
        if name == "":
            raise one_problem(source, f"#{position}", None, "a column without a name in the header", row=row)
    _check_header(names, source, row)
    return names


def tabular_record(header: list[str], cells: list[Any], source: str, row: int, *, header_row: int) -> Record:
    """The record of one row of cells under ``header`` (read from row ``header_row``); a value beyond the
    named columns is an error."""
    if len(cells) < len(header):
        raise one_problem(source, None, cells, f"{len(cells)} cells where the header has {len(header)}", row=row)
    for position in range(len(header), len(cells)):
        if cells[position] not in ("", None):
            raise one_problem(
                source, f"#{position + 1}", cells[position], "a value in a column without a name in the header", row=row
            )
    values = zip(header, cells, strict=False)  # cells beyond the header are empty (checked above)
    return Record(source, row, {h: (None if c == "" or c is None else c) for h, c in values}, header_row)


def _read_xlsx(path: Path, sheet: str | None) -> Iterator[Record]:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as err:
        raise one_problem(str(path), None, None, f"not an Excel workbook (.xlsx): {err}") from None
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise one_problem(
                str(path), "sheet", sheet, f"no such sheet: the workbook has {readable(workbook.sheetnames)}"
            )
        worksheet = workbook[sheet] if sheet is not None else workbook.worksheets[0]
        source = f"{path}[{worksheet.title}]"
        rows = worksheet.iter_rows()
        header: list[str] | None = None
        header_row = 0
        for cells in rows:
            if not cells or all(c.value in (None, "") for c in cells):
                continue
            number = next(c.row for c in cells if getattr(c, "row", None) is not None)
            values = [_cell_text(c) for c in cells]
            if header is None:
                header, header_row = tabular_header(values, source, number), number
            else:
                cells_under = values + [None] * (len(header) - len(values))
                yield tabular_record(header, cells_under, source, number, header_row=header_row)
    finally:
        workbook.close()


def _cell_text(cell: Any) -> str | None:
    """The text of a worksheet cell: ISO text for dates and times, integers for whole numbers."""
    value = cell.value
    if isinstance(value, dt.datetime):
        date_only = value.time() == dt.time() and not any(c in cell.number_format.lower() for c in "hs")
        return value.date().isoformat() if date_only else value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    text = _text(value)
    return text if not isinstance(text, list) else None  # a cell holds one value, never a list


def _check_header(header: list[str], source: str, row: int) -> None:
    seen = set()
    for name in header:
        if name in seen:
            raise one_problem(source, name, name, "column given twice", row=row)
        seen.add(name)


def _read_yaml(file: TextIO, source: str) -> Iterator[Record]:
    try:
        node = yaml.compose(file.read(), Loader=yaml.BaseLoader)
    except yaml.YAMLError as err:
        raise one_problem(source, None, None, f"malformed YAML: {err}") from None
    if node is None:
        return
    if not isinstance(node, yaml.SequenceNode):
        raise one_problem(source, None, None, "expected a list of mappings", row=node.start_mark.line + 1)
    constructor = yaml.BaseLoader("")
    for item in node.value:
        row = item.start_mark.line + 1
        if not isinstance(item, yaml.MappingNode):
            raise one_problem(source, None, None, "expected a mapping of column names to values", row=row)
        for key, value in item.value:  # before constructing: an alias bomb is small as nodes, huge as text
            if not isinstance(key, yaml.ScalarNode):
                raise one_problem(source, None, None, "a column name must be text", row=row)
            nested = isinstance(value, yaml.MappingNode) or (
                isinstance(value, yaml.SequenceNode) and not all(isinstance(v, yaml.ScalarNode) for v in value.value)
            )
            if nested:
                raise one_problem(source, key.value, None, "a value must be text or a list of text", row=row)
        _check_header([k.value for k, _ in item.value], source, row)
        values = constructor.construct_document(item)
        yield Record(source, row, {k: (None if v in ("", "~", "null") else _text(v)) for k, v in values.items()})


def _read_json(file: TextIO, source: str) -> Iterator[Record]:
    try:
        data = json.loads(file.read(), object_pairs_hook=no_duplicate_keys, parse_constant=_not_a_json_number)
    except json.JSONDecodeError as err:
        raise one_problem(source, None, None, not_json(err), row=err.lineno) from None
    except ValueError as err:
        raise one_problem(source, None, None, str(err)) from None
    if not isinstance(data, list):
        raise one_problem(source, None, None, "expected a list of objects")
    yield from _read_dicts(data, source)


#: Python's words for text that is not JSON that read badly, in people's words (the others are lower-cased).
def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The JSON object of ``pairs`` (a ``json.loads`` ``object_pairs_hook``), refusing a key given twice.

    Raises
    ------
    ValueError
        A key is given more than once in one object.
    """
    keys = [k for k, _ in pairs]
    duplicates = {k for k in keys if keys.count(k) > 1}
    if duplicates:
        raise ValueError(f"key(s) given twice in one object: {readable(sorted(duplicates))}")
    return dict(pairs)


def _not_a_json_number(word: str) -> None:
    """Refuse ``NaN``, ``Infinity`` and ``-Infinity``, which Python's json reads but JSON does not have."""
    raise ValueError(f"{word} is not JSON: write null (or leave the key out) for an empty value")


def _read_dicts(items: Iterable[Any], source: str) -> Iterator[Record]:
    for number, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise one_problem(source, None, item, "expected an object of column names to values", row=number)
        for name, value in item.items():  # as YAML's reader: an object inside a row is no cell of a table
            if isinstance(value, Mapping) or (isinstance(value, list | tuple) and any(_nested(v) for v in value)):
                raise one_problem(source, str(name), None, "a value must be text or a list of text", row=number)
        yield Record(source, number, {str(k): _text(v) for k, v in item.items()})


def _nested(value: object) -> bool:
    return isinstance(value, Mapping | list | tuple)


def is_dataframe(obj: object) -> bool:
    """Whether ``obj`` is a pandas DataFrame (told without importing pandas)."""
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "to_dict")


def _read_dataframe(frame: Any) -> Iterator[Record]:
    import pandas as pd

    columns = [str(c) for c in frame.columns]
    _check_header(columns, "DataFrame", 0)
    for number, row in enumerate(frame.itertuples(index=False, name=None), start=1):
        values = {}
        for column, value in zip(columns, row, strict=True):
            if isinstance(value, list | tuple):
                values[column] = _text(list(value))
            elif value is None or value is pd.NaT or (not isinstance(value, str) and pd.isna(value)):
                values[column] = None
            elif isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
                values[column] = str(int(value))  # an integer column with gaps arrives as float in pandas
            else:
                values[column] = _text(value)
        yield Record("DataFrame", number, values)
