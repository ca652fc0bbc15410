"""A read timeout for PostgreSQL: psycopg2 connections whose every call waits at most N seconds for the server.

psycopg2 has no read timeout, and libpq waits for an answer as long as the TCP connection stands:
a frozen server (a stopped process, a hung host whose kernel still acknowledges) or a dead SSH
tunnel makes a query wait forever. TCP keepalives and ``tcp_user_timeout`` do not help there (the
peer's kernel, or the tunnel's local end, acknowledges everything), a server-side
``statement_timeout`` needs the server to run, and a cancel request (``connection.cancel()``) needs
the server to answer it. psycopg2's documented client-side way, a wait callback
(``set_wait_callback``), refuses ``COPY``, which :mod:`element_session.ingest.bulk` and
:mod:`element_session.session_frame` use.

Here a connection of class :class:`BoundedConnection` (psycopg2's ``connection_factory``) hands
out cursors whose ``execute``, ``executemany``, ``callproc`` and ``copy_*`` calls arm a
:class:`Watchdog`: if the server has not answered a call within the read timeout, the watchdog shuts
the connection's socket down, libpq returns at once, and the call raises
``psycopg2.OperationalError`` naming the timeout (the connection is closed; DataJoint's reconnect
opens a new one). This is the meaning ``ELEMENT_SESSION_READ_TIMEOUT`` has on MySQL/MariaDB, where
PyMySQL's ``read_timeout`` bounds every wait for the server (results are read within the call on
both backends: psycopg2's cursors are client-side).
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extensions

IDLE_SECONDS = 30.0  #: a watchdog's thread ends after this long without a call (a later call starts it again)
_BOUNDED_CALLS = ("execute", "executemany", "callproc", "copy_expert", "copy_from", "copy_to")


class Watchdog:
    """Shuts a connection's socket down when a call runs past its deadline; one thread per connection, on demand.

    ``seconds`` is the read timeout (None: no limit, nothing is watched); ``variable`` the setting
    that gave it, named in the error.
    """

    def __init__(self, seconds: float | None, variable: str) -> None:
        self.seconds, self.variable = seconds, variable
        self._wake = threading.Condition()
        self._deadline: float | None = None
        self._socket = -1  # the file descriptor of the call being watched
        self._fired = False
        self._thread: threading.Thread | None = None

    @contextmanager
    def armed(self, fileno: Callable[[], int]) -> Iterator[None]:
        """Watch the block: past the deadline the socket ``fileno()`` is shut down.

        Raises
        ------
        psycopg2.OperationalError
            The server did not answer within ``seconds`` (the message names the timeout and its setting).
        """
        if self.seconds is None:
            yield
            return
        with self._wake:
            self._deadline, self._socket, self._fired = time.monotonic() + self.seconds, fileno(), False
            if self._thread is None or not self._thread.is_alive():  # never started, idle, or lost in a fork
                self._thread = threading.Thread(target=self._watch, name="element-session-read-timeout", daemon=True)
                self._thread.start()
            else:
                self._wake.notify()
        try:
            yield
        except psycopg2.Error as err:
            if self._fired:
                raise psycopg2.OperationalError(
                    f"no answer from the server within {self.seconds:g} s ({self.variable}); "
                    "the connection was closed (timed out)"
                ) from err
            raise
        finally:
            with self._wake:
                self._deadline = None

    def _watch(self) -> None:
        with self._wake:
            while True:
                if self._deadline is None:
                    if not self._wake.wait(IDLE_SECONDS) and self._deadline is None:
                        self._thread = None
                        return
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                self._fired, self._deadline = True, None
                _shut_down(self._socket)


def _shut_down(fd: int) -> None:
    """Shut the socket ``fd`` down for both directions, so that whoever waits on it returns at once."""
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:  # the duplicate shares the socket
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing waits on it any more


class BoundedConnection(psycopg2.extensions.connection):
    """A psycopg2 connection whose cursors' calls wait at most ``watchdog.seconds`` for the server.

    Set :attr:`watchdog` right after connecting (:func:`connect` does); until then calls are unbounded.
    """

    watchdog = Watchdog(None, "")

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        """psycopg2's ``cursor()``, of a class (the one asked for, or the default) with its calls watched."""
        factory = kwargs.pop("cursor_factory", None) or self.cursor_factory or psycopg2.extensions.cursor
        return super().cursor(*args, cursor_factory=_bounded(factory), **kwargs)


@functools.cache
def _bounded(factory: type) -> type:
    """A subclass of the cursor class ``factory`` whose calls to the server are watched by its connection's watchdog."""

    def watched(name: str) -> Callable[..., Any]:
        call = getattr(factory, name)

        @functools.wraps(call)
        def bounded(self: Any, *args: Any, **kwargs: Any) -> Any:
            connection = self.connection
            with connection.watchdog.armed(connection.fileno):
                return call(self, *args, **kwargs)

        return bounded

    return type(f"Bounded{factory.__name__}", (factory,), {name: watched(name) for name in _BOUNDED_CALLS})


def connect(read_timeout: float | None, variable: str, **params: Any) -> BoundedConnection:
    """``psycopg2.connect(**params)`` as a :class:`BoundedConnection` with a read timeout of ``read_timeout`` seconds.

    ``variable`` is the setting the timeout comes from, named in the error when it runs out.
    """
    params.setdefault("connection_factory", BoundedConnection)
    connection = psycopg2.connect(**params)
    connection.watchdog = Watchdog(read_timeout, variable)
    return connection
