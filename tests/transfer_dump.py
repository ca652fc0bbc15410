"""What a transfer must keep, read the same way on the source and (in a child process) on the target.

``python -m tests.transfer_dump OUT DOWNSTREAM PIPELINE SUBJECT...`` (DOWNSTREAM: 0 or 1) pickles
:func:`dump` of the module PIPELINE (activated under ``DATABASE_PREFIX`` on the server of ``DJ_*``) to OUT.
"""

from __future__ import annotations

import pickle
import sys
from types import ModuleType
from typing import Any

import pandas as pd

from tests.blob_examples import same


def dump(pipeline: ModuleType, subjects: list[str], downstream: bool = False) -> dict[str, Any]:
    """Per role: the rows as stored (blobs as bytes) and decoded; the session table; of ``subjects``' sessions."""
    from element_session.query import find_sessions, session_table
    from element_session.transfer.export import select_rows
    from element_session.transfer.rows import columns_of, read_rows

    sessions = find_sessions(pipeline.session, subject=subjects)
    stored, decoded = {}, {}
    for chosen in select_rows(pipeline.session, pipeline, sessions, downstream=downstream):
        names = [c.name for c in columns_of(chosen.table)]
        key = chosen.table.primary_key
        stored[chosen.role] = read_rows(chosen.query, names, key)
        rows = chosen.query.to_dicts()
        decoded[chosen.role] = sorted(rows, key=lambda r: tuple(str(r[k]) for k in key))
    return {"stored": stored, "decoded": decoded, "table": session_table(sessions, pipeline.session)}


def assert_same_content(source: dict, target: dict) -> None:
    assert source["stored"] == target["stored"]  # as stored: blobs byte-identical, times to the microsecond
    assert set(source["decoded"]) == set(target["decoded"])  # the order of independent tables may differ
    for role, rows in source["decoded"].items():
        assert len(rows) == len(target["decoded"][role]), role
        for mine, theirs in zip(rows, target["decoded"][role], strict=True):
            assert list(mine) == list(theirs), role
            assert all(same(mine[k], theirs[k]) for k in mine), (role, mine, theirs)
    pd.testing.assert_frame_equal(source["table"], target["table"])


if __name__ == "__main__":
    import importlib

    pipeline = importlib.import_module(sys.argv[3])
    with open(sys.argv[1], "wb") as out:
        pickle.dump(dump(pipeline, sys.argv[4:], sys.argv[2] == "1"), out)
