"""A server-side lock that lets many processes activate the same schemas at once.

An array of workers starting together imports the pipeline in every process at the same instant:
each checks whether a schema, a table or a jobs table exists and creates it if not, and all but
one fail with "already exists" (MySQL 1007/1050, PostgreSQL 42P06/42P07, or a duplicate key in
DataJoint's ``~lineage``). :func:`activation_lock` makes activation one process at a time per
schema name, with the database server's own advisory locks (MySQL/MariaDB ``GET_LOCK``,
PostgreSQL ``pg_advisory_lock``): whoever comes second finds the schema made and uses it. The lock
belongs to the connection, so a process that dies releases it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

import datajoint as dj

from .errors import ActivationError

#: Seconds a process waits for another to finish activating the same schema.
WAIT = 120.0


def _lock_key(name: str) -> tuple[str, int]:
    """A MySQL lock name (at most 64 characters) and a PostgreSQL 64-bit key for ``name``."""
    digest = hashlib.sha256(f"element-session activate {name}".encode()).digest()
    return "element-session:" + digest.hex()[:40], int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def activation_lock(connection: dj.Connection, schema_name: str) -> Iterator[None]:
    """Hold the server's advisory lock for activating ``schema_name`` during the block.

    Re-entrant within one connection (both servers count nested locks).

    Raises
    ------
    ActivationError
        Another process held the lock for longer than :data:`WAIT` seconds.
    """
    name, key = _lock_key(schema_name)
    postgres = connection.adapter.backend == "postgresql"
    deadline = time.monotonic() + WAIT
    while True:
        if postgres:
            held = connection.query("SELECT pg_try_advisory_lock(%s)", args=(key,)).fetchone()[0]
        else:
            held = connection.query("SELECT GET_LOCK(%s, 1)", args=(name,)).fetchone()[0] == 1
        if held:
            break
        if time.monotonic() > deadline:
            raise ActivationError(
                f"another process has been activating `{schema_name}` for more than {WAIT:.0f} s; try again"
            )
        time.sleep(0.05)
    try:
        yield
    finally:
        if postgres:
            connection.query("SELECT pg_advisory_unlock(%s)", args=(key,))
        else:
            connection.query("SELECT RELEASE_LOCK(%s)", args=(name,))
