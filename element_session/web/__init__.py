"""The web interface of element-session: browse, search, add and edit sessions as a database account.

Install with the ``[web]`` extra. :func:`create_app` builds the ASGI application of an imported
pipeline module; :func:`serve` runs it with uvicorn (``element-session serve``). See docs/web.md.
"""

from .app import create_app
from .server import serve

__all__ = ["create_app", "serve"]
