"""A subject's sessions over time as an inline SVG (drawn here, on the server: no script, no CDN)."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

WIDTH, HEIGHT, MARGIN = 720, 120, 40


def sessions_over_time(records: list[dict[str, Any]]) -> str:
    """An SVG of one dot per session on a time axis (UTC), each titled with its start; '' for no start times.

    ``records`` are sessions' JSON objects (:func:`element_session.formats.session_records`).
    """
    times = sorted(dt.datetime.fromisoformat(r["session_datetime"]) for r in records if r["session_datetime"])
    if not times:
        return ""
    first, last = times[0], times[-1]
    span = (last - first).total_seconds() or 1.0
    usable = WIDTH - 2 * MARGIN

    def x(t: dt.datetime) -> float:
        return MARGIN + (usable * (t - first).total_seconds() / span if last > first else usable / 2)

    dots = "".join(
        f'<circle cx="{x(t):.1f}" cy="{HEIGHT / 2:.0f}" r="5"><title>{escape(t.isoformat())}</title></circle>'
        for t in times
    )
    axis = f'<line x1="{MARGIN}" y1="{HEIGHT / 2 + 12:.0f}" x2="{WIDTH - MARGIN}" y2="{HEIGHT / 2 + 12:.0f}"/>'
    labels = (
        f'<text x="{MARGIN}" y="{HEIGHT - 8}">{escape(first.date().isoformat())}</text>'
        f'<text x="{WIDTH - MARGIN}" y="{HEIGHT - 8}" text-anchor="end">{escape(last.date().isoformat())}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{len(times)} sessions from {first.date()} to {last.date()} (UTC)">{axis}{dots}{labels}</svg>'
    )
