"""``python -m element_session.localdb start|stop DIR``: the command ``element-session localdb``.

This entry belongs to the command line (:mod:`element_session.cli`), so the server code it runs
imports nothing of the interfaces.
"""

import sys

from ..cli import main

raise SystemExit(main(["localdb", *sys.argv[1:]]))
