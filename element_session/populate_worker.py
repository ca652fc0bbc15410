"""A worker process of :func:`element_session.populate.populate`.

``python -m element_session.populate_worker`` reads its orders (a pickle written by the parent
process) on standard input, sets DataJoint's messages as the caller asked (quiet unless
``verbose``), then imports the pipeline module and populates (:func:`element_session.populate.run_worker`).

SIGINT is ignored (Ctrl-C reaches the whole process group; the parent stops its workers with
SIGTERM). SIGTERM ends the worker with ``SystemExit``: during a key, DataJoint's handler does the
same and the key is put back. On Linux the worker also receives SIGTERM when its parent dies,
even by SIGKILL, so that no worker outlives the command that started it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import sys

from . import _messages
from .errors import WORKER_TERMINATED

_PR_SET_PDEATHSIG = 1  # prctl(2)


def _end_with_parent(parent: int) -> None:
    """SIGTERM to this process when its parent ends (Linux); exit at once if it already has."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        raise SystemExit("the populate process that started this worker has ended")


def _terminated(_signum: int, _frame: object) -> None:
    raise SystemExit(WORKER_TERMINATED)


def main() -> None:
    """Read the orders from standard input, configure DataJoint's messages, and run the worker.

    Stopped by SIGTERM, the worker ends with status 143 (128 + SIGTERM) and says nothing: the command
    that stopped it says so once, not each of its workers.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops workers with SIGTERM
    signal.signal(signal.SIGTERM, _terminated)
    try:
        _work()
    except SystemExit as stop:
        if stop.code != WORKER_TERMINATED:
            raise
        raise SystemExit(128 + signal.SIGTERM) from None


def _work() -> None:
    """The worker itself: its orders, then populating (:func:`element_session.populate.run_worker`)."""
    orders = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 (written by the parent process)
    _end_with_parent(orders["parent"])
    sys.path[:] = orders["sys_path"]
    _messages.configure(verbose=orders["verbose"])
    from ._datajoint_compat import install_connection_rules
    from .populate import run_worker

    install_connection_rules()
    run_worker(orders)


if __name__ == "__main__":
    main()
