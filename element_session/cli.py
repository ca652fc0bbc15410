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

import contextlib
import functools
import gc
import importlib
import json
import os
import shlex
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from . import _messages
from ._collector import cycle_collection_less_often
from .columns import KINDS
from .errors import (
    DandiWarning,
    DatabaseUnreachableError,
    ElementSessionError,
    ElementSessionWarning,
    InputError,
    InputProblem,
    PermissionDeniedError,
    Terminated,
    UsageError,
)

if TYPE_CHECKING:
    from .jobs import Restriction

DEFAULT_PIPELINE = "workflow.pipeline"


class ExitStatus(IntEnum):
    """The exit statuses of ``element-session``."""

    OK = 0  # success
    INVALID = 1  # invalid input data, a failed key or step, or an unexpected error (the message says which)
    USAGE = 2  # wrong usage: an unknown command or option, a bad option value
    UNREACHABLE = 3  # the database cannot be reached
    DENIED = 4  # the database refused the account's request (e.g. a read-only account writing)
    INTERRUPTED = 130  # interrupted (Ctrl-C): 128 + SIGINT
    TERMINATED = 143  # stopped by SIGTERM (kill, a supervisor, SLURM's scancel or time limit): 128 + SIGTERM
    BROKEN_PIPE = 141  # the reader of the output went away (`| head`): 128 + SIGPIPE, as a shell reports it


#: Typed errors and their exit status, most specific first (an error's typed cause counts too).
_STATUS_OF_ERROR: tuple[tuple[type[BaseException], ExitStatus], ...] = (
    (DatabaseUnreachableError, ExitStatus.UNREACHABLE),
    (PermissionDeniedError, ExitStatus.DENIED),
    (click.UsageError, ExitStatus.USAGE),
    (UsageError, ExitStatus.USAGE),
    (Terminated, ExitStatus.TERMINATED),
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
        """The pipeline module, imported on first use (which activates its schemas).

        The schemas that activation created (missing before: a new or misspelt ``DATABASE_PREFIX``)
        are named once, on standard error, for every command that loads the pipeline.
        """
        if self.pipeline is None:
            import datajoint as dj

            from .database import database_errors
            from .pipeline import load

            connection = _connection()
            with database_errors():
                before = set(dj.list_schemas(connection))
            try:
                self.pipeline = load(self.pipeline_name, from_working_directory=True)
            finally:  # also where activation failed half-way; its own error is the one raised
                with contextlib.suppress(Exception):
                    created = sorted(set(dj.list_schemas(connection)) - before)
                    if created:  # said before the command's work, which may fail: the schemas stay
                        click.echo(
                            "element-session: activating the pipeline created the empty schema(s) "
                            f"{', '.join(created)} (is DATABASE_PREFIX right?)",
                            err=True,
                        )
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


class _Command(click.Command):
    """A command whose bad option values are named as typed: ``--status``, not ``status`` or ``states``.

    The library names the argument it was given (``find_sessions(status=...)``); an option passes
    its value to the argument of its own name (``--status`` to ``status``), so an
    :class:`InputError` in the arguments is told again with each argument as the option that gave
    it (:func:`option_as_typed`).
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as err:
            if type(err) is not InputError or not err.in_arguments:
                raise
            raise InputError([option_as_typed(p, self.params) for p in err.problems]) from err.__cause__


def option_as_typed(problem: InputProblem, params: Sequence[click.Parameter]) -> InputProblem:
    """``problem`` named by the option that gave its value (source ``options``), where one did.

    An argument's problem names the option of the argument's name (``since`` -> ``--since``); a
    populate/jobs restriction's names ``--restrict`` and the attribute. Others stay as they are.
    """
    typed = {p.name: max(p.opts, key=len) for p in params if isinstance(p, click.Option)}
    if problem.source == "restriction" and "restrict" in typed:
        option = " ".join(filter(None, (typed["restrict"], problem.column)))
    elif problem.source == "arguments" and problem.column in typed:
        option = typed[problem.column]
    else:
        return problem
    return InputProblem("options", problem.row, option, problem.value, problem.reason)


class _Group(click.Group):
    """The command group: its commands (and groups) are of the classes above."""

    command_class = _Command
    group_class = type  # a sub-group of a _Group is a _Group


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
        with (
            warnings.catch_warnings(),  # showwarning restored at the end: main() may run in a notebook
            sigterm_as_interrupt(),
            cycle_collection_less_often(),
            cli.make_context("element-session", args, obj=settings) as ctx,
        ):
            warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
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
        elif status == ExitStatus.TERMINATED:
            click.echo("element-session: stopped by SIGTERM", err=True)
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


def _show_warning(
    otherwise: Callable[..., None], message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any
) -> None:
    """The product's warnings as one line on standard error (not Python's file, line and source line);
    any other warning as ``otherwise`` (the ``warnings.showwarning`` that was in place) shows it."""
    if issubclass(category, ElementSessionWarning):
        click.echo(f"element-session: warning: {message}", err=True)
    else:
        otherwise(message, category, *args, **kwargs)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`~element_session.errors.Terminated` (a KeyboardInterrupt).

    So a command stopped by ``kill``, a supervisor or SLURM (``scancel``, a time limit) cleans up
    as for Ctrl-C (a populate stops its workers and puts their keys back; an open transaction is
    rolled back) and exits with 143. Outside the main thread (where signals cannot be handled)
    nothing changes. The previous handler is restored at the end.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        raise Terminated(f"stopped by {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    def choices(self) -> tuple[str, ...]:
        module, name = self._source
        return tuple(getattr(importlib.import_module(module, __package__), name))

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


def selection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that select sessions (``sessions``, ``status show``, ``history``, ``export``, ``copy``):
    ``find_sessions``' arguments."""
    for option in reversed(
        [
            click.option("--subject", multiple=True, help="a subject (repeat for several)"),
            click.option("--project", help="a project"),
            click.option("--experimenter", help="an experimenter"),
            click.option("--since", help="start time or date, included"),
            click.option("--until", help="start time, excluded; or a date, included whole"),
            click.option(
                "--timezone", default="UTC", show_default=True, help="zone of --since/--until without an offset"
            ),
            click.option("--status", multiple=True, metavar="STATE", help="a status (repeat for several)"),
            click.option(
                "--search",
                metavar="TEXT",
                help="text in the subject, note, experimenters, projects or attribute values",
            ),
        ]
    ):
        command = option(command)
    return command


