"""The element-session command: ingest, list, locate, populate, export and upgrade sessions of a pipeline.

The whole command line lives here (click); library modules never parse arguments. Standard output
carries only the command's own output; messages go to standard error. DataJoint's own warnings
and log lines are hidden unless ``-v/--verbose`` is given. Errors become exit statuses in one
place, :func:`exit_status` (the table is in ``README.md``, "Exit statuses").

Nothing heavy is imported at module level: ``--help`` imports neither DataJoint nor the pipeline.
A command runs as a short batch process: the cyclic garbage collector runs less often while it
works (:func:`element_session._collector.cycle_collection_less_often`), and the process skips the
collector's passes over every object at exit (:func:`run`).
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import shlex
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import click

from . import _messages
from ._collector import cycle_collection_less_often
from .columns import KINDS
from .errors import (
    DatabaseUnreachableError,
    ElementSessionError,
    InputError,
    PermissionDeniedError,
    UsageError,
)

DEFAULT_PIPELINE = "workflow.pipeline"


class ExitStatus(IntEnum):
    """The exit statuses of ``element-session``."""

    OK = 0  # success
    INVALID = 1  # invalid input data, a failed key or step, or an unexpected error (the message says which)
    USAGE = 2  # wrong usage: an unknown command or option, a bad option value
    UNREACHABLE = 3  # the database cannot be reached
    DENIED = 4  # the database refused the account's request (e.g. a read-only account writing)
    INTERRUPTED = 130  # interrupted (Ctrl-C)
    BROKEN_PIPE = 141  # the reader of the output went away (`| head`): 128 + SIGPIPE, as a shell reports it


#: Typed errors and their exit status, most specific first (an error's typed cause counts too).
_STATUS_OF_ERROR: tuple[tuple[type[BaseException], ExitStatus], ...] = (
    (DatabaseUnreachableError, ExitStatus.UNREACHABLE),
    (PermissionDeniedError, ExitStatus.DENIED),
    (click.UsageError, ExitStatus.USAGE),
    (UsageError, ExitStatus.USAGE),
    (KeyboardInterrupt, ExitStatus.INTERRUPTED),
    (click.Abort, ExitStatus.INTERRUPTED),
)


def exit_status(err: BaseException) -> ExitStatus:
    """The exit status of an error that ended a command: the one map from errors to statuses.

    A database refusal or an unreachable server gives its status also where it is the cause of
    another typed error (e.g. a failed migration step); an :class:`InputError` in the command's own
    options (``--since yesterday``, ``--timezone CEST``) and a :class:`UsageError` (a
    :class:`PopulateError` among them) are ``USAGE``; every other error is ``INVALID``.
    """
    for candidate in (err, err.__cause__):
        if isinstance(candidate, InputError) and candidate.in_arguments:  # a bad option value
            return ExitStatus.USAGE
        for kind, status in _STATUS_OF_ERROR:
            if isinstance(candidate, kind):
                return status
    return ExitStatus.INVALID


@dataclass
class Settings:
    """What the group's options decide, carried to every command in ``ctx.obj``."""

    pipeline_name: str = DEFAULT_PIPELINE
    verbose: bool = False
    pipeline: ModuleType | None = None  # the pipeline module, once imported (or given to main())

    def load_pipeline(self) -> ModuleType:
        """The pipeline module, imported on first use (which activates its schemas)."""
        if self.pipeline is None:
            from .pipeline import load

            self.pipeline = load(self.pipeline_name, from_working_directory=True)
        return self.pipeline


