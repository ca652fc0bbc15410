"""Whether a process of this host is alive: for populate's stale reservations and the private server."""

from __future__ import annotations

import psutil


def process_alive(pid: int | None) -> bool:
    """Whether a process with this id runs on this host; a zombie (ended, awaiting its parent) does not."""
    if not pid or pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # ZombieProcess included
        return False
    except psutil.AccessDenied:  # another user's process: it exists
        return True
