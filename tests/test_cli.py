"""The element-session command: its output, its exit statuses, and the CSV round trip."""

from __future__ import annotations

import csv
import datetime as dt
import gc
import io
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import datajoint as dj
import pytest

from element_session import cli
from element_session._collector import COMMAND_THRESHOLDS, cycle_collection_less_often
from tests.helpers import remove_references, snapshot

SUBJECTS, PEOPLE, PROJECTS = ["cl-m1", "cl-m2"], ["cl-ada", "cl-bob"], ["cl-maps"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cli")
    texts = {
        "subjects.csv": "subject,sex,subject_birth_date\ncl-m1,M,2023-01-01\ncl-m2,F,2023-02-02\n",
        "people.yaml": "- user: cl-ada\n  user_email: ada@example.org\n- user: cl-bob\n",
        "projects.json": '[{"project": "cl-maps", "project_description": "maps"}]',
        "sessions.csv": textwrap.dedent("""\
            subject,session_datetime,session_id,experimenter,project,session_dir,session_note,attr.rig
            cl-m1,2024-03-10T14:30:00[Europe/Berlin],1,cl-ada;cl-bob,cl-maps,cl-m1/s1,"note, ✓",A
            cl-m2,2024-03-11T09:00:00,,cl-bob,,cl-m2/s1,,
            """),
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.fixture(scope="module")
def ingested(pipeline, files, command):
    """The files ingested through the command, once for the tests of this module (which only read them)."""
    for kind, name in (("subjects", "subjects.csv"), ("experimenters", "people.yaml"), ("projects", "projects.json")):
        status, out, err = command("ingest", kind, str(files / name))
        assert status == 0, err
    status, out, err = command("ingest", "sessions", str(files / "sessions.csv"), "--timezone", "America/New_York")
    assert status == 0, err
    assert out.strip().endswith("SessionNote 1, Attribute 1")
    yield files
    remove_references(pipeline, SUBJECTS, PEOPLE, PROJECTS)


def test_sessions_as_json_on_a_clean_stdout(ingested, command):
    status, out, err = command("sessions", "--subject", "cl-m1", "--subject", "cl-m2", "--format", "json")
    assert status == 0, err
    sessions = json.loads(out)  # nothing but the JSON on standard output
    assert [s["subject"] for s in sessions] == ["cl-m1", "cl-m2"]
    first = sessions[0]
    assert set(first) == {
        "subject", "session_datetime", "session_id", "experimenters", "projects", "session_dir", "session_note",
        "status", "attributes", "attribute_blobs",
    }  # fmt: skip
    assert first["session_datetime"] == "2024-03-10T13:30:00+00:00"
    assert first["experimenters"] == ["cl-ada", "cl-bob"] and first["attributes"] == {"rig": "A"}
    assert sessions[1]["session_datetime"] == "2024-03-11T13:00:00+00:00"  # 09:00 in New York (EDT)
    assert "connected to" in err or err == ""  # DataJoint's messages stay off standard output


def test_csv_output_is_the_ingest_format_and_reingesting_it_changes_nothing(ingested, command, pipeline, tmp_path):
    status, out, _ = command("sessions", "--project", "cl-maps", "--format", "csv")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows == [
        {"subject": "cl-m1", "session_datetime": "2024-03-10T14:30:00+01:00[Europe/Berlin]", "session_id": "1",
         "experimenter": "cl-ada;cl-bob", "project": "cl-maps", "session_dir": "cl-m1/s1", "session_note": "note, ✓",
         "status": "acquired", "attr.rig": "A"}
    ]  # fmt: skip
    status, out, _ = command("sessions", "--subject", "cl-m1", "--subject", "cl-m2", "--format", "csv")
    (tmp_path / "again.csv").write_text(out, encoding="utf-8")
    before = snapshot(pipeline)
    status, out, err = command("ingest", "sessions", str(tmp_path / "again.csv"))
    assert status == 0, err
    assert "2 row(s) read, 0 new, 2 already present; inserted nothing" in out
    assert snapshot(pipeline) == before


def test_the_csv_carries_the_status_so_that_ingesting_it_elsewhere_keeps_it(ingested, command, pipeline, tmp_path):
    """A planned session written by `sessions --format csv` and ingested again (after it was deleted, as on
    another server) is planned again, not `acquired` (the CSV had no status column)."""
    from element_session.status import status_of

    planned = tmp_path / "planned.csv"
    planned.write_text("subject,session_datetime,status\ncl-m2,2024-09-01T08:00:00Z,planned\n", encoding="utf-8")
    assert command("ingest", "sessions", str(planned)).status == 0
    key = {"subject": "cl-m2", "session_datetime": "2024-09-01 08:00:00"}
    try:
        status, out, err = command("sessions", "--subject", "cl-m2", "--since", "2024-09-01", "--format", "csv")
        assert status == 0, err
        (row,) = csv.DictReader(io.StringIO(out))
        assert row["status"] == "planned"
        (tmp_path / "written.csv").write_text(out, encoding="utf-8")
        (pipeline.session.Session & key).delete(prompt=False)
        status, out, err = command("ingest", "sessions", str(tmp_path / "written.csv"))
        assert status == 0, err
        assert status_of(key, session_module=pipeline.session) == "planned"
    finally:
        (pipeline.session.Session & key).delete(prompt=False)


def test_window_and_people_options(ingested, command):
    status, out, _ = command("sessions", "--experimenter", "cl-bob", "--since", "2024-03-11", "--format", "csv")
    assert status == 0 and [r["subject"] for r in csv.DictReader(io.StringIO(out))] == ["cl-m2"]
    status, out, _ = command("sessions", "--subject", "cl-m1", "--until", "2024-03-10T13:30:00Z", "--format", "json")
    assert status == 0 and json.loads(out) == []
    status, out, _ = command("sessions", "--subject", "cl-m1")
    assert status == 0 and "2024-03-10T14:30:00+01:00[Europe/Berlin]" in out and "cl-ada, cl-bob" in out


def test_invalid_input_exits_1_naming_file_row_column_value(ingested, command, pipeline, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "subject,session_datetime,session_note\ncl-m1,2024-05-01T10:00:00Z,ok\ncl-m1,2024-02-30T10:00:00Z,x\n"
    )
    before = snapshot(pipeline)
    status, out, err = command("ingest", "sessions", str(bad))
    assert status == 1 and out == ""
    assert f"{bad}, row 3, column 'session_datetime'" in err and "'2024-02-30T10:00:00Z'" in err
    assert snapshot(pipeline) == before
    status, out, err = command("ingest", "sessions", str(bad), "--dry-run")
    assert status == 1


def test_dry_run_reports_without_writing(ingested, command, pipeline, tmp_path):
    new = tmp_path / "new.csv"
    new.write_text("subject,session_datetime\ncl-m1,2024-06-01T10:00:00Z\n")
    before = snapshot(pipeline)
    status, out, _ = command("ingest", "sessions", str(new), "--dry-run")
    assert status == 0 and "would insert Session 1" in out
    assert snapshot(pipeline) == before


def test_dirs_resolves_against_the_roots(ingested, command, tmp_path):
    (tmp_path / "root2" / "cl-m1" / "s1").mkdir(parents=True)
    env = {"SESSION_ROOT_DIRS": f"{tmp_path / 'root1'}:{tmp_path / 'root2'}"}
    status, out, err = command("dirs", env=env)
    assert status == 0
    lines = {line.split()[0] + line.split()[-1] for line in out.splitlines()[1:] if line.startswith("cl-")}
    assert lines == {f"cl-m1{tmp_path / 'root2' / 'cl-m1' / 's1'}", "cl-m2MISSING"}
    assert re.search(r"cl-m1 +2024-03-10T13:30:00\+00:00 +cl-m1/s1", out)  # docs/times.md: UTC marked
    assert err.strip() == f"element-session: root data directory {str(tmp_path / 'root1')!r} is not a directory"
    status, out, _ = command("dirs", "--missing", env=env)
    assert [line.split()[0] for line in out.splitlines()[1:] if line.startswith("cl-")] == ["cl-m2"]
    status, out, err = command("dirs", "--missing", env=env | {"SESSION_ROOT_DIRS": ""})  # why all are missing
    assert status == 0 and "no root data directory is set (SESSION_ROOT_DIRS)" in err
    status, out, _ = command("dirs", "--subject", "cl-m1", env=env)  # the selection options of sessions
    assert status == 0 and [line.split()[0] for line in out.splitlines()[1:]] == ["cl-m1"]
    status, out, _ = command("dirs", "--subject", "cl-m1", "--missing", env=env)
    assert status == 0 and out.strip() == "no missing directories"
    status, out, _ = command("dirs", "--search", "NOTE, ✓", "--since", "2024-03-11", env=env)
    assert status == 0 and out.strip() == "no sessions"


def test_dirs_lists_a_session_without_a_stored_directory_as_not_stored(ingested, command, pipeline, tmp_path):
    """A session ingested without ``session_dir`` is listed by ``dirs`` and ``dirs --missing`` (populate cannot
    find its files), not left out."""
    key = {"subject": "cl-m1", "session_datetime": "2024-07-01T10:00:00Z"}
    (tmp_path / "new.csv").write_text("subject,session_datetime\ncl-m1,2024-07-01T10:00:00Z\n")
    assert command("ingest", "sessions", str(tmp_path / "new.csv"))[0] == 0
    env = {"SESSION_ROOT_DIRS": str(tmp_path)}
    try:
        for options in ((), ("--missing",)):
            status, out, err = command("dirs", "--subject", "cl-m1", *options, env=env)
            assert status == 0, err
            assert re.search(r"cl-m1 +2024-07-01T10:00:00\+00:00 .*NOT STORED", out), out
    finally:
        (pipeline.session.Session & {**key, "session_datetime": dt.datetime(2024, 7, 1, 10)}).delete(prompt=False)


def test_a_window_whose_until_is_not_after_its_since_is_refused_naming_until(ingested, command):
    """It selected nothing without a word; a date as --until includes its day, so one day is a window."""
    status, out, err = command("sessions", "--since", "2024-03-01", "--until", "2024-02-01")
    assert status == 2 and "--until" in err and "until is not after since (2024-03-01 to 2024-02-01)" in err
    assert out == ""
    status, out, err = command("sessions", "--since", "2024-03-10", "--until", "2024-03-10", "--format", "csv")
    assert status == 0 and [r["subject"] for r in csv.DictReader(io.StringIO(out))] == ["cl-m1"]


def test_an_empty_file_is_said_to_hold_no_rows(command, tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    status, out, err = command("ingest", "sessions", str(tmp_path / "empty.csv"))
    assert status == 0 and "0 row(s) read" in out
    assert err.strip() == f"element-session: no rows in {tmp_path / 'empty.csv'}: nothing to ingest"


def test_usage_errors_exit_2(command, tmp_path):
    assert command("ingest", "animals", "x.csv")[0] == 2
    assert command("sessions", "--format", "xml")[0] == 2
    assert command()[0] == 2
    missing = tmp_path / "missing.csv"
    status, _, err = command("copy", "--to", str(missing))  # an option's value: click checks it
    assert status == 2 and f"'{missing}' does not exist" in err, err


def test_a_missing_input_file_is_invalid_input_naming_it(command, tmp_path):
    """A data file that cannot be read exits 1 with the reader's reason (a name too long is not "missing")."""
    missing = tmp_path / "missing.csv"
    for args, said in (
        (("ingest", "sessions", str(missing)), f"{missing}: no such file"),
        (("import", str(missing)), f"no bundle at '{missing}'"),
    ):
        status, out, err = command(*args)
        assert (status, out) == (1, "") and said in err and "Traceback" not in err, (args, err)


def test_unreachable_database_exits_3_naming_host_and_port_but_not_the_password(command):
    env = {"DJ_HOST": "127.0.0.1", "DJ_PORT": "9", "DJ_PASS": "s3cret-Passw0rd"}
    status, out, err = command("sessions", env=env, child=True)
    assert status == 3 and out == ""
    assert "127.0.0.1:9" in err
    assert "s3cret-Passw0rd" not in err


def test_a_command_on_a_new_prefix_names_the_schemas_its_activation_created_once(command, connection, prefix):
    """A misspelt DATABASE_PREFIX: the empty schemas activation created are said on stderr, not just "no sessions"."""
    typo = f"{prefix}typo_"
    status, out, err = command("sessions", child=True, env={"DATABASE_PREFIX": typo})
    assert (status, out.strip()) == (0, "no sessions"), err
    names = ", ".join(typo + name for name in ("inventory", "lab", "session", "subject"))
    said = f"element-session: activating the pipeline created the empty schema(s) {names} (is DATABASE_PREFIX right?)"
    assert err.splitlines() == [said]
    assert {typo + name for name in ("inventory", "lab", "session", "subject")} <= set(dj.list_schemas(connection))
    status, out, err = command("jobs", child=True, env={"DATABASE_PREFIX": typo})  # they exist now: nothing to say
    assert (status, err) == (0, ""), err


def test_python_dash_m_and_console_script_are_the_same_command():
    assert {"ingest", "sessions", "dirs", "populate", "jobs", "export-nwb", "migrate"} <= set(cli.cli.commands)


# -- the command line in one module: --pipeline, exit statuses, DataJoint's messages --------------------------------

DATAJOINT_WARNINGS = ("No datajoint.json found", "MariaDB is not officially supported")


def without_config_file(env: dict | None = None) -> dict:
    """``env`` in which DataJoint looks for datajoint.json (and warns that there is none)."""
    return (env or {}) | {"DJ_IGNORE_CONFIG_FILE": None}


def test_pipeline_before_the_sub_command_is_used(ingested, command, tmp_path):
    (tmp_path / "cl_other_pipeline.py").write_text("from workflow.pipeline import *  # noqa\nNAME = 'other'\n")
    status, out, err = command("--pipeline", "cl_no_such_pipeline", "sessions", "--subject", "cl-m1", child=True)
    assert status == cli.ExitStatus.USAGE and out == ""
    assert "pipeline module 'cl_no_such_pipeline' cannot be imported" in err
    status, out, err = command("sessions", "--pipeline", "cl_no_such_pipeline", child=True)  # after it: as before
    assert status == cli.ExitStatus.USAGE and "'cl_no_such_pipeline'" in err
    status, out, err = command(
        "--pipeline",
        "cl_other_pipeline",
        "sessions",
        "--subject",
        "cl-m1",
        "--format",
        "json",
        child=True,
        cwd=tmp_path,
    )
    assert status == 0, err
    assert [s["subject"] for s in json.loads(out)] == ["cl-m1"]


def test_help_prints_help_only(command):
    env = without_config_file() | {"DJ_HOST": "127.0.0.1", "DJ_PORT": "9"}  # no server either
    for args in (["--help"], ["sessions", "--help"], ["populate", "--help"], ["--pipeline", "x", "migrate", "-h"]):
        status, out, err = command(*args, env=env, child=True)
        assert (status, err) == (0, ""), args
        assert out.startswith("Usage: element-session"), args


def test_datajoint_messages_are_hidden_unless_verbose(ingested, command, server):
    env = without_config_file()
    status, out, err = command("sessions", "--subject", "cl-m1", "--format", "json", env=env, child=True)
    assert status == 0 and err == ""
    assert json.loads(out)[0]["subject"] == "cl-m1"
    status, out, err = command("-v", "sessions", "--subject", "cl-m1", "--format", "json", env=env, child=True)
    assert status == 0 and json.loads(out)[0]["subject"] == "cl-m1"  # standard output stays clean
    assert "No datajoint.json found" in err and "connected to" in err
    assert ("MariaDB is not officially supported" in err) == (server.backend == "mysql")


def test_populate_workers_are_quiet_unless_verbose(ingested, command, tmp_path):
    (tmp_path / "raw" / "cl-m1" / "s1").mkdir(parents=True)
    env = without_config_file() | {"SESSION_ROOT_DIRS": str(tmp_path / "raw")}
    args = ("populate", "--workers", "2", "--no-progress", "--restrict", "subject=cl-m1")
    status, out, err = command(*args, env=env, child=True)
    assert status == 0 and err == "" and out.startswith("populated "), err
    status, _, err = command("-v", *args, env=env, child=True)
    assert status == 0, err
    assert err.count("connected to") >= 3  # this process and each of the two workers
    assert err.count("No datajoint.json found") >= 3


def test_migrate_unreachable_exits_3(command):
    env = {"DJ_HOST": "127.0.0.1", "DJ_PORT": "9"}
    status, out, err = command("migrate", "--schema", "anything", env=env, child=True)
    assert (status, out) == (cli.ExitStatus.UNREACHABLE, "")
    assert "127.0.0.1:9" in err and "Traceback" not in err


def test_an_unexpected_error_is_one_line_and_the_traceback_comes_with_verbose(command, tmp_path):
    (tmp_path / "cl_broken_pipeline.py").write_text("raise RuntimeError('cl-broken at import')\n")
    status, out, err = command("--pipeline", "cl_broken_pipeline", "sessions", child=True, cwd=tmp_path)
    assert (status, out) == (cli.ExitStatus.INVALID, "")
    assert err.splitlines()[0] == "element-session: unexpected error: RuntimeError: cl-broken at import"
    assert "Traceback" not in err
    status, out, err = command("-v", "--pipeline", "cl_broken_pipeline", "sessions", child=True, cwd=tmp_path)
    assert status == cli.ExitStatus.INVALID and "Traceback (most recent call last)" in err


def test_exit_statuses_come_from_one_map():
    from element_session.errors import MigrationError, PermissionDeniedError, PipelineImportError, TimeError

    assert cli.exit_status(PipelineImportError("x")) == cli.ExitStatus.USAGE
    assert cli.exit_status(TimeError("x")) == cli.ExitStatus.INVALID
    refused = PermissionDeniedError("denied")
    try:
        raise MigrationError("step 1 failed") from refused
    except MigrationError as err:
        assert cli.exit_status(err) == cli.ExitStatus.DENIED
    assert cli.exit_status(KeyboardInterrupt()) == cli.ExitStatus.INTERRUPTED == 130


def test_a_bad_option_value_is_usage_and_bad_data_is_invalid():
    """README's exit table: 2 for a bad option value (as click's own, e.g. --format yaml), 1 for bad data."""
    from element_session.errors import InputError, PopulateError, one_problem

    option = one_problem("arguments", "since", "yesterday", "not an ISO 8601 date and time")
    data = one_problem("sessions.csv", "session_datetime", "yesterday", "not an ISO 8601 date and time", row=2)
    assert cli.exit_status(option) == cli.ExitStatus.USAGE == 2
    assert cli.exit_status(one_problem("restriction", "session_datetime", "x", "bad")) == cli.ExitStatus.USAGE
    assert cli.exit_status(PopulateError("no table named 'Nope'")) == cli.ExitStatus.USAGE
    assert cli.exit_status(data) == cli.ExitStatus.INVALID == 1
    mixed = InputError([*option.problems, *data.problems])  # an option and a file: the data decide
    assert cli.exit_status(mixed) == cli.ExitStatus.INVALID
    # what was asked for is named as such; only input that would be written says nothing was written
    assert str(option).startswith("1 problem(s) in the arguments:")
    assert str(one_problem("query", "timezone", "Mars", "unknown time zone")).startswith("1 problem(s) in the query:")
    assert str(data).startswith("1 problem(s) in the input, nothing was written:")


def test_a_bad_option_value_names_the_option_as_typed(ingested, command, tmp_path):
    """Whichever command and library function a value reaches, the error names the option as the user typed it."""
    bundle = str(tmp_path / "b.bundle")
    cases = {
        ("sessions", "--status", "bogus"): "--status: not a session status",
        ("status", "show", "--status", "bogus"): "--status: not a session status",
        ("history", "--status", "bogus"): "--status: not a session status",
        ("export", "--output", bundle, "--status", "bogus"): "--status: not a session status",
        ("sessions", "--since", "yesterday"): "--since: not an ISO 8601 date and time",
        ("sessions", "--timezone", "Mars"): "--timezone: unknown time zone 'Mars'",
        ("status", "set", "--subject", "cl-m1", "--id", "x", "qc_passed"): "--id: not a whole number",
        (
            "status",
            "set",
            "--subject",
            "cl-m1",
            "--datetime",
            "2024-02-30T10:00",
            "qc_passed",
        ): "--datetime: impossible",
        ("jobs", "--restrict", "session_datetime=soon"): "--restrict session_datetime: not an ISO 8601",
    }
    for args, named in cases.items():
        status, _, err = command(*args)
        assert status == 2 and f"1 problem(s) in the options:\n  {named}" in err, (args, err)
        assert "states" not in err and "column" not in err and "arguments" not in err, err
    assert not Path(bundle).exists()


def test_slurm_dry_run_with_the_password_only_in_dj_pass_says_how_to_store_it(command, tmp_path):
    """docs/cluster.md: the warning gives the shell line that stores the secret; run as given, the warning goes."""
    env = {"DJ_PASS": "only-here-7c1", "DJ_IGNORE_CONFIG_FILE": None}
    ran = command("slurm", "populate", "--array", "2", "--dry-run", env=env, child=True, cwd=tmp_path)
    assert ran.status == 0 and ran.out.startswith("#!/bin/bash\n"), ran.err
    secret = tmp_path / ".secrets" / "database.password"
    assert (
        "element-session: warning: the tasks would find no password: the database password is only in DJ_PASS"
        in ran.err
    )
    [line] = [line.strip() for line in ran.err.splitlines() if "mkdir -p -m 700" in line]
    assert f"mkdir -p -m 700 {secret.parent} && (umask 077; printf '%s' \"$DJ_PASS\" > {secret})" in line
    assert "/run/secrets/datajoint/database.password" in ran.err and "only-here-7c1" not in ran.out + ran.err
    subprocess.run(
        ["bash", "-c", line], env={"DJ_PASS": "only-here-7c1", "PATH": "/usr/bin:/bin"}, cwd=tmp_path, check=True
    )
    assert secret.read_text() == "only-here-7c1" and secret.stat().st_mode & 0o077 == 0
    again = command("slurm", "populate", "--array", "2", "--dry-run", env=env, child=True, cwd=tmp_path)
    assert again.status == 0 and "password" not in again.err, again.err


def test_populate_jobs_export_and_migrate_through_the_real_command(ingested, command, tmp_path, prefix):
    """The commands other modules provide are wired into ``element-session`` itself."""
    (tmp_path / "raw" / "cl-m1" / "s1").mkdir(parents=True)
    (tmp_path / "raw" / "cl-m1" / "s1" / "trial.csv").write_text("a,b\n1,2\n")
    env = {"SESSION_ROOT_DIRS": str(tmp_path / "raw")}
    restrict = "subject=cl-m1"
    status, out, err = command("populate", "--workers", "1", "--restrict", restrict, env=env)
    assert status == 0, err
    status, out, err = command("populate", "--restrict", "subject=cl-m2", env=env)  # its directory is missing
    assert status == 1 and "cl-m2" in out
    status, out, _ = command("jobs", env=env)
    assert status == 0 and "cl-m2" in out and "error" in out.lower()
    output = tmp_path / "cl-m1.nwb"
    status, out, err = command(
        "export-nwb", "--subject", "cl-m1", "--datetime", "2024-03-10T13:30:00Z", "--output", str(output)
    )
    assert status == 0, err
    assert output.stat().st_size > 0
    status, out, err = command("--pipeline", "cl_unused", "migrate", "--schema", prefix + "no_such_schema")
    assert status == 1 and "no_such_schema" in err  # migrate works on a schema by name: no pipeline imported


def test_only_the_command_line_module_parses_arguments():
    package = Path(cli.__file__).parent
    parsers = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if re.search(r"^\s*(import|from) (argparse|click)\b", path.read_text(encoding="utf-8"), re.MULTILINE)
    }
    assert parsers == {"cli.py"}


# -- the command's own overhead: what it imports, the collector while it runs, the exit -----------------------------


def test_help_imports_no_datajoint_and_other_commands_no_local_server_module():
    code = (
        "import sys\n"
        "from element_session import cli\n"
        "heavy = ('datajoint', 'pandas', 'element_session.localdb', 'psutil')\n"
        "assert cli.main(['--help']) == 0\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "assert cli.main(['sessions', '--help']) == 0\n"  # DataJoint's messages are set up: it is imported
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    printed = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert printed == ["[]", "['datajoint', 'pandas']"]


def test_the_collector_runs_less_while_a_command_runs_and_as_before_after_it():
    before = gc.get_threshold()
    with cycle_collection_less_often():
        assert gc.get_threshold() == COMMAND_THRESHOLDS != before
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), cycle_collection_less_often():
        raise RuntimeError("a failing command")
    assert gc.get_threshold() == before
    assert cli.main(["ingest", "animals", "x.csv"]) == cli.ExitStatus.USAGE
    assert gc.get_threshold() == before  # main leaves an in-process caller's collector as it was


def test_the_executable_exits_with_the_commands_status_and_its_whole_output(tmp_path):
    """``run`` freezes the objects before exit: standard output still arrives whole, exit handlers still run."""
    code = (
        "import atexit, sys\n"
        "from element_session import cli\n"
        "atexit.register(lambda: sys.stdout.write('exit handler ran\\n'))\n"
        "sys.argv = ['element-session', *sys.argv[1:]]\n"
        "print('x' * 1_000_000)\n"
        "cli.run()\n"
    )
    for argv, status in ((["--help"], cli.ExitStatus.OK), (["ingest", "animals", "x.csv"], cli.ExitStatus.USAGE)):
        result = subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
        assert result.returncode == status, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "x" * 1_000_000 and lines[-1] == "exit handler ran"
        if status == cli.ExitStatus.OK:
            assert lines[1].startswith("Usage: element-session")
        else:
            assert "'animals' is not one of" in result.stderr


def test_progress_bars_are_drawn_only_on_a_terminal(ingested, command, tmp_path):
    """Standard error here is not a terminal: no command leaves a bar (``import: 0%|``) in a log."""
    (tmp_path / "raw" / "cl-m1" / "s1").mkdir(parents=True)
    bundle = str(tmp_path / "cl.bundle")
    runs = {
        "ingest": command("ingest", "sessions", str(ingested / "sessions.csv"), "--timezone", "America/New_York"),
        "export": command("export", "--output", bundle, "--subject", "cl-m1"),
        "import": command("import", bundle, "--dry-run"),
        "populate": command(
            "populate", "--restrict", "subject=cl-m1", env={"SESSION_ROOT_DIRS": str(tmp_path / "raw")}
        ),
    }
    for name, ran in runs.items():
        assert ran.status == 0, (name, ran.err)
        assert "|" not in ran.err and "%" not in ran.err, (name, ran.err)


def test_a_progress_bar_is_drawn_on_a_terminal_unless_turned_off(monkeypatch):
    """The other side of the rule: on a terminal (a pseudo-terminal here) the bar is drawn; ``--no-progress`` not."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios

    from element_session.progress import progress_bar

    drawn = {}
    for shown in (None, False):  # None: what the commands pass unless --no-progress
        main, side = pty.openpty()
        fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # 24 rows of 80 columns
        with open(side, "w", encoding="utf-8") as terminal:
            monkeypatch.setattr(sys, "stderr", terminal)
            for _ in progress_bar(range(3), shown=shown, desc="import", delay=0):
                pass
            terminal.flush()
            chunks = [b""]
            while b"\n" not in chunks[-1] and select.select([main], [], [], 1)[0]:  # the kernel hands it over
                chunks.append(os.read(main, 4096))  # in pieces, a little later: until the bar's last line or 1 s
            drawn[shown] = b"".join(chunks).decode("utf-8", "replace")
        os.close(main)
    assert "import: 100%" in drawn[None] and drawn[False] == ""
    for shown, expected in ((True, True), (None, False)):  # asked for in Python (a notebook): drawn anywhere
        captured = io.StringIO()
        monkeypatch.setattr(sys, "stderr", captured)
        for _ in progress_bar(range(3), shown=shown, desc="ingest", delay=0):
            pass
        assert ("ingest: 100%" in captured.getvalue()) is expected, shown
