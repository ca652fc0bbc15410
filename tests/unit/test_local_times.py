"""The start times in their own zones: the per-zone numpy conversion of many and the one-by-one of a page agree."""

from __future__ import annotations

import datetime as dt

import numpy as np

from element_session import times
from element_session.session_frame import _FEW, local_times

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "+05:45", "-03:30", "UTC", None, "Not/AZone"]


def _sample(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` start times (microseconds since 1970, some missing) across DST changes, and a zone for each."""
    rng = np.random.default_rng(7)
    counts = rng.integers(-631152000000000, 4102444800000000, n).tolist()  # 1950 .. 2100, microseconds
    counts[::11] = [c - c % 1_000_000 for c in counts[::11]]  # whole seconds: no fraction written
    micros = np.array([None if i % 13 == 5 else c for i, c in enumerate(counts)], dtype=object)
    zones = np.array([ZONES[i % len(ZONES)] for i in range(n)], dtype=object)
    return micros, zones


def _expected(micros: np.ndarray, zones: np.ndarray) -> list[str | None]:
    found: list[str | None] = []
    for count, zone in zip(micros.tolist(), zones.tolist(), strict=True):
        try:
            moment = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=count) if count is not None else None
            found.append(None if moment is None else times.local_time(moment, zone).isoformat())
        except times.TimeError:
            found.append(None)
    return found


def test_many_start_times_are_what_local_time_writes():
    micros, zones = _sample(_FEW * 5)
    assert local_times(micros, zones).tolist() == _expected(micros, zones)


def test_a_page_of_start_times_is_what_local_time_writes():
    micros, zones = _sample(_FEW)
    got = local_times(micros, zones).tolist()
    assert got == _expected(micros, zones) and any(got) and None in got
