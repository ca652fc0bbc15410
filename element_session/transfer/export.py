"""Export: the selected sessions, every row they consist of and every row they reference, as a bundle.

The rows travel in the order of the pipeline's dependencies (a referenced row before the rows
referring to it), so that an import can write them in the order they come.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import datajoint as dj

from .. import __version__
from .._datajoint_compat import read_snapshot
from ..database import database_errors
from ..errors import OutputExistsError, SessionNotFoundError, UsageError
from ..pipeline import linking_module_of, session_module_of
from ..progress import progress_bar
from ..query import find_sessions
from .bundle import Manifest, TableEntry, encode_table, now_text, table_of, write_bundle
from .rows import columns_of, read_columns, tables_by_role, tier_of

#: The options of :func:`export_sessions` that select sessions (``find_sessions``' meaning).
SELECTION = ("subject", "project", "experimenter", "since", "until", "timezone", "status", "search")


@dataclass
class ExportReport:
    """What an export wrote: the bundle's path and the rows of each table, by role."""

    path: Path
    rows: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"{role}: {n} row(s)" for role, n in self.rows.items()]
        return "\n".join(
            [*lines, f"exported {sum(self.rows.values())} row(s) of {len(self.rows)} table(s) to {self.path}"]
        )


@dataclass
class _Chosen:
    """A table of the bundle: its role, the table, and the query of the rows that travel."""

    role: str
    table: Any
    query: Any


def _is_table_node(name: str) -> bool:
    """Whether a node of DataJoint's dependency graph is a table (not the alias of a renamed foreign key)."""
    return not name.isdigit()


def _upstream(chosen: dict[str, _Chosen], labels: dict[str, tuple[str, Any]], connection: Any) -> None:
    """Add to ``chosen`` every table its tables reference, recursively, restricted to the rows referenced."""
    graph = connection.dependencies
    ancestors = {a for name in list(chosen) for a in graph.ancestors(name) if _is_table_node(a)} - set(chosen)
    for name in reversed([n for n in graph.topo_sort() if n in ancestors]):  # the nearest first
        role, table = labels.get(name) or (name.replace("`", "").replace('"', ""), dj.FreeTable(connection, name))
        references = [
            chosen[child].query.proj(**{parent: mine for mine, parent in props["attr_map"].items() if mine != parent})
            for child, props in graph.children(name)
            if child in chosen
        ]
        chosen[name] = _Chosen(role, table, table & references)


def select_rows(session_module: ModuleType, pipeline: ModuleType, sessions: Any, *, downstream: bool) -> list[_Chosen]:
    """The tables of a bundle of ``sessions`` (a query of ``Session``) in dependency order, with their rows' queries.

    The session module's tables restricted to the sessions; with ``downstream``, every Imported or
    Computed table of ``pipeline`` (and its parts) that depends on ``Session``, restricted so; then
    every table these reference, restricted to the rows referenced.
    """
    labels = {t.full_table_name: (role, t) for role, t in tables_by_role(pipeline, session_module).items()}
    connection = session_module.Session.connection
    graph = connection.dependencies
    graph.load(force=True)
    session = session_module.Session.full_table_name
    keys = sessions.proj()
    chosen: dict[str, _Chosen] = {}
    for name, (role, table) in labels.items():
        in_module = table.database == session_module.schema.database
        made = downstream and tier_of(table) in ("imported", "computed", "part") and session in graph.ancestors(name)
        if name == session:
            chosen[name] = _Chosen(role, table, sessions)
        elif in_module or made:
            chosen[name] = _Chosen(role, table, table & keys)
    _upstream(chosen, labels, connection)
    order = {name: i for i, name in enumerate(graph.topo_sort())}
    return [chosen[name] for name in sorted(chosen, key=lambda n: order.get(n, len(order)))]


def _as_text(value: Any) -> str | list[str]:
    """A selection value as the manifest records it: text, or a list of texts."""
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return value if isinstance(value, str) else str(value)


def _selection_text(given: dict[str, Any]) -> str:
    """The selection as a message names it: ``subject=m1,m2 status=planned`` (the zone only with a window)."""
    window = {"since", "until"} & set(given)
    shown = {k: v for k, v in given.items() if k != "timezone" or window}
    return " ".join(
        f"{k}={(','.join(map(str, v)) or '(an empty list)') if isinstance(v, list | tuple) else v}"
        for k, v in shown.items()
    )