def _set_pipeline(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(Settings).pipeline_name = value


_PIPELINE_HELP = f"pipeline module to work on (default: {DEFAULT_PIPELINE})"


def pipeline_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--pipeline`` after a sub-command too (``element-session sessions --pipeline X``), as before click."""
    return click.option(
        "--pipeline", metavar="MODULE", expose_value=False, callback=_set_pipeline, help=_PIPELINE_HELP
    )(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--pipeline", metavar="MODULE", default=None, help=_PIPELINE_HELP)
@click.option("-v", "--verbose", is_flag=True, help="show DataJoint's warnings and messages (on standard error)")
@click.version_option(package_name="element-session", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, pipeline: str | None, verbose: bool) -> None:
    """Ingest, list, locate, populate, export and upgrade the sessions of a DataJoint pipeline."""
    settings = ctx.ensure_object(Settings)
    if pipeline is not None:
        settings.pipeline_name = pipeline
    settings.verbose = verbose
    _messages.configure(verbose)


def main(argv: Sequence[str] | None = None, *, pipeline: ModuleType | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); its exit status.

    ``pipeline``: the pipeline module to use instead of importing ``--pipeline`` by name.
    Errors are reported on standard error in one line (a traceback too with ``-v``).
    """
    _messages.filter_warnings(verbose=False)  # DataJoint warns at import: quiet until -v is read
    settings = Settings(pipeline=pipeline)
    try:
        # make_context/invoke rather than cli.main: click's main turns a broken pipe into exit 1 itself
        args = list(argv) if argv is not None else sys.argv[1:]
        with cycle_collection_less_often(), cli.make_context("element-session", args, obj=settings) as ctx:
            status = cli.invoke(ctx)
    except click.exceptions.Exit as done:  # --help, --version
        return done.exit_code
    except BrokenPipeError:  # the reader of the output went away (`| head`); Python's docs recipe:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit fails no more
        return ExitStatus.BROKEN_PIPE
    except click.ClickException as err:
        err.show()
        return exit_status(err)
    except (Exception, KeyboardInterrupt, click.Abort) as err:
        typed = _typed(err)
        status = exit_status(typed)
        if isinstance(typed, ElementSessionError):
            click.echo(f"element-session: {typed}", err=True)
        elif status == ExitStatus.INTERRUPTED:
            click.echo("element-session: interrupted", err=True)
        else:
            click.echo(f"element-session: unexpected error: {type(typed).__name__}: {typed}", err=True)
            if not settings.verbose:
                click.echo("element-session: run again with -v for the traceback", err=True)
        if settings.verbose:
            traceback.print_exception(err, file=sys.stderr)
        return status
    return ExitStatus.OK if status is None else int(status)


def run() -> NoReturn:
    """The ``element-session`` executable and ``python -m element_session``: :func:`main`, then exit.

    The process ends right after the command, so the objects it holds are frozen first
    (:func:`gc.freeze`): the interpreter's shutdown then frees them by reference count without
    scanning them all for cycles again (about 0.2 s with DataJoint and pandas loaded). Standard
    output and error are flushed and exit handlers run as usual. In-process callers use :func:`main`.
    """
    status = main()
    gc.freeze()
    sys.exit(status)


def _typed(err: BaseException) -> BaseException:
    """A database failure as its typed error; any other error as it is."""
    if "datajoint" not in sys.modules or not isinstance(err, Exception):
        return err
    from .database import translate

    return translate(err) or err


def _settings(ctx: click.Context) -> Settings:
    return ctx.ensure_object(Settings)


# --------------------------------------------------------------------------- ingest, sessions, dirs


class _LazyChoice(click.Choice):
    """A choice among the values of ``module.name``, imported when first needed (not for ``--help``
    of another command, and not for commands that do not use that module): ``localdb.BACKENDS``."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(())
        self._source = (module, name)

    @property
    def choices(self) -> Sequence[str]:  # type: ignore[override]
        module, name = self._source
        return getattr(importlib.import_module(module, __package__), name)

    @choices.setter
    def choices(self, _value: Sequence[str]) -> None:
        pass


@cli.command()
@click.argument("kind", type=click.Choice(KINDS), metavar="KIND")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--timezone", default="UTC", show_default=True, help="IANA zone of session times without an offset")
@click.option("--dry-run", is_flag=True, help="check and report, write nothing")
@click.option("--sheet", metavar="NAME", help="the worksheet of .xlsx files  [default: each workbook's first]")
@click.option(
    "--delimiter", metavar="CHAR", help="the separator of CSV/TSV files  [default: tab for .tsv, else from the header]"
)
@pipeline_option
@click.pass_context
def ingest(
    ctx: click.Context,
    kind: str,
    files: tuple[str, ...],
    timezone: str,
    dry_run: bool,
    sheet: str | None,
    delimiter: str | None,
) -> ExitStatus:
    """Ingest subjects, experimenters, projects or sessions from CSV/TSV, xlsx, YAML or JSON FILEs (one transaction)."""
    from .ingest import ingest as ingest_rows

    report = ingest_rows(
        kind,  # type: ignore[arg-type]  # one of KINDS: click checked it
        list(files),
        linking_module=_settings(ctx).load_pipeline(),
        timezone=timezone,
        dry_run=dry_run,
        sheet=sheet,
        delimiter=delimiter,
    )
    click.echo(report)
    if not report.rows:
        click.echo(f"element-session: no rows in {', '.join(files)}: nothing to ingest", err=True)
    return ExitStatus.OK


@cli.command()
@click.option("--subject", multiple=True, help="a subject (repeat for several)")
@click.option("--project", help="a project")
@click.option("--experimenter", help="an experimenter")
@click.option("--since", help="start time or date, included")
@click.option("--until", help="start time, excluded; or a date, included whole")
@click.option("--timezone", default="UTC", show_default=True, help="zone of --since/--until without an offset")
@click.option("--format", "form", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@pipeline_option
@click.pass_context
def sessions(
    ctx: click.Context,
    subject: tuple[str, ...],
    project: str | None,
    experimenter: str | None,
    since: str | None,
    until: str | None,
    timezone: str,
    form: str,
) -> ExitStatus:
    """List sessions."""
    from . import formats, query

    pipeline = _settings(ctx).load_pipeline()
    found = query.find_sessions(
        pipeline.session,
        subject=list(subject) or None,
        project=project,
        experimenter=experimenter,
        since=since,
        until=until,
        timezone=timezone,
    )
    module = pipeline.session
    frame = query.session_table(found, module)
    problems = formats.session_problems(frame, module.Session)  # what the table and CSV cannot show
    if form == "json":
        from .attribute_blobs import read_attribute_blobs

        records = formats.session_records(frame, module.Session, read_attribute_blobs(found, module))
        json.dump(records, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        problems = formats.record_problems(records, module.Session)
    elif form == "csv":
        formats.write_sessions_csv(frame, module.Session, sys.stdout)
    else:
        click.echo(formats.sessions_text(frame))
    for problem in problems:
        click.echo(f"element-session: {problem}", err=True)
    return ExitStatus.INVALID if problems else ExitStatus.OK


@cli.command()
@click.option("--missing", is_flag=True, help="only sessions whose directory is found under no root")
@pipeline_option
@click.pass_context
def dirs(ctx: click.Context, missing: bool) -> ExitStatus:
    """Sessions and their resolved raw-data directories."""
    from . import formats, paths

    found = paths.session_directories(_settings(ctx).load_pipeline().session)
    roots = paths.get_root_dirs()
    if not roots:
        click.echo(f"element-session: no root data directory is set ({paths.ROOT_DIRS_ENV}): none is found", err=True)
    for root in roots:
        try:
            problem = None if root.is_dir() else "is not a directory"
        except OSError as err:  # e.g. a name longer than the file system allows
            problem = f"cannot be checked: {err.strerror}"
        if problem:
            click.echo(f"element-session: root data directory {str(root)!r} {problem}", err=True)
    shown = found[found["status"] != paths.FOUND] if missing else found
    click.echo(
        formats.directories_text(shown) if len(shown) else "no missing directories" if missing else "no sessions"
    )
    unresolved = int((found["status"] == paths.UNRESOLVED).sum())
    if unresolved:
        click.echo(
            f"element-session: {unresolved} session directory value(s) cannot be resolved: see 'reason'", err=True
        )
    return ExitStatus.INVALID if unresolved else ExitStatus.OK


# --------------------------------------------------------------------------- populate and jobs


class _Assignment(click.ParamType):
    """``ATTR=VALUE``, as a (name, value) pair."""

    name = "ATTR=VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        name, sep, text = str(value).partition("=")
        if not sep or not name.strip():
            self.fail(f"needs ATTRIBUTE=VALUE, not {value!r}", param, ctx)
        return name.strip(), text


def restrict_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--restrict ATTR=VALUE``, repeatable: all must match; ``--timezone`` of its times (docs/times.md)."""
    command = click.option(
        "--timezone", default="UTC", show_default=True, help="zone of --restrict times without an offset"
    )(command)
    return click.option(
        "--restrict",
        type=_Assignment(),
        multiple=True,
        help="only keys with this attribute value, e.g. subject=mouse1 (repeatable: all must match)",
    )(command)


def table_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--table NAME``, repeatable."""
    return click.option(
        "--table",
        "tables",
        multiple=True,
        metavar="NAME",
        help="a table (class name or module.Class); repeat for several; default: all",
    )(command)


def _restriction(pairs: tuple[tuple[str, str], ...]) -> dict[str, str] | None:
    return dict(pairs) or None


@cli.command()
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="worker processes here")
@table_option
@click.option("--limit", type=click.IntRange(min=1), help="at most this many keys per table in this run")
@restrict_option
@click.option("--no-progress", "progress", is_flag=True, flag_value=False, default=True, help="no progress bar")
@pipeline_option
@click.pass_context
def populate(
    ctx: click.Context,
    workers: int,
    tables: tuple[str, ...],
    limit: int | None,
    restrict: tuple[tuple[str, str], ...],
    timezone: str,
    progress: bool,
) -> ExitStatus:
    """Populate the pipeline's Imported/Computed tables with worker processes.

    DataJoint's job reservation hands each key to one worker: workers here and on other machines
    share the keys.
    """
    from .formats import key_text
    from .populate import populate as run

    settings = _settings(ctx)
    try:
        summary = run(
            settings.load_pipeline(),
            tables=list(tables) or None,
            workers=workers,
            limit=limit,
            progress=progress,
            restriction=_restriction(restrict),
            timezone=timezone,
            verbose=settings.verbose,
        )
    except KeyboardInterrupt:
        click.echo("interrupted: the workers stopped and the keys they were making were put back", err=True)
        return ExitStatus.INTERRUPTED
    click.echo(summary)
    for table, key, message in summary.errors:
        click.echo(f"  {table} {key_text(key, sep=' ')}: {message}")
    if summary.errors:
        click.echo("failed keys stay in the jobs table: see `element-session jobs`; clear them with --clear-errors")
    return ExitStatus.OK if summary.ok else ExitStatus.INVALID


@cli.command()
@click.option("--clear-errors", is_flag=True, help="clear every failed key")
@click.option("--clear-stale", is_flag=True, help="clear reservations whose worker is gone")
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    metavar="MINUTES",
    help="with --clear-stale: also clear reservations of other hosts at least this old",
)
@table_option
@restrict_option
@pipeline_option
@click.pass_context
def jobs(
    ctx: click.Context,
    clear_errors: bool,
    clear_stale: bool,
    older_than: float | None,
    tables: tuple[str, ...],
    restrict: tuple[tuple[str, str], ...],
    timezone: str,
) -> ExitStatus:
    """List reserved and failed jobs; clear failed keys or stale reservations so they run again.

    A reservation is stale if its process on this host is gone, or, with --older-than, if it was
    made on another host at least that many minutes ago.
    """
    from .jobs import clear_jobs, format_jobs, list_jobs

    if older_than is not None and not clear_stale:
        raise click.UsageError("--older-than applies to --clear-stale; add --clear-stale", ctx)
    pipeline = _settings(ctx).load_pipeline()
    restriction, names = _restriction(restrict), list(tables) or None
    if clear_errors or clear_stale:
        cleared = clear_jobs(
            pipeline,
            errors=clear_errors,
            stale=clear_stale,
            older_than=older_than,
            tables=names,
            restriction=restriction,
            timezone=timezone,
        )
        n_errors = sum(r.status == "error" for r in cleared)
        click.echo(f"cleared {n_errors} failed key(s) and {len(cleared) - n_errors} stale reservation(s)")
    records = list_jobs(pipeline, tables=names, restriction=restriction, timezone=timezone)
    click.echo(format_jobs(records))
    unreadable = sum(bool(r.problem) for r in records)
    if unreadable:
        click.echo(f"element-session: {unreadable} jobs row(s) cannot be read: see UNREADABLE", err=True)
    return ExitStatus.INVALID if unreadable else ExitStatus.OK


# --------------------------------------------------------------------------- export and migrate


@cli.command("export-nwb")
@click.option("--subject", required=True, help="the session's subject")
@click.option("--datetime", "when", help="the session's start time, ISO 8601 (with offset, or read in --timezone)")
@click.option("--id", "session_id", metavar="N", help="the session's number")
@click.option("--timezone", default="UTC", show_default=True, help="zone of --datetime without an offset")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="the NWB file to write")
@click.option("--overwrite", is_flag=True, help="replace the output file if it exists")
@click.option("--institution", help="institution written in the file")
@click.option("--lab", help="lab written in the file")
@pipeline_option
@click.pass_context
def export_nwb(
    ctx: click.Context,
    subject: str,
    when: str | None,
    session_id: str | None,
    timezone: str,
    output: Path,
    overwrite: bool,
    institution: str | None,
    lab: str | None,
) -> ExitStatus:
    """Write one session (subject plus --datetime or --id) to an NWB file.

    Needs pynwb: pip install "element-session[nwb]".
    """
    if (when is None) == (session_id is None):
        raise click.UsageError("give one of --datetime and --id", ctx)
    from .export.nwb import find_session_key, write_nwb

    pipeline = _settings(ctx).load_pipeline()
    module = pipeline.session
    key = find_session_key(module, subject, session_datetime=when, session_id=session_id, timezone=timezone)
    path = write_nwb(
        key,
        output,
        overwrite=overwrite,
        session_module=module,
        linking_module=pipeline,
        institution=institution,
        lab=lab,
    )
    click.echo(path)
    return ExitStatus.OK


@cli.command()
@click.option("--schema", required=True, metavar="NAME", help="name of the session schema on the server")
@click.option("--dry-run", is_flag=True, help="report what would change and change nothing")
@click.option("--dependents", is_flag=True, help="also fix the schemas that depend on it (metadata, charset)")
@pipeline_option
def migrate(schema: str, dry_run: bool, dependents: bool) -> ExitStatus:
    """Upgrade, in place, a session schema written by the published element (DataJoint 0.14).

    Back up the schema first (docs/upgrade.md). It works on the schema by name: the pipeline is not
    imported (importing it would activate, i.e. declare, its schemas).
    """
    from .upgrade.migrate import migrate as run

    click.echo(run(schema, dry_run=dry_run, dependents=dependents, connection=_connection()))
    return ExitStatus.OK


@cli.command()
@click.option("--schema", required=True, metavar="NAME", help="name of the session schema on the server")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pipeline_option
def doctor(schema: str, fmt: str) -> ExitStatus:
    """Report what DataJoint 2.x would mishandle in a legacy database; reads only, exit 1 on hazards."""
    from .upgrade.doctor import diagnose, format_findings, has_hazards

    findings = diagnose(schema, connection=_connection())
    click.echo(format_findings(findings, schema, fmt))
    return ExitStatus.INVALID if has_hazards(findings) else ExitStatus.OK


def _connection() -> Any:
    """DataJoint's connection, a failure to connect typed (unreachable, refused)."""
    import datajoint as dj

    from .database import database_errors

    with database_errors():
        return dj.conn()


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="port to listen on")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="worker processes")
@click.option("--timezone", default=None, help="the lab's zone, preset in the add form")
@pipeline_option
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int, timezone: str | None) -> ExitStatus:
    """Serve the web interface (docs/web.md); people log in with their own database accounts.

    Needs the extra: pip install "element-session[web]". Prints the address; Ctrl-C stops it.
    """
    from .times import zone_argument
    from .web.server import serve as run

    settings = _settings(ctx)
    if timezone is not None:
        zone_argument(timezone)
    settings.load_pipeline()  # fails here, with its exit status, rather than in each worker
    run(settings.pipeline_name, host, port, workers, verbose=settings.verbose, timezone=timezone)
    return ExitStatus.OK


