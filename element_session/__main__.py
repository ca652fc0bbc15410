"""``python -m element_session``: the ``element-session`` command."""

from .cli import run

run()