def export_sessions(
    path: str | os.PathLike,
    session_module: ModuleType | None = None,
    *,
    pipeline: ModuleType | None = None,
    downstream: bool = False,
    overwrite: bool = False,
    progress: bool | None = False,
    **selection: Any,
) -> ExportReport:
    """Write the selected sessions, what they reference and (``downstream``) what depends on them to a bundle.

    Every table is read in one read-only ``REPEATABLE READ`` transaction (one snapshot): a session
    that another client commits while the export reads is in every table of the bundle or in none.

    Parameters
    ----------
    path : the bundle file to write (put there when complete; never left half-written).
    session_module : the activated session module (default: the one activated, see
        :func:`element_session.pipeline.session_module_of`).
    pipeline : the module whose tables name the roles and hold the downstream tables (default: the
        session module's linking module).
    downstream : also the rows of every activated Imported/Computed table (and its parts) that depend
        on the selected sessions.
    overwrite : replace ``path`` where it exists (otherwise an :class:`OutputExistsError`, said before any row is read).
    progress : show a progress bar on standard error (None: only where it is a terminal).
    **selection : ``subject``, ``project``, ``experimenter``, ``since``, ``until``, ``timezone``, as
        :func:`element_session.query.find_sessions` reads them; none: every session.

    Returns
    -------
    ExportReport
        The path and the rows written per table.

    Raises
    ------
    SessionNotFoundError
        No session matches the selection: nothing is written.
    OutputExistsError
        ``path`` exists and ``overwrite`` is false (also when another export puts it there meanwhile).
    UsageError
        An unknown selection option, no pipeline module to name the tables, or no directory to write ``path`` in.
    InputError
        A selection value that cannot be used (source ``arguments``).
    FormatError
        A stored value Parquet cannot hold.
    DatabaseUnreachableError, PermissionDeniedError
        The source's server cannot be reached or refuses to be read.
    """
    folder = Path(path).parent
    if not folder.is_dir():  # said before any row is read
        raise UsageError(f"cannot write {path}: directory {folder} does not exist")
    if Path(path).exists() and not overwrite:
        raise OutputExistsError(path)
    unknown = set(selection) - set(SELECTION)
    if unknown:
        raise UsageError(
            f"export_sessions() does not select by {', '.join(sorted(unknown))}; it selects by {', '.join(SELECTION)}"
        )
    module = session_module or session_module_of()
    pipeline = pipeline or linking_module_of(module)
    if pipeline is None:
        raise UsageError("the session module is not activated with a linking module: pass pipeline=")
    given = {k: v for k, v in selection.items() if v is not None}  # an empty list selects nothing, as in find_sessions
    connection = module.Session.connection
    with database_errors(), read_snapshot(connection):  # no session without the parts committed meanwhile
        sessions = find_sessions(module, **given)
        manifest = Manifest(
            product_version=__version__,
            source_backend=connection.adapter.backend,
            created=now_text(),
            account=connection.get_user(),
            selection={k: _as_text(v) for k, v in given.items()},
            downstream=downstream,
        )
        report = ExportReport(Path(path))
        files = []
        rows_of = select_rows(module, pipeline, sessions, downstream=downstream)
        for item in progress_bar(rows_of, shown=progress, desc="export", unit="table"):
            columns = columns_of(item.table)
            definition = item.table.describe() if hasattr(item.table, "describe") else ""
            entry = TableEntry(item.role, tier_of(item.table), definition, columns)
            rows = table_of(entry, read_columns(item.query, [c.name for c in columns]))
            entry.rows = report.rows[item.role] = rows.num_rows
            if item.query is sessions and not rows.num_rows:  # said before anything is written
                raise SessionNotFoundError(
                    f"no session matches {_selection_text(given) or 'the selection (every session)'}: "
                    "nothing to export, no bundle written"
                )
            manifest.tables.append(entry)
            files.append((entry, encode_table(rows)))
    write_bundle(path, manifest, files, overwrite)
    return report
