"""Python's cyclic garbage collector: paused around building many containers (ingest, the table of sessions),
and run less often for the whole of an ``element-session`` command."""

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


#: Thresholds while an ``element-session`` command runs (Python's default: 700, 10, 10). Importing DataJoint
#: and pandas and formatting many rows make millions of containers, and every full collection scans them all:
#: ``sessions --format csv`` of 50,000 sessions spent 0.34 s in collections with the default, 0.11 s with
#: these, for the same peak memory (cyclic garbage is still collected, less often).
COMMAND_THRESHOLDS = (100_000, 50, 100)


@contextlib.contextmanager
def cycle_collection_less_often() -> Iterator[None]:
    """The collector at :data:`COMMAND_THRESHOLDS` for the block; the caller's thresholds again after it.

    For a command line's process, which owns its process: a library function pauses the collector
    only around its own work (:func:`cycle_collection_paused`).
    """
    before = gc.get_threshold()
    gc.set_threshold(*COMMAND_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
