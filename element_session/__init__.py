"""element-session: session management schema modules for DataJoint 2.x pipelines.

``element_session.session`` is :mod:`element_session.session_with_datetime`, as in the
published element.
"""

from . import session_with_datetime as session
from . import session_with_id

__version__ = "0.3.0"
__all__ = ["__version__", "session", "session_with_id"]
