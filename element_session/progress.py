"""Progress bars of the commands (ingest, populate, export, import, copy): one rule for all.

A bar is drawn on standard error only where standard error is a terminal (tqdm's ``disable=None``),
so logs and pipes never get one; ``shown=False`` (``--no-progress``) draws none anywhere.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm


def progress_bar(iterable: Iterable[Any] | None = None, *, shown: bool | None = True, **options: Any) -> tqdm:
    """A tqdm bar on standard error, drawn when ``shown`` (True or None) and standard error is a terminal.

    ``options`` are tqdm's (``total``, ``desc``, ``unit``, ``delay`` in seconds, ...).
    """
    return tqdm(iterable, file=sys.stderr, disable=None if shown is not False else True, **options)
