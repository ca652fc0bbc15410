"""A session's life: its status, the transitions allowed between states, and work restricted to states.

Each session variant declares ``SessionStatus`` (:class:`element_session.tables.SessionStatus`):
one row per session, set only by :func:`set_status`. A session without a row (every session stored
before this table existed, and sessions ingested without a ``status`` column) counts as
``acquired`` (:data:`DEFAULT_STATUS`). The transitions allowed (:data:`TRANSITIONS`):

=============  ===========================================================
from           to
=============  ===========================================================
``planned``    ``acquiring``, ``aborted``
``acquiring``  ``acquired``, ``aborted``
``acquired``   ``qc_passed``, ``qc_failed``
``qc_failed``  ``acquired`` (re-checked after a fix; a reason is required)
``qc_passed``  ``acquired`` (reopened; a reason is required)
=============  ===========================================================

Two people changing one session's status at once: the change locks the session's row
(``SELECT ... FOR UPDATE``) and reads the current state under that lock in the same transaction,
so the second waits for the first, then finds the new state and gets
:class:`~element_session.errors.InvalidStatusTransitionError` where its transition no longer applies:
never a lost update. A ``qc_passed`` session's note, attributes, directory, experimenters and
projects cannot be edited through this package (:func:`check_editable`) until it is reopened.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import datajoint as dj

from ._datajoint_compat import cascade_counts
from .database import database_errors
from .errors import InputProblem, InvalidStatusTransitionError, SessionLockedError, SessionNotFoundError, one_problem
from .formats import key_text
from .history import reason as history_reason
from .lookups import as_stored
from .pipeline import linking_module_of, session_module_of, tables

#: Every state of a session, in the order of its life.
STATES = ("planned", "acquiring", "acquired", "qc_passed", "qc_failed", "aborted")
#: The state of a session without a ``SessionStatus`` row.
DEFAULT_STATUS = "acquired"
#: The states each state may move to (``aborted`` is final).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "planned": ("acquiring", "aborted"),
    "acquiring": ("acquired", "aborted"),
    "acquired": ("qc_passed", "qc_failed"),
    "qc_failed": ("acquired",),
    "qc_passed": ("acquired",),
    "aborted": (),
}
#: Transitions that need a reason (moving a checked session back).
REASON_REQUIRED = frozenset({("qc_failed", "acquired"), ("qc_passed", "acquired")})
#: The states whose data exist: what a pipeline processes by default ("acquired or later").
ACQUIRED_OR_LATER = ("acquired", "qc_passed", "qc_failed")
#: States in which a session's content cannot be edited (reopen it first).
LOCKED = ("qc_passed",)
#: States a session moves back into (besides reopening a :data:`LOCKED` one): ``set_status`` lists the
#: downstream rows made from it, which are kept.
MOVED_BACK = ("planned", "acquiring", "aborted", "qc_failed")
#: Width of ``status_reason``.
MAX_REASON = 1024

#: SQL of the server's time in UTC (microseconds) and of the account that is connected.
_NOW_AND_ACCOUNT = {
    "mysql": "SELECT UTC_TIMESTAMP(6), USER()",
    "postgresql": "SELECT clock_timestamp() AT TIME ZONE 'UTC', session_user",
}


@dataclass
class StatusChange:
    """What :func:`set_status` did: the session, its state before and after, and who set it when.

    ``downstream`` (table label -> rows) lists the rows downstream tables hold for the session where it
    moved back (:data:`MOVED_BACK`: failed QC, or out of the states processed by default) or was
    reopened: they are kept, not deleted.
    """

    key: dict[str, Any]
    before: str
    after: str
    set_time: dt.datetime
    set_by: str
    reason: str = ""
    downstream: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        text = f"session {key_text(self.key)}: {self.before} -> {self.after}"
        if self.downstream:
            held = ", ".join(f"{table} {n}" for table, n in self.downstream.items())
            text += (
                f"\ndownstream tables hold rows made from this session: {held}; they are kept (to make them "
                "again from the session as it is now, delete them and run populate: it makes them where a table "
                f"processes {self.after} sessions)"
            )
        return text


def check_status(value: Any, source: str = "arguments", column: str = "status", row: int | None = None) -> str:
    """``value`` if it is one of :data:`STATES`.

    Raises
    ------
    InputError
        Naming ``source``, ``column`` (and ``row``) and the states there are.
    """
    if not isinstance(value, str) or value not in STATES:  # `in` of pandas.NA or an array is no answer
        raise one_problem(source, column, value, f"not a session status: one of {', '.join(STATES)}", row=row)
    return value


def _session_key(m: ModuleType, key: Mapping[str, Any], lock: bool) -> dict[str, Any]:
    """The full key of the one session ``key`` names (its times as instants: :func:`~.lookups.as_stored`), its row
    locked (``FOR UPDATE``) if ``lock``.

    A name of ``key`` that is no attribute of ``Session`` is refused (DataJoint leaves it out of the
    restriction, so ``sesion_id=3`` would name a subject's only session, whatever its number)."""
    unknown = [name for name in key if name not in m.Session.heading.names]
    if unknown:
        attributes = ", ".join(m.Session.heading.names)
        reason = f"{', '.join(unknown)}: not an attribute of Session ({attributes})"
        raise one_problem("arguments", "key", dict(key), reason)
    session = m.Session & as_stored(m.Session, key)
    primary = list(m.Session.primary_key)
    fields = ", ".join(m.Session.connection.adapter.quote_identifier(k) for k in primary)
    sql = f"SELECT {fields} FROM {m.Session.full_table_name}{session.where_clause()}"
    rows = m.Session.connection.query(sql + (" FOR UPDATE" if lock else "")).fetchall()
    if not rows:
        raise SessionNotFoundError(f"no session {key_text(dict(key))} in schema {m.Session.database}")
    if len(rows) > 1:
        raise one_problem("arguments", "key", dict(key), f"{len(rows)} sessions match: name one session")
    return dict(zip(primary, rows[0], strict=True))


def _stored(m: ModuleType, key: Mapping[str, Any], lock: bool) -> dict[str, Any] | None:
    """The ``SessionStatus`` row of the session ``key`` (None where it has none), locked if ``lock``."""
    rows = _rows(m.SessionStatus, dict(key), lock)
    return rows[0] if rows else None


def status_of(key: Mapping[str, Any], *, session_module: ModuleType | None = None) -> str:
    """The status of the session ``key`` (:data:`DEFAULT_STATUS` where it has no status row).

    Raises
    ------
    SessionNotFoundError
        No session matches ``key``.
    InputError
        ``key`` matches several sessions.
    """
    m = session_module or session_module_of(dict(key))
    with database_errors(m.Session.connection):
        full = _session_key(m, key, lock=False)
        row = _stored(m, full, lock=False)
    return DEFAULT_STATUS if row is None else row["session_status"]


def set_status(
    key: Mapping[str, Any], status: str, *, reason: str | None = None, session_module: ModuleType | None = None
) -> StatusChange:
    """Move the session ``key`` to ``status``, in one transaction, if :data:`TRANSITIONS` allows it.

    The row records the server's time (UTC, microseconds), the database account and ``reason``
    (required by :data:`REASON_REQUIRED`). The session's row is locked for the check and the write,
    so that of two concurrent changes the second sees the first's result (see the module's text).

    Returns
    -------
    StatusChange
        The session's full key, the states before and after, and the rows downstream tables hold for it
        where it moved back (:data:`MOVED_BACK`) or was reopened.

    Raises
    ------
    InvalidStatusTransitionError
        The session's current state cannot move to ``status`` (the error names both and the allowed ones).
    InputError
        ``status`` is not a state, the reason is missing where required or cannot be stored, or
        ``key`` matches several sessions.
    SessionNotFoundError
        No session matches ``key``.
    """
    check_status(status)
    text = "" if reason is None else check_reason(reason)
    m = session_module or session_module_of(dict(key))
    connection = m.Session.connection
    with database_errors(connection), connection.transaction, history_reason(connection, text):
        full = _session_key(m, key, lock=True)
        stored = _stored(m, full, lock=True)
        current = DEFAULT_STATUS if stored is None else stored["session_status"]
        if status not in TRANSITIONS[current]:
            raise InvalidStatusTransitionError(full, current, status, TRANSITIONS[current])
        if (current, status) in REASON_REQUIRED and not text.strip():
            raise one_problem("arguments", "reason", None, f"required to move a {current} session back to {status}")
        now, account = server_stamp(connection)
        row = {**full, "session_status": status, "status_set_time": now, "status_set_by": account}
        row["status_reason"] = text
        if stored is None:
            m.SessionStatus.insert1(row)
        else:
            m.SessionStatus.update1(row)
    change = StatusChange(full, current, status, now, account, text)
    if status in MOVED_BACK or current in LOCKED:
        change.downstream = downstream_rows(m, full)
    return change


def server_stamp(connection: dj.Connection) -> tuple[dt.datetime, str]:
    """The server's time (naive, UTC, microseconds) and the account ``connection`` is logged in as."""
    now, account = connection.query(_NOW_AND_ACCOUNT[connection.adapter.backend]).fetchone()
    return now, account


def check_reason(reason: str) -> str:
    """``reason`` if the status table can store it.

    Raises
    ------
    InputError
        Too long (more than :data:`MAX_REASON` characters) or holding a NUL character.
    """
    if "\x00" in reason:
        raise one_problem("arguments", "reason", reason, "contains a NUL character")
    if len(reason) > MAX_REASON:
        raise one_problem("arguments", "reason", reason, f"{len(reason)} characters, longer than {MAX_REASON}")
    return reason


def in_status(*states: str, session_module: ModuleType | None = None) -> list[Any]:
    """A restriction to sessions in one of ``states``, for ``Session`` and any table with its key.

    ``Session & in_status("qc_passed")``; a session without a status row is in ``acquired``. Each
    variant module offers it for its own tables (``session.in_status(...)``), so that a downstream
    table limits its work in one line::

        key_source = session.Session & session.in_status("qc_passed")

    The restriction is read when a query runs: a session that moves into ``states`` is in the next
    ``populate``'s keys. ``session_module`` must be activated before this is called.

    Raises
    ------
    InputError
        A state that is not one of :data:`STATES`, or none given.
    """
    if not states:
        raise one_problem("arguments", "states", states, f"give one or more of {', '.join(STATES)}")
    for state in states:
        check_status(state, column="states")
    m = session_module or session_module_of()
    named = m.SessionStatus & [{"session_status": state} for state in states]
    restriction: list[Any] = [named.proj()]
    if DEFAULT_STATUS in states:
        restriction.append((m.Session - m.SessionStatus).proj())
    return restriction


class KeysInStatus:
    """A downstream table's ``key_source``: its default keys, of sessions in given states only.

    One line in the table's class::

        key_source = KeysInStatus("qc_passed")

    ``populate`` then never reserves a key of a session in another state; once a session moves into
    ``states``, the next ``populate`` makes it. The session module is the ``session`` the table's
    schema was activated with (:func:`element_session.linking.activate_downstream`), else
    :func:`~element_session.pipeline.session_module_of`'s default.

    Raises
    ------
    InputError
        A state that is not one of :data:`STATES` (when the class is defined), or none given.
    """

    def __init__(self, *states: str) -> None:
        if not states:
            raise one_problem("arguments", "states", states, f"give one or more of {', '.join(STATES)}")
        self.states = tuple(check_status(state, column="states") for state in states)

    def __get__(self, instance: Any, owner: type) -> Any:
        from datajoint.autopopulate import AutoPopulate

        table = instance if instance is not None else owner()
        context = getattr(owner, "declaration_context", None) or {}  # the namespace DataJoint declared it in
        session_module = context.get("session") or session_module_of()
        return AutoPopulate.key_source.fget(table) & in_status(*self.states, session_module=session_module)


def check_editable(
    m: ModuleType, keys: Iterable[Mapping[str, Any]], source: str = "arguments", change: str = "edited"
) -> None:
    """Refuse edits (or another ``change``: ``"deleted"``) of sessions among ``keys`` in a :data:`LOCKED` state.

    Called inside the transaction of the edit: the sessions' rows are locked (``FOR UPDATE``, as
    :func:`set_status` locks them) and their statuses read under that lock, so that a status set at
    the same moment waits for the edit, or the edit sees the new status: never an edit of a session
    that passed QC meanwhile. ``keys`` are read in batches of :data:`KEYS_PER_LOCK`.

    Raises
    ------
    SessionLockedError
        Naming each such session and how to reopen it.
    """
    keys = [dict(k) for k in keys]
    locked = []
    for start in range(0, len(keys), KEYS_PER_LOCK):
        batch = keys[start : start + KEYS_PER_LOCK]
        _rows(m.Session, batch)
        locked += [row for row in _rows(m.SessionStatus, batch) if row["session_status"] in LOCKED]
    if locked:
        raise SessionLockedError([InputProblem(source, None, "status", row["session_status"],
                                               locked_reason(row, change=change)) for row in locked])  # fmt: skip


#: Sessions whose rows :func:`check_editable` locks with one statement.
KEYS_PER_LOCK = 1_000


def _rows(table: Any, restriction: Any, lock: bool = True) -> list[dict[str, Any]]:
    """The rows of ``table`` that ``restriction`` selects, as dicts; locked (``SELECT ... FOR UPDATE``) if ``lock``.

    A locking read sees the latest committed rows, also in MySQL's consistent-snapshot transactions.
    """
    names = list(table.heading.names)
    q = table.connection.adapter.quote_identifier
    sql = f"SELECT {', '.join(map(q, names))} FROM {table.full_table_name}{(table & restriction).where_clause()}"
    found = table.connection.query(sql + (" FOR UPDATE" if lock else "")).fetchall()
    return [dict(zip(names, row, strict=True)) for row in found]


#: How to reopen a session, as the command line and Python do it, and as the web says it (:func:`in_words`).
_REOPEN = "element-session status set ... acquired --reason TEXT, or set_status(key, 'acquired', reason=...)"
_REOPEN_IN_WORDS = "set its status back to acquired, with a reason"
#: Said with ingest's refusal of a changed value of a qc_passed session: reopening does not make ingest change it
#: (and as the web says it, whose add form and API ingest).
NOT_BY_INGEST = (
    "ingest never changes a stored session (after reopening, change it on the web's edit page or with update1)"
)
_NOT_BY_INGEST_IN_WORDS = "adding never changes a stored session (after reopening, change it on its edit page)"


def in_words(err: SessionLockedError) -> SessionLockedError:
    """``err`` as the web tells it (its pages and its JSON API): how to reopen a session in words.

    The same problems, each reason saying "set its status back to acquired, with a reason" where
    it named the command and the Python call (:func:`locked_reason`), which a web user has neither of.
    """
    said = [
        InputProblem(p.source, p.row, p.column, p.value,
                     p.reason.replace(_REOPEN, _REOPEN_IN_WORDS).replace(NOT_BY_INGEST, _NOT_BY_INGEST_IN_WORDS))
        for p in err.problems
    ]  # fmt: skip
    return SessionLockedError(said)


def locked_reason(row: Mapping[str, Any], reopen: str = _REOPEN, change: str = "edited") -> str:
    """Why an edit (or another ``change``) of the session of status ``row`` is refused, and how to reopen it
    (``reopen``)."""
    key = {k: v for k, v in row.items() if not k.startswith(("session_status", "status_"))}
    return f"session {key_text(key)} is {row['session_status']}: it cannot be {change}; reopen it first ({reopen})"


def downstream_rows(m: ModuleType, key: Mapping[str, Any]) -> dict[str, int]:
    """Rows per downstream table made from the session ``key``: tables outside its schema.

    Tables are named as people name them, ``inventory.SessionInventory``
    (:func:`element_session.pipeline.label`), where the session module's linking module holds them;
    others by ``schema.table`` on the server.
    """
    m.Session.connection.dependencies.load()
    counts = cascade_counts(m.Session & dict(key))
    own = m.Session.database
    linking = linking_module_of(m)
    labels = {t.full_table_name: name for name, t in tables(linking).items()} if linking is not None else {}
    return {
        labels.get(name) or name.replace("`", "").replace('"', ""): n
        for name, n in counts.items()
        if n and name.split(".")[0].strip('`"') != own
    }
