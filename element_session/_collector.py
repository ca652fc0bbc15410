"""Python's cyclic garbage collector paused around building many containers (ingest, the table of sessions)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block; re-enabled at the end if it was enabled.

    Ingest and ``session_table`` make containers per input value or per session (records, rows,
    lists) that reference counting frees. Yet each 700 new containers start a collection, and
    those that outlive one start full collections, each of which scans every object the process
    holds: a quarter of ingest's client time at 100,000 sessions, a sixth of ``session_table``'s.
    Mercurial pauses the collector around building large containers for the same reason
    (``util.nogc``). Reference cycles made meanwhile are collected after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
