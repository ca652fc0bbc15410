"""Reading the object values of ``Session.Attribute`` (``attribute_blob``) so that one unreadable blob hides no other.

DataJoint decodes every blob of a fetch at once; a blob it cannot decode (e.g. a MATLAB sparse
matrix, which datajoint-python does not read, or damaged bytes) fails the whole fetch. Here the
blobs are fetched together, and only if that fails, one attribute at a time: every blob that can
be read is returned, and each that cannot is an :class:`Unreadable` naming the reason.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import datajoint as dj

#: What DataJoint raises while decoding a blob it cannot read (a lost connection is not among them).
_DECODE_ERRORS = (dj.errors.DataJointError, ValueError, TypeError, IndexError, KeyError, OverflowError, zlib.error)


@dataclass(frozen=True)
class Unreadable:
    """A stored blob that DataJoint cannot decode; ``reason`` is its error."""

    reason: str


def read_attribute_blobs(sessions: Any, session_module: ModuleType) -> dict[tuple, dict[str, Any]]:
    """The object values of the attributes of ``sessions`` (a query expression of ``Session``).

    Returns ``{key: {attribute_name: value}}`` where ``key`` is the tuple of the session's primary-key
    values in ``Session.primary_key`` order, as fetched; only attributes whose ``attribute_blob``
    is not NULL appear. A value DataJoint cannot decode is an :class:`Unreadable`. Raises
    DataJoint's errors for anything else (e.g. a lost connection).
    """
    attributes = session_module.Session.Attribute & sessions & "attribute_blob IS NOT NULL"
    names = [*session_module.Session.primary_key, "attribute_name"]
    try:
        rows = attributes.to_dicts()
    except _DECODE_ERRORS as err:
        if isinstance(err, dj.errors.LostConnectionError):
            raise
        rows = [_one(attributes, key) for key in attributes.proj().to_dicts()]
    found: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        found.setdefault(tuple(row[k] for k in names[:-1]), {})[row["attribute_name"]] = row["attribute_blob"]
    return found


def _one(attributes: Any, key: dict[str, Any]) -> dict[str, Any]:
    try:
        (row,) = (attributes & key).to_dicts()
    except _DECODE_ERRORS as err:
        if isinstance(err, dj.errors.LostConnectionError):
            raise
        return {**key, "attribute_blob": Unreadable(f"DataJoint cannot decode it ({type(err).__name__}: {err})")}
    return row
