"""The id variant's list, newest first, is paged by the database: the pages of sorting every key here."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import types
from collections.abc import Iterator

import datajoint as dj
import pytest

from element_session import session_with_id
from element_session.linking import drop_schema
from element_session.web import service
from element_session.web.accounts import UserPipeline
from tests.helpers import declare_lab

BACKEND = os.environ.get("DJ_BACKEND", "mysql")
START = dt.datetime(2024, 5, 1, 9, 0)


@pytest.fixture(scope="module")
def user(connection, prefix) -> Iterator[UserPipeline]:
    """Sessions of three subjects: some share a start time, some have none."""
    collation = "utf8mb4_bin" if BACKEND == "mysql" else "deterministic"
    lab = declare_lab(connection, f"{prefix}pg{secrets.token_hex(3)}_", "utf8mb4", collation)
    subjects = ["A1", "B2", "C3"]
    lab.Subject.insert([{"subject": s, "sex": "F", "subject_birth_date": "2020-01-01"} for s in subjects])
    rows = []
    for number in range(1, 9):
        for i, subject in enumerate(subjects):
            when = None if (number + i) % 4 == 0 else START + dt.timedelta(days=number // 3)  # ties across days
            rows.append({"subject": subject, "session_id": number, "session_datetime": when})
    session_with_id.Session.insert(rows)
    pipeline = types.ModuleType("lab_pipeline")
    pipeline.__dict__.update(vars(lab), session=session_with_id)
    yield UserPipeline("tester", dj.conn(), pipeline, session_with_id)
    drop_schema(session_with_id.schema)
    drop_schema(lab.lab)


def _pages(user: UserPipeline, keys_of, limit: int, offset: int, after: str | None) -> list[tuple]:
    selection = service.Selection({}, limit, offset, after)
    names = list(session_with_id.Session.primary_key)
    found = service._found(user, selection)
    key = service._after_key(user, selection, names)
    return keys_of(user, found, names, selection, key)


def _sorted_here(user, found, names, selection, after):
    return service._sorted_page(found, names, selection, "-start", after)


@pytest.mark.parametrize("limit", [1, 4, 7, 30])
@pytest.mark.parametrize("offset", [0, 3, 17, 22, 40])
def test_pages_by_offset_are_those_sorted_here(user, limit, offset):
    assert service._database_orders_keys(user)
    wanted = _pages(user, _sorted_here, limit, offset, None)
    assert _pages(user, service._timed_first_keys, limit, offset, None) == wanted


@pytest.mark.parametrize("position", [0, 5, 15, 16, 20, 23])
@pytest.mark.parametrize("offset", [0, 2])
def test_pages_after_a_cursor_are_those_sorted_here(user, position, offset):
    everything = _pages(user, _sorted_here, 100, 0, None)
    assert len(everything) == 24
    after = service.paging.cursor(everything[position])
    wanted = _pages(user, _sorted_here, 5, offset, after)
    assert _pages(user, service._timed_first_keys, 5, offset, after) == wanted


def test_the_list_reads_no_key_but_the_page(user, monkeypatch):
    """The page is the database's: the keys are never all read and sorted here."""
    monkeypatch.setattr(service, "_sorted_page", None)  # a call would fail
    found = service.session_page(user, service.Selection({}, 5, 0, None), newest_first=True)
    assert [(r["subject"], r["session_id"]) for r in found.rows][:2] == [("C3", 8), ("C3", 7)]
