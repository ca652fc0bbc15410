"""element-session: session management schema modules for DataJoint 2.x pipelines.

``element_session.session`` is :mod:`element_session.session_with_datetime`, as in the
published element. The schema modules are imported on first use, so that importing the package
(e.g. for ``element-session --help``) does not import DataJoint.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.4.0.dev0"
__all__ = ["__version__", "session", "session_with_id"]

_SCHEMA_MODULES = {"session": "session_with_datetime", "session_with_id": "session_with_id"}


def __getattr__(name: str) -> ModuleType:
    if name in _SCHEMA_MODULES:
        module = importlib.import_module(f".{_SCHEMA_MODULES[name]}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