def _progress(flag: bool) -> bool | None:
    """A command's progress: a bar only where standard error is a terminal (None), none with ``--no-progress``."""
    return None if flag else False


def format_option(*choices: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--format``, one of ``choices`` (the first is the default), given to the command as ``form``."""
    return click.option("--format", "form", type=click.Choice(choices), default=choices[0], show_default=True)


def _selected(ctx: click.Context, selection: dict[str, Any]) -> tuple[Any, ModuleType]:
    """The sessions the selection options choose (a query of ``Session``), and the session module."""
    from . import query

    module = _settings(ctx).load_pipeline().session
    subject, status = selection.pop("subject"), selection.pop("status")
    selection |= {"subject": list(subject) or None, "status": list(status) or None}
    found = query.find_sessions(module, **selection)
    for unknown in query.unknown_names(module, selection):
        click.echo(f"element-session: warning: {unknown}", err=True)
    return found, module


@cli.command()
@selection_options
@format_option("table", "csv", "json")
@pipeline_option
@click.pass_context
def sessions(ctx: click.Context, form: str, **selection: Any) -> ExitStatus:
    """List sessions."""
    from . import formats, query

    found, module = _selected(ctx, selection)
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


def _one_of_datetime_and_id(ctx: click.Context, session_datetime: str | None, session_id: str | None) -> None:
    """Raise click.UsageError unless exactly one of ``--datetime`` and ``--id`` was given (naming which way)."""
    if session_datetime is None and session_id is None:
        raise click.UsageError("give --datetime or --id", ctx)
    if session_datetime is not None and session_id is not None:
        raise click.UsageError("give --datetime or --id, not both", ctx)


@cli.group("status")
def status_group() -> None:
    """Set and show the status of sessions: planned, acquiring, acquired, qc_passed, qc_failed, aborted.

    The transitions allowed and what they gate are in docs/status.md.
    """


@status_group.command("set")
@click.option("--subject", required=True, help="the session's subject")
@click.option(
    "--datetime", "session_datetime", help="the session's start time, ISO 8601 (with offset, or read in --timezone)"
)
@click.option("--id", "session_id", metavar="N", help="the session's number")
@click.option("--timezone", default="UTC", show_default=True, help="zone of --datetime without an offset")
@click.option("--reason", metavar="TEXT", help="why (required to move a qc_passed or qc_failed session back)")
@click.argument("state", type=_LazyChoice(".status", "STATES"), metavar="STATUS")
@pipeline_option
@click.pass_context
def status_set(
    ctx: click.Context,
    subject: str,
    session_datetime: str | None,
    session_id: str | None,
    timezone: str,
    reason: str | None,
    state: str,
) -> ExitStatus:
    """Move one session (subject plus --datetime or --id) to STATUS, if its current status allows it."""
    _one_of_datetime_and_id(ctx, session_datetime, session_id)
    from .query import session_key_of_subject
    from .status import set_status

    module = _settings(ctx).load_pipeline().session
    key = session_key_of_subject(
        module, subject, session_datetime=session_datetime, session_id=session_id, timezone=timezone
    )
    click.echo(set_status(key, state, reason=reason, session_module=module))
    return ExitStatus.OK


@status_group.command("show")
@selection_options
@format_option("table", "csv", "json")
@pipeline_option
@click.pass_context
def status_show(ctx: click.Context, form: str, **selection: Any) -> ExitStatus:
    """The status of the selected sessions: who set it, when (UTC) and why."""
    from . import formats
    from .query import status_table

    found, module = _selected(ctx, selection)
    frame = formats.times_as_text(status_table(found, module))
    if form == "json":
        click.echo(frame.to_json(orient="records", force_ascii=False, indent=1) if len(frame) else "[]")
    elif form == "csv":
        frame.to_csv(sys.stdout, index=False, lineterminator="\r\n")
    else:
        click.echo(formats.text_table(frame) if len(frame) else "no sessions")
    return ExitStatus.OK


@cli.command("history")
@selection_options
@format_option("table", "json")
@pipeline_option
@click.pass_context
def history_command(ctx: click.Context, form: str, **selection: Any) -> ExitStatus:
    """Every recorded change of the selected sessions' rows: when (UTC), which account, what, why.

    With no option but --subject, deleted sessions of those subjects are included.
    """
    from . import formats
    from .history import history, history_frame, history_records
    from .history import problems as history_problems

    subjects = selection["subject"]
    if not any(v for name, v in selection.items() if name not in ("subject", "timezone")):
        module = _settings(ctx).load_pipeline().session
        keys = [{module.Session.primary_key[0]: s} for s in subjects] or [{}]
    else:
        found, module = _selected(ctx, selection)
        keys = found.keys()
    entries = history(keys, session_module=module) if keys else []
    for problem in history_problems(module.Session.connection, module.Session.database):
        click.echo(f"element-session: warning: the history may miss changes: {problem} (docs/status.md)", err=True)
    if not entries and not any(v for name, v in selection.items() if name not in ("subject", "timezone")):
        from .query import unknown_names  # a deleted subject's history is shown: warn only where there is none

        for unknown in unknown_names(module, {"subject": list(subjects)}):
            click.echo(f"element-session: warning: {unknown}", err=True)
    if form == "json":
        click.echo(json.dumps(history_records(entries), ensure_ascii=False, indent=1))
    else:
        shown = history_frame(entries, module.Session.primary_key)
        click.echo(formats.text_table(shown) if entries else "no changes recorded")
    return ExitStatus.OK


@cli.command()
@selection_options
@click.option("--missing", is_flag=True, help="only sessions whose directory is found under no root")
@pipeline_option
@click.pass_context
def dirs(ctx: click.Context, missing: bool, **selection: Any) -> ExitStatus:
    """Sessions and their resolved raw-data directories (the selection options as for sessions)."""
    from . import formats, paths

    sessions, module = _selected(ctx, selection)
    found = paths.session_directories(module, sessions=sessions)
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
            progress=_progress(progress),
            restriction=_restriction(restrict),
            timezone=timezone,
            verbose=settings.verbose,
        )
    except KeyboardInterrupt as stopped:  # Ctrl-C, or SIGTERM (Terminated)
        said = str(stopped) or "interrupted"  # Ctrl-C's KeyboardInterrupt says nothing itself
        click.echo(f"{said}: the workers stopped and the keys they were making were put back", err=True)
        return exit_status(stopped)
    click.echo(summary)
    for table, key, message in summary.errors:
        click.echo(f"  {table} {key_text(key)}: {message}")
    if summary.errors:
        click.echo("failed keys stay in the jobs table: see `element-session jobs`; clear them with --clear-errors")
    return ExitStatus.OK if summary.ok else ExitStatus.INVALID


@cli.command()
@click.option("--clear-errors", is_flag=True, help="clear every failed key")
@click.option(
    "--clear-stale",
    is_flag=True,
    help="clear reservations whose worker's connection the database server no longer lists",
)
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    metavar="MINUTES",
    help="with --clear-stale: also clear reservations without a recorded connection at least this old "
    "(a live worker's reservation is never cleared)",
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

    A reservation is stale if the database server no longer lists its worker's connection, wherever
    the worker ran; with --older-than, one without a recorded connection is cleared at that age. A
    live worker's never is, nor another account's this account cannot judge (MySQL without PROCESS).
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


# --------------------------------------------------------------------------- SLURM


@cli.group()
def slurm() -> None:
    """Run populate on a SLURM cluster as a job array of identical workers (docs/cluster.md)."""


@slurm.command("populate")
@click.option("--array", "tasks", type=click.IntRange(min=1), required=True, metavar="N", help="number of array tasks")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="worker processes per task")
@click.option("--partition", metavar="P", help="SLURM partition  [default: the cluster's default]")
@click.option("--time", "time_minutes", type=click.IntRange(min=1), metavar="MINUTES", help="time limit of each task")
@click.option("--mem", "memory", metavar="SIZE", help="memory of each task, e.g. 500M or 4G")
@click.option(
    "--cpus-per-task", type=click.IntRange(min=1), metavar="C", help="CPUs of each task  [default: --workers]"
)
@click.option("--requeue", is_flag=True, help="let SLURM requeue a task (pre-emption, node failure)")
@click.option("--sbatch-arg", "sbatch_args", multiple=True, metavar="ARG", help="a further sbatch option (repeatable)")
@click.option("--dry-run", is_flag=True, help="print the batch script, submit nothing")
@click.option("--wait", is_flag=True, help="follow the array until every task ended; exit 0 only if all went well")
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("element-session-slurm"),
    show_default=True,
    help="where the tasks' logs and the batch script are kept",
)
@table_option
@click.option("--limit", type=click.IntRange(min=1), help="at most this many keys per table in each task")
@restrict_option
@pipeline_option
@click.pass_context
def slurm_populate(
    ctx: click.Context,
    tasks: int,
    workers: int,
    partition: str | None,
    time_minutes: int | None,
    memory: str | None,
    cpus_per_task: int | None,
    requeue: bool,
    sbatch_args: tuple[str, ...],
    dry_run: bool,
    wait: bool,
    log_dir: Path,
    tables: tuple[str, ...],
    limit: int | None,
    restrict: tuple[tuple[str, str], ...],
    timezone: str,
) -> ExitStatus:
    """Submit `element-session populate` as a SLURM job array of N tasks; print its id.

    Each task clears the reservations of workers that are provably gone, then runs populate; SLURM's
    SIGTERM (scancel, --time, requeue) reaches it, so the keys it was making are put back. The
    database password never goes to SLURM: the tasks read it from DataJoint's secrets.
    """
    from .cluster.script import BatchOptions, render
    from .cluster.secrets import check_password_reaches_tasks, password_only_in_environment

    settings = _settings(ctx)
    workdir = Path.cwd()
    name = settings.pipeline.__name__ if settings.pipeline is not None else settings.pipeline_name
    options = BatchOptions(
        tasks=tasks,
        pipeline=name,
        workdir=workdir,
        log_dir=(workdir / log_dir).resolve(),
        workers=workers,
        partition=partition,
        time_minutes=time_minutes,
        memory=memory,
        cpus_per_task=cpus_per_task,
        requeue=requeue,
        sbatch_args=sbatch_args,
        tables=tables,
        restrict=restrict,
        limit=limit,
        timezone=timezone,
    )
    script = render(options)
    if dry_run:
        click.echo(script, nl=False)
        problem = password_only_in_environment(workdir)
        if problem is not None:
            click.echo(f"element-session: warning: the tasks would find no password: {problem}", err=True)
        return ExitStatus.OK
    check_password_reaches_tasks(workdir)
    from ._datajoint_compat import declare_jobs_table
    from .cluster.submit import submit
    from .jobs import read_restriction, select_tables

    pipeline = settings.load_pipeline()  # activates the schemas here, before the tasks start together
    selected = select_tables(pipeline, list(tables) or None)
    restriction = read_restriction(_restriction(restrict), selected.values(), timezone)  # times read once, here
    for table in selected.values():
        declare_jobs_table(table)
    job_id, kept = submit(script, options.log_dir)
    click.echo(f"submitted array job {job_id} ({tasks} tasks)")
    click.echo(f"batch script: {kept}; logs: {options.log_dir}/populate-{job_id}_<task>.log", err=True)
    if not wait:
        return ExitStatus.OK
    return _report_array(job_id, tasks, pipeline, tables, restriction)


def _report_array(
    job_id: str, tasks: int, pipeline: ModuleType, tables: tuple[str, ...], restriction: Restriction
) -> ExitStatus:
    """Follow the array to its end (progress on stderr); print each task's state and the failed keys.

    ``restriction`` is read (:func:`~element_session.jobs.read_restriction`): its times are the stored UTC ones.
    """
    from .cluster.wait import follow
    from .formats import key_text

    outcome = follow(
        job_id,
        tasks,
        pipeline,
        tables=list(tables) or None,
        restriction=restriction,
        report=lambda line: click.echo(line, err=True),
    )
    for task in outcome.tasks:
        detail = ", ".join(
            part
            for part in (
                f"exit {task.exit_code}" if task.exit_code else "",
                f"restarted {task.restarts}x" if task.restarts else "",
            )
            if part
        )
        click.echo(f"task {task.task}: {task.state}" + (f" ({detail})" if detail else ""))
    click.echo(f"{outcome.made} key(s) made, {len(outcome.failed)} failed, {len(outcome.reserved)} still reserved")
    for record in outcome.failed:
        click.echo(f"  failed: {record.table} {key_text(record.key)}: {record.error_message}")
    for record in outcome.reserved:
        click.echo(f"  reserved: {record.table} {key_text(record.key)} by {record.host} pid {record.pid}")
    if outcome.failed:
        click.echo("failed keys stay in the jobs table: see `element-session jobs`; clear them with --clear-errors")
    return ExitStatus.OK if outcome.ok else ExitStatus.INVALID


# --------------------------------------------------------------------------- moving sessions between servers


def _selection(subject: tuple[str, ...], status: tuple[str, ...], **options: Any) -> dict[str, Any]:
    return {"subject": list(subject) or None, "status": list(status) or None, **options}


_DOWNSTREAM_HELP = "also the rows of Imported/Computed tables (and parts) that depend on the sessions"
_PROGRESS = click.option(
    "--no-progress", "progress", is_flag=True, flag_value=False, default=True, help="no progress bar"
)


@cli.command("export")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="the bundle to write")
@selection_options
@click.option("--downstream", is_flag=True, help=_DOWNSTREAM_HELP)
@click.option("--overwrite", is_flag=True, help="replace the bundle file if it exists")
@_PROGRESS
@pipeline_option
@click.pass_context
def export_bundle(
    ctx: click.Context,
    output: Path,
    subject: tuple[str, ...],
    downstream: bool,
    overwrite: bool,
    progress: bool,
    **options: Any,
) -> ExitStatus:
    """Write the selected sessions and every row they reference to a bundle file (docs/transfer.md)."""
    from .transfer import export_sessions

    pipeline = _settings(ctx).load_pipeline()
    report = export_sessions(
        output, pipeline.session, pipeline=pipeline, downstream=downstream, overwrite=overwrite,
        progress=_progress(progress), **_selection(subject, **options),
    )  # fmt: skip
    click.echo(report)
    return ExitStatus.OK


@cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE")
@click.option(
    "--dry-run",
    is_flag=True,
    help="check and report what would be written, write no row (activating the pipeline still creates "
    "its missing schemas and empty tables: docs/transfer.md)",
)
@_PROGRESS
@pipeline_option
@click.pass_context
def import_bundle(ctx: click.Context, file: Path, dry_run: bool, progress: bool) -> ExitStatus:
    """Import a bundle: checked first, then every row written in one transaction, or none."""
    from .transfer import Bundle, import_sessions

    bundle = Bundle(file)  # a file that is no bundle is refused before activation creates a schema
    pipeline = _settings(ctx).load_pipeline()
    click.echo(import_sessions(bundle, pipeline, dry_run=dry_run, progress=_progress(progress)))
    return ExitStatus.OK


@cli.command("copy")
@click.option(
    "--to",
    "target",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    metavar="CONFIG",
    help="the target's DataJoint settings file (password: DJ_TARGET_PASS or .secrets/ beside it)",
)
@click.option("--to-prefix", default="", metavar="PREFIX", help="the target's schema prefix  [default: none]")
@selection_options
@click.option("--downstream", is_flag=True, help=_DOWNSTREAM_HELP)
@click.option(
    "--dry-run",
    is_flag=True,
    help="check the import and report what would be written, write no row on the target (activating the "
    "pipeline there still creates its missing schemas and empty tables: docs/transfer.md)",
)
@_PROGRESS
@pipeline_option
@click.pass_context
def copy_bundle(
    ctx: click.Context,
    target: Path,
    to_prefix: str,
    subject: tuple[str, ...],
    downstream: bool,
    dry_run: bool,
    progress: bool,
    **options: Any,
) -> ExitStatus:
    """Copy the selected sessions to another server (export, then import there in one transaction)."""
    from .transfer import copy_sessions

    settings = _settings(ctx)
    pipeline = settings.load_pipeline()
    report = copy_sessions(
        target, to_prefix=to_prefix, pipeline=settings.pipeline_name, session_module=pipeline.session,
        downstream=downstream, dry_run=dry_run, progress=_progress(progress), **_selection(subject, **options),
    )  # fmt: skip
    return ExitStatus(report.status) if report.status in {s.value for s in ExitStatus} else ExitStatus.INVALID


# --------------------------------------------------------------------------- export and migrate


@cli.command("export-nwb")
@click.option("--subject", required=True, help="the session's subject")
@click.option(
    "--datetime", "session_datetime", help="the session's start time, ISO 8601 (with offset, or read in --timezone)"
)
@click.option("--id", "session_id", metavar="N", help="the session's number")
@click.option("--timezone", default="UTC", show_default=True, help="zone of --datetime without an offset")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="the NWB file to write")
@click.option("--overwrite", is_flag=True, help="replace the output file if it exists")
@click.option("--institution", help="institution written in the file")
@click.option("--lab", help="lab written in the file")
@click.option(
    "--strict", is_flag=True, help="refuse a file the DANDI archive would refuse (default: a warning on standard error)"
)
@click.option(
    "--subject-field",
    "subject_fields",
    type=_Assignment(),
    multiple=True,
    metavar="NAME=VALUE",
    help="a field of the file's subject the Subject table lacks, e.g. species='Mus musculus' (repeatable; "
    "date_of_birth is a date or time, read in the session's zone)",
)
@pipeline_option
@click.pass_context
def export_nwb(
    ctx: click.Context,
    subject: str,
    session_datetime: str | None,
    session_id: str | None,
    timezone: str,
    output: Path,
    overwrite: bool,
    institution: str | None,
    lab: str | None,
    strict: bool,
    subject_fields: tuple[tuple[str, str], ...],
) -> ExitStatus:
    """Write one session (subject plus --datetime or --id) to an NWB file.

    Needs pynwb: pip install "element-session[nwb]".
    """
    _one_of_datetime_and_id(ctx, session_datetime, session_id)
    from .export.nwb import check_fields, find_session_key, write_nwb

    fields: dict[str, Any] = dict(subject_fields)
    check_fields(fields, "Subject", "subject_fields")  # checked here to name the option, before connecting
    if "date_of_birth" in fields:  # write_nwb reads it in the session's zone
        from . import times

        times.time_argument("subject_fields", fields["date_of_birth"], bound=True)
    pipeline = _settings(ctx).load_pipeline()
    module = pipeline.session
    key = find_session_key(module, subject, session_datetime=session_datetime, session_id=session_id, timezone=timezone)
    with warnings.catch_warnings():
        warnings.simplefilter("always", DandiWarning)  # each, on standard error in one line (main)
        path = write_nwb(
            key,
            output,
            overwrite=overwrite,
            strict=strict,
            session_module=module,
            linking_module=pipeline,
            institution=institution,
            lab=lab,
            subject_kwargs=fields or None,
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
@format_option("table", "json")
@click.option(
    "--definitions",
    is_flag=True,
    help="also list MySQL-native types in the definitions of the --pipeline module's tables (imports it)",
)
@pipeline_option
@click.pass_context
def doctor(ctx: click.Context, schema: str, form: str, definitions: bool) -> ExitStatus:
    """Report what DataJoint 2.x would mishandle in a legacy database; reads only, exit 1 on hazards."""
    from .upgrade.doctor import definition_findings, diagnose, format_findings, has_hazards

    findings = diagnose(schema, connection=_connection())
    if definitions:
        findings += definition_findings(_settings(ctx).load_pipeline())
    click.echo(format_findings(findings, schema, form))
    return ExitStatus.INVALID if has_hazards(findings) else ExitStatus.OK


def _connection() -> Any:
    """DataJoint's connection, a failure to connect typed (unreachable, refused)."""
    import datajoint as dj

    from ._datajoint_compat import install_connection_rules
    from .database import database_errors

    install_connection_rules()
    with database_errors():
        return dj.conn()


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="port to listen on")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="worker processes")
@click.option(
    "--timezone",
    default=None,
    help="the lab's zone: of a time without an offset where none is given (add form, API, filters)",
)
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
    """Stop the server whose data is in DATADIR (of the backend DATADIR/server.json records); says which.

    Stopping is idempotent: where no server is running it says so and exits 0 all the same.
    """
    from .localdb import LocalServer

    stopped = LocalServer(datadir, backend).stop()
    if stopped is None:
        click.echo(f"no server is running in {datadir}")
    else:
        name = {"mysql": "MySQL/MariaDB", "postgresql": "PostgreSQL"}.get(stopped[0], stopped[0])
        click.echo(f"stopped the {name} server in {datadir} (pid {stopped[1]})")
    return ExitStatus.OK


if __name__ == "__main__":
    run()
