"""The JSON form of a stored object value (``Session.Attribute.attribute_blob``): one encoder, one decoder.

Every value that DataJoint's ``<blob>`` stores and returns is written losslessly as JSON, or
refused with :class:`~element_session.errors.FormatError` naming where in the value the problem
is. ``decode(encode(x))`` gives ``x`` back: same types, dtypes, shapes and values (NaN included).
NWB export (``attribute_blob`` column), ``sessions --format json`` (``attribute_blobs``) and the
web API all use :func:`encode` / :func:`dumps`; nothing else turns a blob into text.

**Plain JSON** where the value is plain JSON: ``str``, ``int``, finite ``float``, ``bool``,
``None``, ``list``, and ``dict`` whose keys are all ``str`` (none of them ``"__type__"``),
with plain or tagged values inside.

**Tagged objects** for everything else: a JSON object with ``"__type__"`` and its fields.

========================  ============================================================================
``__type__``              fields
========================  ============================================================================
``float``                 ``value``: ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` (a non-finite float)
``complex``               ``real``, ``imag``: numbers (a non-finite part as the strings above)
``tuple``                 ``items``: list of encoded items
``set``, ``frozenset``    ``items``: list of encoded items, sorted by their JSON text
``dict``                  ``items``: list of ``[key, value]`` pairs, both encoded, in the dict's order
                          (a dict with a key that is not ``str``, e.g. a numpy integer or a tuple)
``bytes``, ``bytearray``  ``base64``: the bytes in standard base64
``datetime``, ``date``,   ``iso``: ISO 8601 text (``datetime.isoformat``); an aware value keeps its UTC
``time``                  offset, not the name of its zone
``decimal``, ``uuid``     ``value``: the text form
``scalar``                a numpy scalar: ``dtype`` and ``data`` as for a 0-d ``ndarray`` (no ``shape``)
``ndarray``               ``dtype``: numpy's description (``numpy.lib.format.dtype_to_descr``: text such
                          as ``"<f8"``, or ``[name, type(, shape)]`` lists for a structured dtype);
                          ``shape``: list of ints; ``data``: the elements nested as ``tolist()``
                          nests them (a 0-d array: the element itself); ``class``: ``recarray``,
                          ``MatCell`` or ``MatStruct`` for those array types, absent for ``ndarray``
========================  ============================================================================

Elements of an array (and of a numpy scalar), by dtype kind: bool and integers as JSON numbers;
floats as numbers, non-finite ones as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; complex as
``[real, imag]``; ``datetime64`` as ISO 8601 text at the dtype's unit (``"NaT"`` for
not-a-time; ``datetime64[W]`` as the day its week starts); ``timedelta64`` as the integer count
of its unit (NaT as the smallest int64); unicode as text; bytes (``S``) as base64 text; object
arrays element by element in the general form above; a structured array as an object of its
fields, each field's elements in that field's form (``{"a": [...], "b": [...]}``).

Refused (``FormatError``): types outside this list (custom classes, subclasses of the built-in
types, mappings other than ``dict``, array subclasses other than the three named), dtypes whose
elements a JSON number cannot hold exactly (``longdouble``, ``clongdouble``), unstructured void
dtypes, ``datetime64`` with a multiplied or generic unit, and nesting deeper than Python's
recursion limit. DataJoint itself refuses most of these when storing.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
from datajoint.blob import MatCell, MatStruct
from numpy.lib.format import descr_to_dtype, dtype_to_descr

from .errors import FormatError, not_json

TAG = "__type__"
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_ARRAY_CLASSES: dict[str, type[np.ndarray]] = {"recarray": np.recarray, "MatCell": MatCell, "MatStruct": MatStruct}
_DATETIME_UNITS = ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as")


def dumps(value: Any) -> str:
    """``value`` as JSON text in the documented form (strict JSON: no NaN tokens). Raises ``FormatError``."""
    return text(encode(value))


def text(encoded: Any) -> str:
    """The JSON text of a value already in the documented form (:func:`encode`'s result), as :func:`dumps` writes it."""
    return json.dumps(encoded, ensure_ascii=False, allow_nan=False)


def loads(text: str) -> Any:
    """The value of JSON text written by :func:`dumps`. Raises ``FormatError`` for text not in that form."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise FormatError(not_json(err)) from None
    except (ValueError, TypeError) as err:
        raise FormatError(f"not JSON text: {err}") from None
    return decode(obj)


# -- encoding ---------------------------------------------------------------------------------------------------
def encode(value: Any) -> Any:
    """The JSON-able form of ``value`` (dicts, lists, text, ints, finite floats, bools, None).

    Raises :class:`~element_session.errors.FormatError` for a value that cannot be written
    losslessly, naming where in ``value`` it is (e.g. ``value['gain'][2]``) and its type.
    """
    try:
        return _encode(value, "value")
    except RecursionError:
        raise FormatError("value is nested too deeply to be written as JSON") from None


def _refuse(where: str, value: Any, reason: str = "") -> FormatError:
    kind = type(value)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return FormatError(f"{where} is of type {name}, which cannot be written losslessly as JSON{reason}")


def _float(value: float) -> float | str:
    """A float inside a tagged value: the number, or the text of a non-finite one."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _sorted_items(items: Any, where: str) -> list[Any]:
    encoded = [_encode(item, f"{where} item") for item in items]
    return sorted(encoded, key=lambda e: json.dumps(e, sort_keys=True))


def _encode(value: Any, where: str) -> Any:
    kind = type(value)
    if value is None or kind in (str, bool, int):
        return value
    if kind is float:
        return value if math.isfinite(value) else {TAG: "float", "value": _float(value)}
    if kind is list:
        return [_encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if kind is dict:
        if all(type(k) is str and k != TAG for k in value):
            return {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}
        return {
            TAG: "dict",
            "items": [[_encode(k, f"{where} key"), _encode(v, f"{where}[{k!r}]")] for k, v in value.items()],
        }
    if isinstance(value, np.ndarray):
        return _encode_array(value, where)
    if isinstance(value, np.generic):
        array = np.asarray(value)
        return {TAG: "scalar", "dtype": _descr(dtype_to_descr(array.dtype)), "data": _data(array, where)}
    if kind is complex:
        return {TAG: "complex", "real": _float(value.real), "imag": _float(value.imag)}
    if kind is tuple:
        return {TAG: "tuple", "items": [_encode(item, f"{where}[{i}]") for i, item in enumerate(value)]}
    if kind in (set, frozenset):
        return {TAG: kind.__name__, "items": _sorted_items(value, where)}
    if kind in (bytes, bytearray):
        return {TAG: kind.__name__, "base64": base64.b64encode(value).decode("ascii")}
    if kind in (dt.datetime, dt.date, dt.time):
        return {TAG: kind.__name__, "iso": value.isoformat()}
    if kind is decimal.Decimal:
        return {TAG: "decimal", "value": str(value)}
    if kind is uuid.UUID:
        return {TAG: "uuid", "value": str(value)}
    raise _refuse(where, value)


def _encode_array(array: np.ndarray, where: str) -> dict[str, Any]:
    kind = type(array)
    names = {cls: name for name, cls in _ARRAY_CLASSES.items()}
    if kind is not np.ndarray and kind not in names:
        raise _refuse(where, array, " (only ndarray, recarray, MatCell and MatStruct)")
    fields = _array_fields(np.asarray(array), where)
    return {TAG: "ndarray", **fields, **({"class": names[kind]} if kind in names else {})}


def _array_fields(array: np.ndarray, where: str) -> dict[str, Any]:
    return {"dtype": _descr(dtype_to_descr(array.dtype)), "shape": list(array.shape), "data": _data(array, where)}


def _descr(descr: Any) -> Any:
    """numpy's dtype description with its tuples as lists (as JSON holds them)."""
    return [_descr(part) for part in descr] if isinstance(descr, list | tuple) else descr


def _data(array: np.ndarray, where: str) -> Any:
    """The elements of a plain (non-subclass) array, nested by its shape."""
    dtype = array.dtype
    if dtype.names is not None:
        return {name: _data(np.asarray(array[name]), f"{where} field {name!r}") for name in dtype.names}
    if dtype.kind in "biuU":
        return array.tolist()  # bool, int and str elements are JSON as they are
    return _nest(array, _element_encoder(dtype, where))


def _nest(array: np.ndarray, element: Callable[[Any], Any]) -> Any:
    """``array.tolist()``'s nesting with every element (a numpy value) through ``element``."""
    if array.size == 0:
        return np.zeros(array.shape, np.int8).tolist()  # nested empty lists
    items = [element(x) for x in array.reshape(-1)]  # C order
    for size in reversed(array.shape[1:]):
        items = [items[i : i + size] for i in range(0, len(items), size)]
    return items[0] if array.ndim == 0 else items


def _element_encoder(dtype: np.dtype, where: str) -> Callable[[Any], Any]:
    kind = dtype.kind
    if kind == "f" and dtype.itemsize <= 8:
        return lambda x: _float(float(x))
    if kind == "c" and dtype.itemsize <= 16:
        return lambda x: [_float(float(x.real)), _float(float(x.imag))]
    if kind == "M" and _datetime_unit(dtype) is not None:
        unit: Any = "D" if _datetime_unit(dtype) == "W" else _datetime_unit(dtype)
        return lambda x: str(np.datetime_as_string(x, unit=unit))
    if kind == "m":
        return lambda x: int(x.astype("<i8"))
    if kind == "S":
        return lambda x: base64.b64encode(bytes(x)).decode("ascii")
    if kind == "O":
        return lambda x: _encode(x, f"{where} element")
    raise FormatError(f"{where} has dtype {dtype.str!r}, whose elements cannot be written losslessly as JSON")


def _datetime_unit(dtype: np.dtype) -> str | None:
    """The unit of a ``datetime64`` dtype if it is one DataJoint stores (no multiplier), else None."""
    unit, count = np.datetime_data(dtype)
    return unit if count == 1 and unit in _DATETIME_UNITS else None


# -- decoding ---------------------------------------------------------------------------------------------------
def decode(obj: Any) -> Any:
    """The value whose :func:`encode` form is ``obj``. Raises ``FormatError`` for anything not in that form."""
    try:
        return _decode(obj)
    except FormatError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, RecursionError) as err:
        raise FormatError(f"not a value in element-session's JSON form: {type(err).__name__}: {err}") from None


def _plain_float(text: Any) -> float:
    return _NON_FINITE[text] if isinstance(text, str) else float(text)


def _decode(obj: Any) -> Any:
    if isinstance(obj, list):
        return [_decode(item) for item in obj]
    if not isinstance(obj, dict):
        return obj
    if TAG not in obj:
        return {k: _decode(v) for k, v in obj.items()}
    tag = obj[TAG]
    if tag == "float":
        return _NON_FINITE[obj["value"]]
    if tag == "complex":
        return complex(_plain_float(obj["real"]), _plain_float(obj["imag"]))
    if tag == "tuple":
        return tuple(_decode(item) for item in obj["items"])
    if tag in ("set", "frozenset"):
        return (set if tag == "set" else frozenset)(_decode(item) for item in obj["items"])
    if tag == "dict":
        return {_decode(k): _decode(v) for k, v in obj["items"]}
    if tag in ("bytes", "bytearray"):
        raw = base64.b64decode(obj["base64"], validate=True)
        return raw if tag == "bytes" else bytearray(raw)
    if tag in ("datetime", "date", "time"):
        return getattr(dt, tag).fromisoformat(obj["iso"])
    if tag == "decimal":
        return decimal.Decimal(obj["value"])
    if tag == "uuid":
        return uuid.UUID(obj["value"])
    if tag == "scalar":
        return _decode_array(obj)[()]
    if tag == "ndarray":
        array = _decode_array(obj)
        name = obj.get("class")
        if name is None:
            return array
        if name not in _ARRAY_CLASSES:
            raise FormatError(f"unknown array class {name!r}: expected one of {sorted(_ARRAY_CLASSES)}")
        return array.view(_ARRAY_CLASSES[name])
    raise FormatError(f"unknown {TAG} {tag!r} in element-session's JSON form")


def _tuples(descr: Any) -> Any:
    """A dtype description read from JSON with its fields as tuples again, as numpy wants them."""
    if isinstance(descr, str):
        return descr
    fields = []
    for name, kind, *shape in descr:
        fields.append((tuple(name) if isinstance(name, list) else name, _tuples(kind), *(tuple(s) for s in shape)))
    return fields


def _decode_array(obj: dict[str, Any]) -> np.ndarray:
    dtype = descr_to_dtype(_tuples(obj["dtype"]))
    shape = tuple(int(n) for n in obj.get("shape", ()))  # a scalar has no shape
    return _array(obj["data"], dtype, shape)


def _array(data: Any, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    if dtype.names is not None:
        out = np.zeros(shape, dtype)
        for name in dtype.names:
            field = out[name]
            field[...] = _array(data[name], field.dtype, field.shape)
        return out
    flat = _flatten(data, len(shape))
    out = np.empty(len(flat), dtype)
    kind = dtype.kind
    for i, element in enumerate(flat):
        out[i] = _element(element, dtype, kind)
    return out.reshape(shape)


def _flatten(data: Any, depth: int) -> list[Any]:
    if depth == 0:
        return [data]
    if not isinstance(data, list):
        raise FormatError(f"array data {data!r} is not nested as deep as the array's shape")
    return [element for item in data for element in _flatten(item, depth - 1)]


def _element(element: Any, dtype: np.dtype, kind: str) -> Any:
    if kind == "f":
        return _plain_float(element)
    if kind == "c":
        return complex(_plain_float(element[0]), _plain_float(element[1]))
    if kind == "M":
        unit: Any = np.datetime_data(dtype)[0]
        return np.datetime64(element, "D" if unit == "W" else unit).astype(dtype)
    if kind == "m":
        return np.array(element, "<i8").astype(dtype)
    if kind == "S":
        return base64.b64decode(element, validate=True)
    if kind == "O":
        return _decode(element)
    return element
