"""A subject's sessions over time as an inline SVG (drawn here, on the server: no script, no CDN).

Sessions are counted per ISO week (Monday to Sunday, UTC) and drawn as bars stacked by project, so
that the plot stays readable with hundreds of sessions: the tallest bar is labelled with its count,
each bar is titled with its week and count, each of its parts with its project and count, and weeks
without sessions are gaps. A session's project is its projects' names joined (``maps, vision``),
``no project`` where it has none. Colours: the seven colours of Okabe and Ito's palette for colour
vision deficiencies (Okabe & Ito 2008, "Color Universal Design"), one per project in order of the
most sessions; an eighth and further projects share a dark grey ("other projects"), sessions
without a project a light grey. A bar is at most ``BAR`` wide (one week is a bar, not the plot).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass
from html import escape
from typing import Any

WIDTH, HEIGHT, MARGIN, BOTTOM, BAR = 720, 160, 40, 24, 24
#: Okabe and Ito's palette without its black (invisible on a dark background): orange, sky blue,
#: bluish green, yellow, blue, vermillion, reddish purple. CSS classes ``project-0`` .. ``project-6``.
COLOURS = 7
NO_PROJECT, OTHER = "no project", "other projects"


@dataclass(frozen=True)
class Timeline:
    """An SVG of sessions per week and the legend of its colours (``(project, CSS class)``, most sessions first)."""

    svg: str
    legend: list[tuple[str, str]]


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _project(record: dict[str, Any]) -> str:
    return ", ".join(sorted(record.get("projects") or [])) or NO_PROJECT


def sessions_per_week(records: list[dict[str, Any]]) -> list[tuple[dt.date, Counter[str]]]:
    """(Monday of the week, sessions that week per project) for every week from the first session's to
    the last's, in UTC; weeks without sessions have an empty Counter.

    ``records`` are sessions' JSON objects (:func:`element_session.formats.session_records`):
    ``session_datetime`` (ISO 8601 text, UTC, or None: not counted) and ``projects`` (list of str).
    """
    weeks: defaultdict[dt.date, Counter[str]] = defaultdict(Counter)
    for r in records:
        if r["session_datetime"]:
            weeks[_monday(dt.datetime.fromisoformat(r["session_datetime"]).date())][_project(r)] += 1
    if not weeks:
        return []
    first, last = min(weeks), max(weeks)
    count = (last - first).days // 7 + 1
    return [(first + dt.timedelta(weeks=i), weeks.get(first + dt.timedelta(weeks=i), Counter())) for i in range(count)]


def _classes(weeks: list[tuple[dt.date, Counter[str]]]) -> dict[str, str]:
    """Each project's CSS class, most sessions first: the first COLOURS projects a colour each, the rest
    ``project-other``, then ``project-none`` for sessions without a project."""
    totals: Counter[str] = sum((c for _, c in weeks), Counter())
    ranked = sorted((p for p in totals if p != NO_PROJECT), key=lambda p: (-totals[p], p))
    classes = {p: f"project-{i}" if i < COLOURS else "project-other" for i, p in enumerate(ranked)}
    return classes | ({NO_PROJECT: "project-none"} if NO_PROJECT in totals else {})


def _plural(n: int) -> str:
    return f"{n} session{'s' if n != 1 else ''}"


def sessions_over_time(records: list[dict[str, Any]]) -> Timeline:
    """The sessions per week as bars stacked by project, with their legend; an empty ``svg`` when no session
    has a start time.

    ``records`` as :func:`sessions_per_week` reads them.
    """
    weeks = sessions_per_week(records)
    if not weeks:
        return Timeline("", [])
    classes = _classes(weeks)
    most = max(sum(c.values()) for _, c in weeks)
    usable_w, usable_h = WIDTH - 2 * MARGIN, HEIGHT - BOTTOM - 16
    step = usable_w / len(weeks)
    bars = []
    for i, (monday, counts) in enumerate(weeks):
        if not counts:
            continue
        x, y = MARGIN + i * step, float(HEIGHT - BOTTOM)
        parts = []
        for project in sorted(counts, key=list(classes).index):  # the legend's order, from the axis up
            height = usable_h * counts[project] / most
            y -= height
            parts.append(
                f'<rect class="{classes[project]}" x="{x:.1f}" y="{y:.1f}" width="{min(max(step * 0.8, 1), BAR):.1f}" '
                f'height="{height:.1f}"><title>{escape(project)}: {_plural(counts[project])}</title></rect>'
            )
        title = f"week of {monday.isoformat()}: {_plural(sum(counts.values()))}"
        bars.append(f"<g><title>{escape(title)}</title>{''.join(parts)}</g>")
    axis = f'<line x1="{MARGIN}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - BOTTOM}"/>'
    first, last = weeks[0][0], weeks[-1][0]
    last_label = f'<text x="{WIDTH - MARGIN}" y="{HEIGHT - 6}" text-anchor="end">{last.isoformat()}</text>'
    labels = (
        f'<text x="{MARGIN}" y="{HEIGHT - 6}">{first.isoformat()}</text>{last_label if last != first else ""}'
        f'<text x="{MARGIN - 4}" y="{HEIGHT - BOTTOM - usable_h + 4:.0f}" text-anchor="end">{most}</text>'
    )
    total = sum(sum(c.values()) for _, c in weeks)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{total} sessions in {len(weeks)} weeks from {first} to {last} (UTC), at most {most} a week, '
        f'coloured by project">{axis}{"".join(bars)}{labels}</svg>'
    )
    legend = [(p, c) for p, c in classes.items() if c != "project-other"]
    if "project-other" in classes.values():
        legend.insert(COLOURS, (OTHER, "project-other"))
    return Timeline(svg, legend)
