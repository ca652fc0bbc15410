"""The element-session command: ingest, list, locate, export and upgrade sessions of a pipeline.

Exit status: 0 success; 1 invalid input data (the message names file, row, column and value);
2 wrong usage; 3 the database cannot be reached; 4 the database refused the account's request
(e.g. a read-only account writing); 141 the reader of the output went away (`| head`).
Standard output carries only the command's own output; DataJoint's messages go to standard error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from . import formats, migrate, paths, populate, query
from . import ingest as ingest_module
from .database import database_errors
from .errors import DatabaseUnreachableError, ElementSessionError, PermissionDeniedError
from .export.nwb import add_export_parser

OK, INVALID, USAGE, UNREACHABLE, DENIED = 0, 1, 2, 3, 4
BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a writer whose reader went away


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--pipeline", default="workflow.pipeline", help="pipeline module to work on (default: workflow.pipeline)"
    )
    parser = argparse.ArgumentParser(prog="element-session", description=__doc__.split("\n")[0], parents=[common])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("ingest", parents=[common], help="ingest subjects, experimenters, projects or sessions")
    p.add_argument("kind", choices=ingest_module.KINDS)
    p.add_argument("files", nargs="+", metavar="FILE", help="CSV, YAML or JSON files, ingested in one transaction")
    p.add_argument("--timezone", default="UTC", help="IANA zone of session times without an offset (default UTC)")
    p.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
    p.set_defaults(run=run_ingest)

    p = commands.add_parser("sessions", parents=[common], help="list sessions")
    p.add_argument("--subject", action="append", help="a subject (repeat for several)")
    p.add_argument("--project")
    p.add_argument("--experimenter")
    p.add_argument("--since", help="start time or date, included")
    p.add_argument("--until", help="start time or date, excluded")
    p.add_argument("--timezone", default="UTC", help="zone of --since/--until without an offset (default UTC)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(run=run_sessions)

    p = commands.add_parser("dirs", parents=[common], help="sessions and their resolved raw-data directories")
    p.add_argument("--missing", action="store_true", help="only sessions whose directory is found under no root")
    p.set_defaults(run=run_dirs)

    populate.add_populate_parser(commands, parents=[common])
    populate.add_jobs_parser(commands, parents=[common])
    add_export_parser(commands, parents=[common])  # pynwb itself is imported only when a file is written

    p = migrate.add_migrate_parser(commands)
    p.set_defaults(run=lambda args, _pipeline: migrate.run_migrate(args), without_pipeline=True)
    return parser


def _datajoint_messages_to_stderr() -> None:
    for handler in logging.getLogger("datajoint").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


def load_pipeline(name: str) -> ModuleType:
    """Import the pipeline module (which activates its schemas); database failures are typed."""
    try:
        with database_errors():
            return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and name.startswith(err.name):
            raise ElementSessionError(f"pipeline module {name!r} cannot be imported: {err}") from None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv``; its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _datajoint_messages_to_stderr()
    try:
        with database_errors():
            # migrate works on a schema by name: loading the pipeline would activate (declare) its schemas
            pipeline = None if getattr(args, "without_pipeline", False) else load_pipeline(args.pipeline)
            _datajoint_messages_to_stderr()
            return args.run(args, pipeline)
    except DatabaseUnreachableError as err:
        print(f"element-session: {err}", file=sys.stderr)
        return UNREACHABLE
    except PermissionDeniedError as err:
        print(f"element-session: {err}", file=sys.stderr)
        return DENIED
    except ElementSessionError as err:
        print(f"element-session: {err}", file=sys.stderr)
        return INVALID
    except BrokenPipeError:  # the reader of the output went away (`| head`); Python's docs recipe:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit fails no more
        return BROKEN_PIPE


def run_ingest(args: argparse.Namespace, pipeline: ModuleType) -> int:
    report = ingest_module.ingest(
        args.kind, args.files, pipeline=pipeline, timezone=args.timezone, dry_run=args.dry_run
    )
    print(report)
    return OK


def _session_frame(args: argparse.Namespace, pipeline: ModuleType):
    found = query.find_sessions(
        pipeline.session,
        subject=args.subject,
        project=args.project,
        experimenter=args.experimenter,
        since=args.since,
        until=args.until,
        timezone=args.timezone,
    )
    return query.session_table(found, pipeline.session)


def run_sessions(args: argparse.Namespace, pipeline: ModuleType) -> int:
    frame = _session_frame(args, pipeline)
    if args.format == "json":
        json.dump(formats.session_records(frame, pipeline.session.Session), sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    elif args.format == "csv":
        formats.write_sessions_csv(frame, pipeline.session.Session, sys.stdout)
    else:
        print(formats.sessions_text(frame))
    return OK


def run_dirs(args: argparse.Namespace, pipeline: ModuleType) -> int:
    module = pipeline.session
    keys = list(module.Session.primary_key)
    roots = paths.get_root_dirs()
    rows = []
    for row in (module.SessionDirectory()).to_dicts():
        try:
            found = str(paths.find_full_path(roots, row["session_dir"]))
        except FileNotFoundError:
            found = None
        if found is None or not args.missing:
            rows.append([*(str(row[k]) for k in keys), row["session_dir"], found or "MISSING"])
    if not rows:
        print("no sessions" if not args.missing else "no missing directories")
        return OK
    widths = [max(len(str(r[i])) for r in [[*keys, "session_dir", "directory"], *rows]) for i in range(len(rows[0]))]
    for line in [[*keys, "session_dir", "directory"], *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return OK


if __name__ == "__main__":
    raise SystemExit(main())
