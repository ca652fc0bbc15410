"""Whether the worker holding a reservation is alive, judged by what the database server knows.

DataJoint 2.x records in each reserved jobs row the ``connection_id`` of the worker's connection
(MySQL/MariaDB ``CONNECTION_ID()``, PostgreSQL ``pg_backend_pid()``). A worker that ends, however
it ends (SIGKILL, out of memory, its node lost), loses its connection, and the server drops it from
its process list (``information_schema.PROCESSLIST``; ``pg_stat_activity``) within about a second.
So a reservation whose connection the server no longer lists is *stale* wherever its worker ran,
and one whose connection it lists is *alive*, whatever its age.

What is not certain is said, never guessed:

- A MySQL/MariaDB account without the ``PROCESS`` privilege sees only its own account's
  connections: it judges its own reservations and reports the others as not judged.
- A row without a connection (``connection_id`` 0, written by something else than DataJoint 2.x)
  is judged by its process id only where that process runs here and now; a process id that does
  not run here proves nothing (a container with host networking has this host's name but its own
  process ids), so such a row is not judged.
- A process id is not used for rows with a connection: the row does not record the worker's pid
  namespace, so a pid that runs here may be another process (pid 1 always runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import datajoint as dj

from ._processes import process_alive


@dataclass(frozen=True)
class Verdict:
    """Whether a reservation's worker is alive: ``stale`` True (gone), False (alive), None (not judged), and why."""

    stale: bool | None
    reason: str


@dataclass(frozen=True)
class ServerConnections:
    """The connections a database server lists, as one account sees them."""

    ids: frozenset[int]  # connection ids (MySQL) or backend pids (PostgreSQL) the server lists now
    all_accounts: bool  # whether every account's connections are listed (PostgreSQL; MySQL with PROCESS)
    account: str  # the user name of the account that looked
    backend: str  # 'mysql' or 'postgresql'

    @classmethod
    def read(cls, connection: dj.Connection) -> ServerConnections:
        """The server's connections now, as ``connection``'s account sees them (one or two queries)."""
        account = connection.get_user().partition("@")[0]
        backend = connection.adapter.backend
        if backend == "postgresql":
            ids = connection.query("SELECT pid FROM pg_stat_activity").fetchall()
            return cls(frozenset(int(row[0]) for row in ids), True, account, backend)
        ids = connection.query("SELECT ID FROM information_schema.PROCESSLIST").fetchall()
        granted = connection.query(
            "SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE = 'PROCESS'"
        ).fetchone()[0]
        return cls(frozenset(int(row[0]) for row in ids), bool(granted), account, backend)

    def judge(self, row: Mapping[str, Any], here: str) -> Verdict:
        """Whether the worker of the reserved jobs ``row`` (``connection_id``, ``user``, ``host``, ``pid``) is alive.

        ``here`` is this host's name.
        """
        connection_id = int(row.get("connection_id") or 0)
        if connection_id > 0:
            owner = str(row.get("user") or "").partition("@")[0]
            if not self.all_accounts and owner != self.account:
                return Verdict(
                    None,
                    f"not judged: account {self.account!r} lacks the PROCESS privilege to see {owner!r}'s "
                    "connections (never cleared from here: clear it as that account or one with PROCESS)",
                )
            if connection_id in self.ids:
                return Verdict(False, f"running (connection {connection_id})")
            return Verdict(True, f"stale: its connection {connection_id} is gone")
        if row.get("host") == here and process_alive(row.get("pid")):
            return Verdict(False, "running (no connection recorded; its process runs here)")
        return Verdict(None, "not judged: no connection recorded")
