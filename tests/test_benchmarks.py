"""The benchmark command at a tiny N: it runs to the end, both ways write and read the same rows,
and the results are complete. No timing is asserted: only that the figures exist and make sense."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import ingest_baseline, report
from benchmarks.ingest import expected_rows
from benchmarks.run import parse_arguments

ROOT = Path(__file__).resolve().parent.parent
SIZES = [100, 200]  # at 100 sessions a subject, the 30-day window of the middle subject holds 30 sessions
COMMAND_SIZE = 150  # the end-to-end command benchmark's N (50,000 by default)


def positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def bench_run(server, subprocess_env, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("bench")
    command = [sys.executable, "-m", "benchmarks.run", "--sizes", ",".join(map(str, SIZES)), "--repeats", "2",
               "--query-runs", "5", "--table-runs", "2", "--populate-sessions", "2", "--out", str(out),
               "--command-sizes", str(COMMAND_SIZE)]  # fmt: skip
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
    assert results["settings"]["command_sizes"] == [COMMAND_SIZE]


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


def test_command_end_to_end_both_processes_write_the_same_rows(results):
    (row,) = results["command"]
    assert row["n"] == COMMAND_SIZE and positive(row["file_mib"])
    assert row["identical_rows"] is True and row["runs_checked"] == 4  # every run of both ways, checked after each
    assert row["rows"] == row["expected_rows"] == expected_rows(COMMAND_SIZE)
    assert row["project_command"] in ("element-session ingest sessions FILE", "python -m element_session ...")
    assert f"{COMMAND_SIZE} row(s) read, {COMMAND_SIZE} new" in row["project_report"]
    for way in ("project", "baseline"):
        for field in ("seconds", "cpu_seconds", "header_only_seconds"):
            assert len(row[way][field]) == 2 and all(positive(s) for s in row[way][field])
        assert positive(row[way]["median_seconds"]) and positive(row[way]["median_header_only_seconds"])
        assert row[way]["median_header_only_seconds"] < max(row[way]["seconds"]) * 5  # a fixed cost, not a hang
    baseline = row["baseline"]
    assert all(positive(s) for s in baseline["read_seconds"] + baseline["write_seconds"])
    assert baseline["median_read_seconds"] + baseline["median_write_seconds"] < baseline["median_seconds"]
    assert positive(row["ratio"]) and positive(row["cpu_ratio"]) and len(row["paired_ratios"]) == 2


def test_no_password_in_the_results_or_on_a_command_line(bench_run, results, server):
    _, out = bench_run
    for path in out.iterdir():
        assert server.password not in path.read_text(), path.name
    (row,) = results["command"]
    assert row["baseline_command"] == "python -m benchmarks.ingest_baseline --tables JSON FILE"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tables", "{}", "x.csv"], "--tables must name exactly these tables"),
        (["--tables", "not json", "x.csv"], "invalid loads value"),
        (["x.csv"], "--tables"),
    ],
)
def test_the_baseline_script_refuses_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        ingest_baseline.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_the_baseline_script_needs_the_server_in_its_environment(monkeypatch, capsys):
    monkeypatch.delenv("DJ_HOST", raising=False)
    tables = {name: f"`s`.`{name}`" for name in expected_rows(1)}
    with pytest.raises(SystemExit) as exit_info:
        ingest_baseline.main(["--tables", json.dumps(tables), "x.csv"])
    assert exit_info.value.code == 2 and "DJ_HOST is not set" in capsys.readouterr().err


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
    headings = ("## Ingest", "## Command end to end", "## Query", "## Table of sessions", "## Memory", "## Populate")
    for heading in (*headings, "## Targets"):
        assert heading in text
    assert "| 100 |" in text and "| 150 |" in text and "| 200 |" in text and "| NO |" not in text
    assert "element-session ingest sessions FILE" in text and "python -m benchmarks.ingest_baseline" in text


def test_targets_are_issue_14s_each_at_its_n(bench_run, results):
    targets = results["targets"]
    assert set(targets) == set(report.TARGET_NAMES.values())
    for name in ("ingest_within_1.25x_at_100000", "command_within_1.5x_at_50000", "table_within_1.5x_at_100000"):
        assert targets[name] is None  # no N that large in this run: not measured, never counted as met
    assert targets["table_linear"] is None and targets["query_flat"] is None  # no two N from 1,000
    assert targets["query_within_1.5x"] in (True, False) and targets["query_goal_1.3x"] in (True, False)
    _, out = bench_run
    text = (out / f"{results['backend']}-{results['date'][:10]}.md").read_text()
    lines = text.split("## Targets")[1].strip().splitlines()
    assert len(lines) == 4 and "at N = 100,000: not measured" in lines[0] and "at N = 50,000: not measured" in lines[1]
    assert "ratio <= 1.5 at N = 50,000" in text  # the command section states its target
    big = {**results, "command": [{**results["command"][0], "n": 50_000, "ratio": 1.4}]}
    assert report.targets(big)["command_within_1.5x_at_50000"] is True
    assert "met (1.40 at 50,000)" in report.target_lines(big)[1]
    big["command"][0]["ratio"] = 1.6
    assert report.targets(big)["command_within_1.5x_at_50000"] is False


def test_summary_table_has_a_row_per_benchmark_and_a_column_per_n(results):
    table = report.summary([results]).splitlines()
    assert table[0].startswith("| what | server | N = 100 | N = 150 | N = 200 | baseline | target (issue 14) |")
    server = report.server_name(results)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table[2:]}
    assert set(rows) == {"ingest (Python API)", "`element-session ingest`, end to end", "`session_table()`",
                         "finder (30 rows)"}  # fmt: skip
    command = rows["`element-session ingest`, end to end"].split(" | ")
    assert command[1] == server and command[2] == "" and command[4] == ""  # measured at 150 only
    assert command[3].startswith(f"{results['command'][0]['ratio']:.2f} (")
    assert "ingest_baseline" in command[5] and "<= 1.5 at 50,000: not measured" in command[6]


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
    "argv",
    [
        ["--sizes", "ten"],
        ["--sizes", "0"],
        ["--repeats", "0"],
        ["--query-runs", "-1"],
        ["--table-runs", "0"],
        ["--command-sizes", "0"],
    ],
)
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_the_cluster_benchmark_measures_both_populates_and_each_array_size(
    server, connection, subprocess_env, slurm, tmp_path
):
    """``benchmarks/cluster.py`` at 2 and 4 keys on the suite's cluster: every figure present, no timing judged."""
    output = tmp_path / "cluster.json"
    command = [sys.executable, "-W", "ignore", "-m", "benchmarks.cluster", "--keys", "2,4", "--repeats", "1",
               "--tasks", "1,2", "--output", str(output)]  # fmt: skip
    env = {**subprocess_env, **slurm.environment()}
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["backend"] == server.backend and results["keys"] == [2, 4]
    assert set(results["overhead"]) == {"project", "datajoint"} and set(results["slurm"]) == {"1 task(s)", "2 task(s)"}
    for figures in [*results["overhead"].values(), *results["slurm"].values()]:
        assert [len(figures["seconds"][n]) for n in ("2", "4")] == [1, 1]
        assert all(positive(figures["median_seconds"][n]) for n in ("2", "4"))
        assert math.isfinite(figures["seconds_per_key"]) and positive(figures["keys_per_second"])
    assert set(results["machine"]["load_average_1_5_15_min"]) == {"before", "after_overhead", "after_slurm"}
    assert "per-key overhead, project / DataJoint" in done.stdout
    import datajoint as dj

    assert not [name for name in dj.list_schemas() if name.startswith("bench_")]
