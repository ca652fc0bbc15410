"""Exports of sessions to other formats. :mod:`element_session.export.nwb`: Neurodata Without Borders.

Importing this package does not import pynwb; an export does, and says how to install it if missing.
"""

from .nwb import NwbExportError, NwbUnavailableError, session_to_nwb, write_nwb

__all__ = ["NwbExportError", "NwbUnavailableError", "session_to_nwb", "write_nwb"]
