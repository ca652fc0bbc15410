"""Moved to :mod:`element_session.ingest.keys`; this import path is kept for one release.

``import element_session.keys`` gives the very module :mod:`element_session.ingest.keys` (not a copy), so that
its objects, and patches of them, are the same under both names.
"""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("element_session.ingest.keys")