# --------------------------------------------------------------------------- the private server


@cli.group()
def localdb() -> None:
    """A private MariaDB/PostgreSQL server for the demo and the tests (also: python -m element_session.localdb)."""


@localdb.command("start")
@click.argument("datadir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--backend", type=_LazyChoice(".localdb", "BACKENDS"), envvar="DJ_BACKEND", default="mysql")
def localdb_start(datadir: Path, backend: str) -> ExitStatus:
    """Start a server with its data in DATADIR; print `export` lines for a shell to eval.

    The password is not printed: its line reads it from the server's password file when evaluated.
    """
    from .localdb import LocalServer

    server = LocalServer(datadir, backend)
    info = server.start()
    server.detach()
    for name, value in info.environment().items():
        text = f'"$(cat {shlex.quote(str(server.password_file))})"' if name == "DJ_PASS" else shlex.quote(value)
        click.echo(f"export {name}={text}")
    return ExitStatus.OK


@localdb.command("stop")
@click.argument("datadir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--backend",
    type=_LazyChoice(".localdb", "BACKENDS"),
    envvar="DJ_BACKEND",
    default="mysql",
    help="Only where DATADIR records no running server: the backend its server.json names is used otherwise.",
)
def localdb_stop(datadir: Path, backend: str) -> ExitStatus:
    """Stop the server whose data is in DATADIR (of the backend DATADIR/server.json records)."""
    from .localdb import LocalServer

    LocalServer(datadir, backend).stop()
    return ExitStatus.OK


if __name__ == "__main__":
    run()
