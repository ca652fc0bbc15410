"""Readers of ingestion input: CSV, YAML and JSON files, pandas DataFrames and lists of dicts.

Every reader yields :class:`Record` objects: where the row came from (source and row number as
numbered in the source) and its values as text, lists of text, or None for "not given".

- CSV: the row number is the file's line number on which the record starts (the header is line 1).
  Empty cells are "not given".
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
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from .errors import InputProblem, one_problem

Value = str | list[str] | None


@dataclass(frozen=True)
class Record:
    """One input row: its origin and its values (text, a list of text, or None for not given)."""

    source: str
    row: int
    values: dict[str, Value]

    def problem(self, column: str | None, value: object, reason: str) -> InputProblem:
        return InputProblem(self.source, self.row, column, value, reason)


def iter_records(source: str | os.PathLike | Any) -> Iterator[Record]:
    """The records of ``source``, one at a time: a file path (.csv, .yaml/.yml, .json), a DataFrame or dicts.

    CSV files are read as they are consumed, so that memory does not grow with the file.
    """
    if isinstance(source, str | os.PathLike):
        yield from _read_file(Path(source))
    elif _is_dataframe(source):
        yield from _read_dataframe(source)
    elif isinstance(source, Iterable) and not isinstance(source, bytes | str | Mapping):
        yield from _read_dicts(source, "input")
    else:
        raise one_problem("input", None, type(source).__name__, "expected a file path, a DataFrame or a list of dicts")


def read_records(source: str | os.PathLike | Any) -> list[Record]:
    """Every record of ``source`` (see :func:`iter_records`)."""
    return list(iter_records(source))


def _read_file(path: Path) -> Iterator[Record]:
    readers = {".csv": _read_csv, ".yaml": _read_yaml, ".yml": _read_yaml, ".json": _read_json}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise one_problem(str(path), None, path.suffix, "unknown file type: use .csv, .yaml or .json")
    if not path.is_file():
        raise one_problem(str(path), None, str(path), "no such file")
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:  # a \r inside a quoted cell is data
            yield from reader(file, str(path))
    except UnicodeDecodeError as err:
        raise one_problem(str(path), None, err.object[err.start : err.end], "not UTF-8 text") from None


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


def _read_csv(file: TextIO, source: str) -> Iterator[Record]:
    reader = csv.reader(file, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as err:
        raise one_problem(source, None, None, f"malformed CSV: {err}", row=1) from None
    _check_header([h.strip() for h in header], source, 1)
    header = [h.strip() for h in header]
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise one_problem(source, None, None, f"malformed CSV: {err}", row=start) from None
        if cells and any(c != "" for c in cells):
            if len(cells) != len(header):
                raise one_problem(
                    source, None, cells, f"{len(cells)} cells where the header has {len(header)}", row=start
                )
            yield Record(source, start, {h: (c if c != "" else None) for h, c in zip(header, cells, strict=True)})
        start = reader.line_num + 1


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
        keys = [k.value for k, _ in item.value]
        _check_header(keys, source, row)
        values = constructor.construct_document(item)
        yield Record(source, row, {k: (None if v in ("", "~", "null") else _text(v)) for k, v in values.items()})


def _read_json(file: TextIO, source: str) -> Iterator[Record]:
    try:
        data = json.loads(file.read(), object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as err:
        raise one_problem(source, None, None, f"malformed JSON: {err.msg}", row=err.lineno) from None
    except ValueError as err:
        raise one_problem(source, None, None, str(err)) from None
    if not isinstance(data, list):
        raise one_problem(source, None, None, "expected a list of objects")
    yield from _read_dicts(data, source)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    duplicates = {k for k in keys if keys.count(k) > 1}
    if duplicates:
        raise ValueError(f"key(s) given twice in one object: {sorted(duplicates)}")
    return dict(pairs)


def _read_dicts(items: Iterable[Any], source: str) -> Iterator[Record]:
    for number, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise one_problem(source, None, item, "expected an object of column names to values", row=number)
        yield Record(source, number, {str(k): _text(v) for k, v in item.items()})


def _is_dataframe(obj: object) -> bool:
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
