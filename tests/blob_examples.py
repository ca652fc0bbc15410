"""Values of every kind an attribute blob may hold, and a strict comparison of them (for the blob tests)."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid

import numpy as np
from datajoint.blob import MatCell, MatStruct


def same(a: object, b: object) -> bool:
    """Equal in type, dtype, shape and value; NaN equals NaN, and -0.0 is not 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype.names:
            return all(same(np.asarray(a[n]), np.asarray(b[n])) for n in a.dtype.names)
        if a.dtype.kind == "O":
            return all(same(x, y) for x, y in zip(a.ravel(), b.ravel(), strict=True))
        return a.tobytes() == b.tobytes() or np.array_equal(a, b, equal_nan=a.dtype.kind in "fcM")
    if isinstance(a, np.generic):
        return same(np.asarray(a), np.asarray(b))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


SUBARRAY = np.array([(1, [2, 3])], dtype=[("a", "i4"), ("s", "f8", (2,))])
EXAMPLES = [
    None, 1, 2**100, True, 1.5, -0.0, math.nan, math.inf, -math.inf, 1 + 2j, complex(math.nan, -math.inf), "x ✓",
    b"\x00\xff", bytearray(b"ab"), (1, (2,)), {1, 2}, frozenset({"a"}), {"__type__": "float"},
    {np.int64(1): 2, (1, 2): "a", "x": [1, {"__type__": 3}]},
    dt.datetime(2024, 1, 1, 1, 2, 3, 4), dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    dt.date(2024, 2, 3), dt.time(4, 5, 6, 7), decimal.Decimal("1.50"), uuid.UUID(int=7),
    np.float64(1.5), np.int8(-3), np.bool_(True), np.complex64(1 + 1j), np.datetime64("2024-01-01", "ns"),
    np.array([[1.0, np.nan], [np.inf, -0.0]], dtype=">f4"), np.zeros((0, 3)), np.zeros((2, 0)), np.array(3),
    np.array([1 + 2j, np.nan]), np.array([True, False]), np.array(["2024-01-01", "NaT"], dtype="M8[W]"),
    np.array(["2024-01-01T01:02:03.123456789", "NaT"], dtype="M8[ns]"), np.array([1, -2], dtype="m8[s]"),
    np.array(["ab", "ü"], dtype="U3"), np.array([b"a\x00", b""], dtype="S2"),
    np.array([1, "a", None, [1, 2], np.array([1, 2])], dtype=object), np.empty((2, 0), dtype=object),
    np.array([(1, (2, 3.0)), (4, (5, np.nan))], dtype=[("a", "i4"), ("b", [("c", "i2"), ("d", "f4")])]),
    SUBARRAY,
    np.array((1, 2.0), dtype=[("a", "i4"), ("b", "f8")]).view(np.recarray),
    np.array([1, "a", np.zeros(2)], dtype=object).view(MatCell),
    np.array([(1, "x"), (np.zeros(1), None)], dtype=[("a", object), ("b", object)]).view(MatStruct),
]  # fmt: skip
