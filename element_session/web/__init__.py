"""The web interface of element-session: browse, search, add and edit sessions as a database account.

Install with the ``[web]`` extra. :func:`create_app` builds the ASGI application of an imported
pipeline module; :func:`serve` runs it with uvicorn (``element-session serve``). See docs/web.md.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["create_app", "serve"]
_WHERE = {"create_app": ".app", "serve": ".server"}


def __getattr__(name: str) -> Any:  # imported on first use: a worker sets up DataJoint's messages first
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
