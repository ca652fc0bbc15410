"""A subject's sessions over time as an inline SVG (drawn here, on the server: no script, no CDN).

Sessions are counted per ISO week (Monday to Sunday, UTC) and drawn as bars, so that the plot stays
readable with hundreds of sessions: the tallest bar is labelled with its count, each bar is titled
with its week and count, and weeks without sessions are gaps.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from html import escape
from typing import Any

WIDTH, HEIGHT, MARGIN, BOTTOM = 720, 160, 40, 24


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def sessions_per_week(records: list[dict[str, Any]]) -> list[tuple[dt.date, int]]:
    """(Monday of the week, sessions that week) for every week from the first session's to the last's, in UTC."""
    weeks = Counter(
        _monday(dt.datetime.fromisoformat(r["session_datetime"]).date()) for r in records if r["session_datetime"]
    )
    if not weeks:
        return []
    first, last = min(weeks), max(weeks)
    count = (last - first).days // 7 + 1
    return [(first + dt.timedelta(weeks=i), weeks.get(first + dt.timedelta(weeks=i), 0)) for i in range(count)]


def sessions_over_time(records: list[dict[str, Any]]) -> str:
    """An SVG of the sessions per week as bars; '' when no session has a start time.

    ``records`` are sessions' JSON objects (:func:`element_session.formats.session_records`).
    """
    weeks = sessions_per_week(records)
    if not weeks:
        return ""
    most = max(n for _, n in weeks)
    usable_w, usable_h = WIDTH - 2 * MARGIN, HEIGHT - BOTTOM - 16
    step = usable_w / len(weeks)
    bars = []
    for i, (monday, n) in enumerate(weeks):
        if not n:
            continue
        height = usable_h * n / most
        x, y = MARGIN + i * step, HEIGHT - BOTTOM - height
        title = f"week of {monday.isoformat()}: {n} session{'s' if n != 1 else ''}"
        bars.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(step * 0.8, 1):.1f}" height="{height:.1f}">'
            f"<title>{escape(title)}</title></rect>"
        )
    axis = f'<line x1="{MARGIN}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - BOTTOM}"/>'
    first, last = weeks[0][0], weeks[-1][0]
    labels = (
        f'<text x="{MARGIN}" y="{HEIGHT - 6}">{escape(first.isoformat())}</text>'
        f'<text x="{WIDTH - MARGIN}" y="{HEIGHT - 6}" text-anchor="end">{escape(last.isoformat())}</text>'
        f'<text x="{MARGIN - 4}" y="{HEIGHT - BOTTOM - usable_h + 4:.0f}" text-anchor="end">{most}</text>'
    )
    total = sum(n for _, n in weeks)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{total} sessions in {len(weeks)} weeks from {first} to {last} (UTC), at most {most} a week">'
        f"{axis}{''.join(bars)}{labels}</svg>"
    )
