"""A worker process of :func:`element_session.populate.populate`.

``python -m element_session.populate_worker`` reads its orders (a pickle written by the parent
process) on standard input, sets DataJoint's messages as the caller asked (quiet unless
``verbose``), then imports the pipeline module and populates (:func:`element_session.populate.run_worker`).
"""

from __future__ import annotations

import pickle
import signal
import sys

from . import _messages


def main() -> None:
    """Read the orders from standard input, configure DataJoint's messages, and run the worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops workers with SIGTERM
    orders = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 (written by the parent process)
    sys.path[:] = orders["sys_path"]
    _messages.configure(verbose=orders["verbose"])
    from .populate import run_worker

    run_worker(orders)


if __name__ == "__main__":
    main()
