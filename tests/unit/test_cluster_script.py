"""The SLURM front end without a cluster: the batch script's text, what it exports, reading ``scontrol``."""

from __future__ import annotations

from pathlib import Path

import pytest

from element_session.cli import ExitStatus, exit_status
from element_session.cluster.follow import UNKNOWN, TaskState, counts, parse_show_job
from element_session.cluster.script import BatchOptions, exported_names, render
from element_session.errors import UsageError
from tests.helpers import REQUIRE_SLURM, no_cluster


def options(**changes) -> BatchOptions:
    return BatchOptions(
        **{"tasks": 4, "pipeline": "lab.pipeline", "workdir": Path("/w"), "log_dir": Path("/w/l")} | changes
    )


def test_exported_names_are_names_of_set_variables_never_dj_pass() -> None:
    environ = {"DJ_HOST": "h", "DJ_PASS": "secret", "DJ_USER": "u", "DATABASE_PREFIX": "p_", "PATH": "/bin", "X": "1"}
    assert exported_names(environ) == ["DATABASE_PREFIX", "DJ_HOST", "DJ_USER", "PATH"]


def test_the_script_quotes_what_it_is_given_and_holds_no_value_of_the_environment() -> None:
    text = render(options(restrict=[("subject", "a b; rm -rf /")], tables=["Made"], limit=3), {"DJ_PASS": "pw-1"})
    assert "'subject=a b; rm -rf /'" in text and "--table Made" in text and "--limit 3" in text
    assert "pw-1" not in text and "#SBATCH --export=NONE" in text
    assert "#SBATCH --array=0-3" in text and "#SBATCH --no-requeue" in text


@pytest.mark.parametrize(
    "changes",
    [
        {"tasks": 0},
        {"memory": "lots"},
        {"memory": "-1G"},
        {"sbatch_args": ["account=x"]},
        {"sbatch_args": ["-A x\n-B"]},
        {"sbatch_args": ["--export=ALL"]},  # would keep DJ_PASS in SLURM's saved job environment
        {"sbatch_args": ["--export-file=/tmp/env"]},
        {"sbatch_args": ["-a 0-99"]},
        {"sbatch_args": ["--output=/tmp/x.log"]},
        {"sbatch_args": ["-t30"]},
    ],
)
def test_unusable_options_are_usage_errors(changes) -> None:
    with pytest.raises(UsageError) as raised:
        options(**changes)
    assert exit_status(raised.value) == ExitStatus.USAGE


def test_an_sbatch_arg_that_would_pass_every_variable_is_refused_naming_why() -> None:
    with pytest.raises(UsageError, match=r"'--export=ALL': --export is set by the script: .*never DJ_PASS"):
        options(sbatch_args=["--account=lab", "--export=ALL"])
    assert "#SBATCH --account=lab" in render(options(sbatch_args=["--account=lab", "--qos=low"]), {})


SHOW_JOB = """\
JobId=101 ArrayJobId=100 ArrayTaskId=2-3%2 JobState=PENDING Reason=JobArrayTaskLimit ExitCode=0:0 Restarts=0
JobId=100 ArrayJobId=100 ArrayTaskId=0 JobState=OUT_OF_MEMORY Reason=OutOfMemory ExitCode=0:125 Restarts=0
JobId=102 ArrayJobId=100 ArrayTaskId=1 JobState=RUNNING Reason=None ExitCode=0:0 Restarts=1
"""


def test_scontrol_records_become_task_states() -> None:
    tasks = parse_show_job(SHOW_JOB)
    assert tasks[0] == TaskState(0, "OUT_OF_MEMORY", "0:125", "OutOfMemory", 0)
    assert tasks[1].state == "RUNNING" and tasks[1].restarts == 1 and tasks[1].reason == ""
    assert tasks[2].state == tasks[3].state == "PENDING"
    assert counts([tasks[i] for i in range(4)] + [TaskState(4, UNKNOWN)]) == (2, 1, 2)


def test_without_a_cluster_tests_skip_with_the_reason_unless_it_is_required() -> None:
    with pytest.raises(pytest.skip.Exception, match="not root"):
        no_cluster("this process is not root", required=False)
    with pytest.raises(pytest.fail.Exception, match=r"ELEMENT_SESSION_REQUIRE_SLURM=1 .*not root"):
        no_cluster("this process is not root", required=True)


def test_ci_requires_the_cluster_tests() -> None:
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert f"export {REQUIRE_SLURM}=1" in ci
