"""Progress bars of the commands (ingest, populate, export, import, copy): one rule for all.

The commands draw a bar on standard error only where standard error is a terminal (tqdm's
``disable=None``), so logs and pipes never get one; ``--no-progress`` draws none anywhere. A caller of
the Python API who asks for a bar (``progress=True``, e.g. in a notebook, whose output is no
terminal) gets one wherever its standard error goes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm


def progress_bar(iterable: Iterable[Any] | None = None, *, shown: bool | None = None, **options: Any) -> tqdm:
    """A tqdm bar on standard error: always drawn if ``shown`` is True, never if False, and if None
    only where standard error is a terminal.

    ``options`` are tqdm's (``total``, ``desc``, ``unit``, ``delay`` in seconds, ...).
    """
    disable = None if shown is None else not shown  # tqdm: None disables where the file is not a terminal
    return tqdm(iterable, file=sys.stderr, disable=disable, **options)
