"""The py-spy summary of benchmarks/spy.py: each sampled stack in the category of its innermost known frame."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import spy

SITE = "/v/site-packages"
ROOT = (
    "<module> (/repo/benchmarks/spy.py:1);run (/repo/benchmarks/spy.py:2);project_query (/repo/benchmarks/query.py:40)"
)


@pytest.mark.parametrize(
    ("leaf", "category"),
    [
        (f"QueryExpression.to_dicts ({SITE}/datajoint/expression.py:898);SocketIO.readinto (/py/lib/socket.py:706)",
         spy.SERVER),
        (f"Connection._write_bytes ({SITE}/pymysql/connections.py:854)", spy.SEND),
        (f"convert_datetime ({SITE}/pymysql/converters.py:191)", spy.DRIVER),
        (f"QueryExpression.to_dicts ({SITE}/datajoint/expression.py:898);Heading.x ({SITE}/datajoint/heading.py:334)",
         spy.DJ_FETCH),
        (f"QueryExpression.restrict ({SITE}/datajoint/expression.py:300);mc ({SITE}/datajoint/condition.py:9)",
         spy.DJ_BUILD),
        ("find_sessions (/repo/element_session/query.py:80);match (/py/lib/re/__init__.py:166)", spy.OWN),
    ],
)  # fmt: skip
def test_classify_innermost_known_frame(leaf: str, category: str) -> None:
    stack = f"{ROOT};{leaf}".split(";")
    assert spy.classify(stack)[0] == category


def test_summarise_counts_only_the_workload(tmp_path: Path) -> None:
    raw = tmp_path / "stacks.txt"
    raw.write_text(
        f"{ROOT};Connection._write_bytes ({SITE}/pymysql/connections.py:854) 3\n"
        f"{ROOT};find_sessions (/repo/element_session/query.py:80) 1\n"
        "<module> (/repo/benchmarks/spy.py:1);spied (/repo/benchmarks/spy.py:9) 50\n"
    )
    summary = spy.summarise(raw, spy.WORKLOADS["finder"])
    assert summary["samples"] == 4
    assert summary["categories"] == {spy.SEND: 0.75, spy.OWN: 0.25}
