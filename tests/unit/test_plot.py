"""The subject page's plot: sessions per week (UTC), stacked by project, coloured for colour vision deficiencies."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

from element_session.web.plot import sessions_over_time, sessions_per_week


def record(when: str | None, *projects: str) -> dict:
    return {"session_datetime": when, "projects": list(projects)}


def test_weeks_count_sessions_per_project_with_empty_weeks_as_gaps():
    records = [
        record("2024-03-10T23:30:00+00:00", "maps"),  # a Sunday: the week of Monday 4 March
        record("2024-03-11T00:30:00+00:00", "vision", "maps"),  # Monday: the next week; both projects, one session
        record("2024-03-12T09:00:00+00:00"),
        record("2024-03-26T09:00:00+00:00", "maps"),
        record(None, "maps"),  # no start time: not counted
    ]
    assert sessions_per_week(records) == [
        (dt.date(2024, 3, 4), Counter({"maps": 1})),
        (dt.date(2024, 3, 11), Counter({"maps, vision": 1, "no project": 1})),
        (dt.date(2024, 3, 18), Counter()),
        (dt.date(2024, 3, 25), Counter({"maps": 1})),
    ]


def test_bars_are_titled_per_week_and_per_project_and_the_legend_names_the_colours():
    records = [record("2024-03-11T09:00:00+00:00", "maps")] * 3 + [record("2024-03-12T09:00:00+00:00")]
    timeline = sessions_over_time(records)
    assert re.findall(r"<title>week of (\S+): (\d+) sessions?</title>", timeline.svg) == [("2024-03-11", "4")]
    parts = re.findall(r'<rect class="(project-\w+)"[^>]*><title>([^<]+)</title>', timeline.svg)
    assert parts == [("project-0", "maps: 3 sessions"), ("project-none", "no project: 1 session")]
    assert timeline.legend == [("maps", "project-0"), ("no project", "project-none")]  # no project: grey, last
    heights = [float(h) for h in re.findall(r'height="([\d.]+)"><title>', timeline.svg)]
    assert heights[0] == 3 * heights[1]  # stacked in proportion


def test_an_eighth_project_and_further_share_grey_and_the_legend_says_so():
    records = [record("2024-03-11T09:00:00+00:00", f"p{i}") for i in range(9) for _ in range(9 - i)]
    timeline = sessions_over_time([*records, record("2024-03-11T10:00:00+00:00")])
    assert [c for _, c in timeline.legend] == [f"project-{i}" for i in range(7)] + ["project-other", "project-none"]
    assert timeline.legend[0] == ("p0", "project-0") and timeline.legend[7] == ("other projects", "project-other")
    assert timeline.svg.count('class="project-other"') == 2  # p7 and p8


def test_one_week_is_one_narrow_bar_labelled_once():
    timeline = sessions_over_time([record("2024-03-11T09:00:00+00:00", "maps")])
    assert re.findall(r'width="([\d.]+)"', timeline.svg) == ["24.0"] and timeline.svg.count(">2024-03-11<") == 1


def test_no_start_time_no_plot():
    assert sessions_over_time([record(None, "maps")]).svg == ""
    assert sessions_over_time([]).legend == []
