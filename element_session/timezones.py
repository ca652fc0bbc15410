"""Moved to :mod:`element_session.times`; this import path is kept for one release.

``import element_session.timezones`` gives the very module :mod:`element_session.times` (not a copy), so that
its objects, and patches of them, are the same under both names.
"""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("element_session.times")
