"""The benchmark command at a tiny N: it runs to the end, both ways write and read the same rows,
and the results are complete. No timing is asserted: only that the figures exist and make sense."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.ingest import expected_rows
from benchmarks.run import parse_arguments

ROOT = Path(__file__).resolve().parent.parent
SIZES = [100, 200]  # at 100 sessions a subject, the 30-day window of the middle subject holds 30 sessions


def positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def bench_run(server, subprocess_env, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("bench")
    command = [sys.executable, "-m", "benchmarks.run", "--sizes", ",".join(map(str, SIZES)), "--repeats", "2",
               "--query-runs", "5", "--table-runs", "2", "--populate-sessions", "2", "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, env=subprocess_env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, out


@pytest.fixture(scope="module")
def results(bench_run, server) -> dict:
    _, out = bench_run
    (path,) = [p for p in out.glob(f"{server.backend}-*.json") if not p.name.endswith("-populate.json")]
    return json.loads(path.read_text())


def test_results_describe_machine_versions_and_settings(results, server):
    import datajoint as dj

    assert results["backend"] == server.backend
    machine, versions = results["machine"], results["versions"]
    assert machine["cores"] >= 1 and positive(machine["memory_gib"]) and machine["cpu_model"]
    assert versions["datajoint"] == dj.__version__ and versions["python"] == sys.version.split()[0]
    assert versions["server"] and versions["driver"]
    assert results["date"][:2] == "20" and positive(results["wall_seconds"])
    assert results["settings"]["sizes"] == SIZES and results["settings"]["repeats"] == 2


def test_ingest_both_ways_write_the_same_rows_and_ratios_are_positive(results):
    assert [r["n"] for r in results["ingest"]] == SIZES
    for row in results["ingest"]:
        assert row["identical_rows"] is True
        assert row["rows"] == row["expected_rows"] == expected_rows(row["n"])
        assert row["rows"]["SessionTimezone"] == row["n"]  # the baseline writes the time zone rows too
        for way in ("project", "baseline"):
            assert len(row[way]["seconds"]) == 2 and all(positive(s) for s in row[way]["seconds"])
            assert positive(row[way]["median_seconds"]) and positive(row[way]["sessions_per_second"])
        assert positive(row["ratio"]) and positive(row["ratio_to_write"])
        assert len(row["paired_ratios"]) == 2 and all(positive(r) for r in row["paired_ratios"])


def test_query_both_ways_return_the_same_sessions(results):
    assert [r["n"] for r in results["query"]] == SIZES
    for row in results["query"]:
        assert row["identical_rows"] is True and row["rows"] == 30 and row["runs"] == 5
        assert positive(row["project"]["median_ms"]) and positive(row["baseline"]["median_ms"])
        assert positive(row["ratio"])
    growth = results["query_growth"]
    assert (growth["from_n"], growth["to_n"]) == (SIZES[0], SIZES[-1])
    assert positive(growth["project"]) and positive(growth["baseline"])


def test_table_of_sessions_is_measured_against_fetching_the_seven_tables(results):
    assert [r["n"] for r in results["table"]] == SIZES
    for row in results["table"]:
        assert row["sessions"] == row["n"] and row["runs"] == 2
        assert row["baseline_rows"] == sum(expected_rows(row["n"]).values())  # every row of the seven tables
        assert positive(row["project"]["median_seconds"]) and positive(row["baseline"]["median_seconds"])
        assert positive(row["ratio"]) and positive(row["frame_bytes_per_session"])
        assert row["dtypes"]["session_datetime"] == "datetime64[us, UTC]" and row["dtypes"]["session_id"] == "Int64"
    assert results["targets"]["table_within_1.5x"] in (True, False)


def test_memory_is_measured_for_each_size(results):
    assert [r["n"] for r in results["memory"]] == SIZES
    for row in results["memory"]:
        for way in ("project", "baseline"):
            assert row[way]["peak_increase_mib"] >= 0 and positive(row[way]["peak_rss_mib"])
        assert positive(row["file_mib"])


def test_populate_runs_on_the_same_server(results):
    populate = results["populate"]
    assert populate["backend"] == results["backend"] and populate["sessions"] == 2
    assert positive(populate["median_seconds"]["1"]) and positive(populate["median_seconds"]["2"])


def test_markdown_has_every_table_and_the_targets(bench_run, results):
    _, out = bench_run
    text = (out / f"{results['backend']}-{results['date'][:10]}.md").read_text()
    for heading in ("## Ingest", "## Query", "## Table of sessions", "## Memory", "## Populate", "## Targets"):
        assert heading in text
    assert "| 100 |" in text and "| 200 |" in text and "| NO |" not in text
    assert results["targets"]["query_within_1.3x"] in (True, False)
    assert results["targets"]["ingest_within_1.5x_from_10000"] is None  # no N of 10,000 in this run


def test_markdown_is_written_again_from_the_json_alone(bench_run, results, tmp_path):
    _, out = bench_run
    name = f"{results['backend']}-{results['date'][:10]}"
    copy = tmp_path / f"{name}.json"
    copy.write_text((out / f"{name}.json").read_text())
    assert report.main([str(copy)]) == 0
    assert copy.with_suffix(".md").read_text() == (out / f"{name}.md").read_text()


def test_benchmark_schemas_are_dropped_after_the_run(bench_run, connection):
    import datajoint as dj

    assert not [name for name in dj.list_schemas() if name.startswith("bench_")]


@pytest.mark.parametrize(
    "argv", [["--sizes", "ten"], ["--sizes", "0"], ["--repeats", "0"], ["--query-runs", "-1"], ["--table-runs", "0"]]
)
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err
