"""Sessions moved between servers: a bundle file written by export, checked and written by import.

- :func:`export_sessions`: selected sessions, the rows they reference and (``downstream=True``) the rows
  computed from them, to one zip file of Parquet files (:mod:`.bundle`; ``docs/transfer.md``);
- :func:`import_sessions`: a bundle into a pipeline's tables, checked first, in one transaction;
- :func:`copy_sessions`: both, the target named by a DataJoint settings file (:mod:`.copy`).
"""

from .bundle import FORMAT_VERSION, Bundle, Manifest
from .copy import copy_sessions
from .export import ExportReport, export_sessions
from .importing import ImportReport, import_sessions

__all__ = [
    "FORMAT_VERSION",
    "Bundle",
    "ExportReport",
    "ImportReport",
    "Manifest",
    "copy_sessions",
    "export_sessions",
    "import_sessions",
]
