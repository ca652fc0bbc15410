"""Ingestion of subjects, experimenters, projects and sessions: validate everything, then write once.

One call is one transaction: if anything in the input is wrong, nothing is written and
:class:`~element_session.errors.InputError` lists every problem with its source, row, column and
value. Ingesting the same input again writes nothing (the rows are reported as already present);
a row whose key exists with different content in a column the input gives is a
:class:`~element_session.errors.ConflictError`. Columns the input leaves empty are "not given":
new rows get the column's default, and existing rows are not compared on them.

Keys are compared as the database compares them (:mod:`element_session.keys`): under a
case-insensitive collation an input ``m001`` is the stored ``M001`` (the report's ``matched`` says
so, and the stored spelling is written), and two input keys that differ only so are duplicates.
Anything the server still refuses is a :class:`~element_session.errors.DatabaseRefusedError` naming
the input row (see :mod:`element_session.bulk`).

Session input has the columns ``subject`` (or whatever the linking module's ``Subject`` key is),
``session_datetime``, ``session_id``, ``experimenter``, ``project``, ``session_dir``,
``session_note`` and ``attr.<name>``; several experimenters or projects are separated by ``;`` in
text and are lists in YAML/JSON. See :mod:`element_session.times` for session times.
"""

from __future__ import annotations

from ..columns import KINDS, REFERENCE_TABLES, Kind
from .plan import IngestReport
from .transaction import ingest

__all__ = ["KINDS", "REFERENCE_TABLES", "IngestReport", "Kind", "ingest"]
