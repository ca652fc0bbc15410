"""Logins: each request is answered as its own database account, on that account's own connection.

The pipeline module is imported once with the server's account (from DataJoint's settings) only to
learn its tables. For every logged-in account, :class:`Accounts` opens a ``dj.Connection`` with the
account's own name and password and builds a :class:`UserPipeline`: the same tables, spawned from
the database on that connection with DataJoint's public API (``dj.VirtualModule``), so that every
read and write is done, and allowed or refused, by the database as that account.

Connections are kept in a small least-recently-used cache keyed by the account name and a keyed
hash (HMAC) of its password, never the password itself; a request holds its connection's lock
while it works, since a connection serves one request at a time. Requests of one account at the
same time use up to :data:`POOL_SIZE` connections of that account, opened as needed.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import datajoint as dj

from .._datajoint_compat import match_backslashes_as_datajoint_escapes_them
from ..database import database_errors, is_refused_login, schema_refused, translate
from ..errors import DatabaseUnreachableError, LoginRefusedError, PermissionDeniedError
from ..pipeline import module_tables, schema_modules

CACHE_SIZE = 16  # accounts whose connections a worker keeps open
POOL_SIZE = 4  # connections of one account a worker opens at most, for requests at the same time


@dataclass(frozen=True)
class Credentials:
    """A database account and its password (the password is never shown by ``repr``)."""

    user: str
    password: str = field(repr=False)


@dataclass
class UserPipeline:
    """The pipeline's tables bound to one account's connection.

    ``pipeline`` has the names of the served pipeline module that are tables (``Subject``,
    ``Experimenter``, ``Project``, ...) or schema modules (``session``, ``inventory``, ...), each
    table a class on ``connection``; ``session`` is the session module among them.
    """

    user: str
    connection: dj.Connection
    pipeline: ModuleType
    session: ModuleType
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    memo: dict = field(default_factory=dict, repr=False)  # answers kept for a while (service.rights)


def bind(pipeline: ModuleType, connection: dj.Connection) -> ModuleType:
    """A module like ``pipeline`` whose tables (and those of its schema modules) use ``connection``.

    Each schema the pipeline uses is spawned once with ``dj.VirtualModule`` on ``connection``; its
    classes stand in for the pipeline's, found by full table name, with the pipeline's class names
    and module names (so that tables are labelled the same way).
    Raises :class:`PermissionDeniedError` when the account cannot read one of the schemas.
    """
    spawned: dict[str, ModuleType] = {}

    def counterpart(table: type[dj.Table]) -> type[dj.Table]:
        if table.database not in spawned:
            try:
                spawned[table.database] = dj.VirtualModule(table.database, table.database, connection=connection)
            except dj.errors.DataJointError as err:
                typed = translate(err)
                if isinstance(typed, DatabaseUnreachableError):
                    raise typed from None
                raise schema_refused(table.database, connection.conn_info["user"]) from None
        for obj in module_tables(spawned[table.database]).values():
            if obj.full_table_name == table.full_table_name:
                obj.__module__ = table.__module__
                return obj
        raise PermissionDeniedError(
            f"your account {connection.conn_info['user']} may not read table {table.full_table_name} "
            f"of schema {table.database}"
        )

    def mirror(module: ModuleType) -> ModuleType:
        copy = ModuleType(module.__name__)
        for name, table in module_tables(module).items():
            setattr(copy, name, counterpart(table))
        return copy

    bound = mirror(pipeline)
    for name, module in schema_modules(pipeline).items():
        setattr(bound, name, mirror(module))
    return bound


class Accounts:
    """Connections and bound pipelines of the accounts logged in to one worker process.

    ``pipeline`` is the served pipeline module (imported with the server's account); ``server`` is
    that account's connection, whose host, port, backend and TLS choice every login uses.
    """

    def __init__(
        self, pipeline: ModuleType, server: dj.Connection, key: bytes, size: int = CACHE_SIZE, pool: int = POOL_SIZE
    ) -> None:
        self._pipeline = pipeline
        self._info = dict(server.conn_info)
        self._backend = server.adapter.backend
        self._key = key
        self._size = size
        self._pool = pool
        self._cache: OrderedDict[tuple[str, str], list[UserPipeline]] = OrderedDict()
        self._lock = threading.Lock()
        self._binding = threading.Lock()  # one login's tables spawned at a time: DataJoint's registries are shared

    def _cache_key(self, credentials: Credentials) -> tuple[str, str]:
        digest = hmac.new(self._key, credentials.password.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return credentials.user, digest.hexdigest()

    def _open(self, credentials: Credentials) -> UserPipeline:
        info = self._info
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "MariaDB is not officially supported", UserWarning)
                connection = dj.Connection(
                    info["host"],
                    credentials.user,
                    credentials.password,
                    port=info["port"],
                    use_tls=info.get("ssl_input"),
                    backend=self._backend,
                )
        except Exception as err:  # the driver's own error: a refused login or an unreachable server
            if is_refused_login(err):
                raise LoginRefusedError(f"the database refused the login of account {credentials.user!r}") from None
            raise DatabaseUnreachableError(
                f"cannot reach the database at {info['host']}:{info['port']} as {credentials.user!r}: "
                f"{type(err).__name__}"
            ) from None
        match_backslashes_as_datajoint_escapes_them(connection)
        try:
            with self._binding:
                bound = bind(self._pipeline, connection)
        except BaseException:
            connection.close()
            raise
        return UserPipeline(credentials.user, connection, bound, bound.session)

    @contextmanager
    def use(self, credentials: Credentials) -> Iterator[UserPipeline]:
        """The account's bound pipeline, for this request alone while the block runs.

        Failures of the database inside the block are raised as typed errors naming the account
        (:func:`~element_session.database.database_errors`): the one place where the web layer
        translates them.

        Raises
        ------
        LoginRefusedError
            The database refused the account's name or password.
        PermissionDeniedError
            The account may not read the pipeline's schemas, or may not do what the block tried.
        DatabaseUnreachableError
            The database cannot be reached.
        """
        key = self._cache_key(credentials)
        entry = waiting = None
        with self._lock:
            entries = self._cache.pop(key, None)
            if entries is not None:
                self._cache[key] = entries
                entry = next((e for e in entries if e.lock.acquire(blocking=False)), None)
                opening = entry is None and len(entries) < self._pool
                waiting = entries[0] if entry is None and not opening else None
        if entries is None or (entry is None and waiting is None):  # a dropped connection is reconnected later
            entry = self._open(credentials)
            entry.lock.acquire()
            evicted = []
            with self._lock:
                self._cache.setdefault(key, []).append(entry)
                self._cache.move_to_end(key)
                while len(self._cache) > self._size:
                    evicted.extend(self._cache.popitem(last=False)[1])
            for old in evicted:
                with old.lock:  # after the request that may still be using it
                    old.connection.close()
        elif entry is None:  # every connection of the account is busy and the pool is full: wait for one
            assert waiting is not None  # the first branch took the case of none
            entry = waiting
            entry.lock.acquire()
        try:
            with database_errors(entry.connection):
                yield entry
        finally:
            entry.lock.release()

    def kept(self, credentials: Credentials, name: str) -> Any:
        """What a request of the account kept in a connection's ``memo`` under ``name``, or None: no
        connection is opened or waited for and the database is not asked (an error page may answer its failure)."""
        with self._lock:
            entries = list(self._cache.get(self._cache_key(credentials), ()))
        return next((e.memo[name] for e in entries if name in e.memo), None)

    def close(self) -> None:
        """Close every cached connection."""
        with self._lock:
            while self._cache:
                for entry in self._cache.popitem()[1]:
                    entry.connection.close()
