"""What of DataJoint's own output reaches the terminal: nothing by default, everything when verbose.

DataJoint 2.3.5 warns at import when no ``datajoint.json`` is found, warns at each connection to
MariaDB that it is not officially supported, and logs its connection line (INFO) to standard
output through a handler of its own. Entry points call :func:`configure`: the ``element-session``
command and populate's worker processes (which receive the caller's choice in their orders).
The library itself changes no logging or warning setting.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from typing import Literal

#: The beginnings of the warnings DataJoint gives on every run (import, connection to MariaDB).
DATAJOINT_WARNINGS = ("No datajoint.json found", "MariaDB is not officially supported")


def filter_warnings(verbose: bool) -> None:
    """Hide (or, when ``verbose``, show) DataJoint's warnings; safe to call before DataJoint is imported."""
    action: Literal["default", "ignore"] = "default" if verbose else "ignore"
    warnings.filterwarnings(action, module=r"datajoint(\.|$)")
    for message in DATAJOINT_WARNINGS:
        warnings.filterwarnings(action, message=re.escape(message), category=UserWarning)


def configure(verbose: bool) -> None:
    """Hide DataJoint's warnings and log messages, or show them on standard error when ``verbose``.

    When verbose, DataJoint's own log level applies (``DJ_LOG_LEVEL``, default INFO). Imports
    DataJoint (after the warning filters, since it warns at import).
    """
    filter_warnings(verbose)
    import datajoint  # its logger is set up at import; configured below

    logger = logging.getLogger("datajoint")
    logger.setLevel(datajoint.config.loglevel if verbose else logging.CRITICAL + 1)
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)  # standard output carries only the command's own output
