"""Which pipeline module, which of its tables, which session module: one answer for every entry point.

Words, one per role:

- the *pipeline* is the module that activates everything (``workflow.pipeline``): the command
  line's ``--pipeline``, ``populate(pipeline)``, the web interface's served module;
- the *linking module* provides the upstream tables ``Subject``, ``Project`` and ``Experimenter``
  to a session module (``activate(..., linking_module=...)``); in a small pipeline it is the
  pipeline itself;
- a *session module* is one of the two variants, :mod:`element_session.session_with_datetime`
  (``element_session.session``) and :mod:`element_session.session_with_id`.

This module imports neither variant: a variant that is not imported cannot be activated, so the
activated ones are found among the imported modules (:func:`activated_session_modules`). That keeps
the import graph one-way (variants → :mod:`~element_session.linking` → here).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import datajoint as dj

from .database import database_errors
from .errors import ActivationError, PipelineImportError, SessionNotFoundError, UsageError
from .lookups import as_stored, check_lookups

#: The session variant modules, the published default first.
SESSION_MODULES = ("element_session.session_with_datetime", "element_session.session_with_id")


def load(
    pipeline: ModuleType | str, *, role: str = "pipeline module", from_working_directory: bool = False
) -> ModuleType:
    """The module ``pipeline``, imported (which activates its schemas) if given by its import path.

    Parameters
    ----------
    pipeline : module or str
        The module itself, or its dotted import path.
    role : str
        What the module is, as messages name it (``"pipeline module"``, ``"linking module"``).
    from_working_directory : bool
        Find a module in the working directory too, as ``python -m`` does (the command line and the
        web server, started in a pipeline's directory, ask for this).

    Raises
    ------
    PipelineImportError
        The module itself is not found (an ``ImportError`` inside it is raised as it is).
    UsageError
        ``pipeline`` is neither a module nor text.
    DatabaseUnreachableError, PermissionDeniedError
        Activating its schemas failed so (:func:`element_session.database.database_errors`).
    """
    if isinstance(pipeline, ModuleType):
        return pipeline
    if not isinstance(pipeline, str):
        raise UsageError(f"the {role} must be a module or its import path, not {type(pipeline).__name__}")
    if from_working_directory and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        with database_errors():
            return importlib.import_module(pipeline)
    except ModuleNotFoundError as err:
        if err.name and pipeline.startswith(err.name):
            raise PipelineImportError(f"{role} {pipeline!r} cannot be imported: {err}") from None
        raise


# --------------------------------------------------------------------------- tables


def module_tables(module: ModuleType) -> dict[str, type[dj.Table]]:
    """The activated table classes among the names of ``module`` (not of the modules it holds), by name."""
    return {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and issubclass(obj, dj.Table) and getattr(obj, "database", None) is not None
    }


def schema_modules(pipeline: ModuleType) -> dict[str, ModuleType]:
    """The modules ``pipeline`` holds that hold activated tables, by the name the pipeline gives them."""
    return {name: v for name, v in vars(pipeline).items() if isinstance(v, ModuleType) and module_tables(v)}


def label(table: type[dj.Table], module_name: str | None = None) -> str:
    """How a table is named to people: ``<module>.<Class>``, e.g. ``inventory.SessionInventory``.

    ``<module>`` is the name under which the pipeline holds the table's module (``session`` for
    ``from element_session import session_with_datetime as session``), else the last part of the
    module's own name.
    """
    return f"{module_name or table.__module__.rsplit('.', 1)[-1]}.{table.__name__}"


def tables(pipeline: ModuleType | str, *, kinds: tuple[type[dj.Table], ...] = (dj.Table,)) -> dict[str, type[dj.Table]]:
    """The activated tables of ``pipeline`` and of its schema modules that are one of ``kinds``, by label.

    Part tables count too, labelled ``<module>.<Master>.<Part>``; each table is listed once (under the
    first label found: its schema module's). ``kinds=(dj.Imported, dj.Computed)`` gives the tables
    ``populate`` makes.

    Raises
    ------
    PipelineImportError, UsageError
        As :func:`load`, for a pipeline given by its import path.
    """
    module = load(pipeline)
    found: dict[str, tuple[str, type[dj.Table]]] = {}
    for module_name, namespace in [*schema_modules(module).items(), (None, module)]:
        for table in module_tables(namespace).values():
            table_label = label(table, module_name)
            found.setdefault(table.full_table_name, (table_label, table))
            for part in vars(table).values():
                if inspect.isclass(part) and issubclass(part, dj.Part) and getattr(part, "database", None):
                    part_table: Any = part
                    found.setdefault(part_table.full_table_name, (f"{table_label}.{part.__name__}", part_table))
    return {name: table for name, table in found.values() if issubclass(table, kinds)}


def schema_names(pipeline: ModuleType | str) -> list[str]:
    """The names of the database schemas holding the tables of ``pipeline``, sorted."""
    return sorted({table.database for table in tables(pipeline).values()})


# --------------------------------------------------------------------------- session modules


def activated_session_modules() -> list[ModuleType]:
    """The session variant modules activated in this process (none, one or both), the published default first."""
    imported = [sys.modules.get(name) for name in SESSION_MODULES]
    return [m for m in imported if m is not None and m.schema.is_activated()]


def session_module_of(what: Mapping[str, Any] | Any | None = None) -> ModuleType:
    """The activated session variant of a session key, of a query of ``Session``, or by default.

    - a session key (a dict): the variant whose ``Session`` holds it. Downstream code often has a key
      and no module (the published element's functions take the key alone). Where no variant holds
      the key, the first whose primary key the key covers, so that the caller's own lookup reports
      the missing session by table;
    - a query expression: the variant of whose ``Session`` it is a restriction;
    - None: :mod:`element_session.session_with_datetime` where activated (as in the published
      element), else the other.

    Raises
    ------
    ActivationError
        No session variant is activated in this process.
    SessionNotFoundError
        Both variants are activated and both hold the key: pass the session module explicitly.
    UsageError
        A query expression that is not a restriction of an activated ``Session``.
    InputError
        A key value that cannot be looked up (:mod:`element_session.lookups`), naming the attribute.
    """
    active = activated_session_modules()
    if what is not None and not isinstance(what, Mapping):
        for module in active:
            if what.full_table_name == module.Session.full_table_name:
                return module
        raise UsageError("pass session_module= with a query expression that is not a plain restriction of Session")
    if not active:
        raise ActivationError(
            "no session module is activated in this process: call element_session.session.activate(...) "
            "(or session_with_id.activate) first, usually by importing your pipeline module"
        )
    if what is None:
        return active[0]
    covering = [m for m in active if all(name in what for name in m.Session.primary_key)]
    for module in covering:
        check_lookups("arguments", {f"key[{k!r}]": what[k] for k in module.Session.primary_key}, required=True)
    holding = [
        m for m in covering if len(m.Session() & as_stored(m.Session, {k: what[k] for k in m.Session.primary_key}))
    ]
    if len(holding) > 1:
        raise SessionNotFoundError(
            f"session key {dict(what)!r} names a session in both activated session schemas "
            f"({', '.join(m.Session.full_table_name for m in holding)}): pass session_module= to say which"
        )
    return (holding or covering or active)[0]


def linking_module_of(session_module: ModuleType) -> ModuleType | None:
    """The linking module an activated ``session_module`` was activated with (None if not activated)."""
    if not session_module.schema.is_activated() or not session_module.schema.add_objects:
        return None
    return sys.modules.get(session_module.schema.add_objects.get("__name__", ""))


def linking_module_argument(linking_module: ModuleType | None, pipeline: ModuleType | None) -> ModuleType | None:
    """The linking module given as ``linking_module=`` or under its earlier name ``pipeline=`` (one rule for all).

    A pipeline module such as ``workflow.pipeline`` provides the upstream tables too, so the earlier name stays
    accepted without a warning.

    Raises
    ------
    TypeError
        Both are given and name different modules.
    """
    if linking_module is not None and pipeline is not None and linking_module is not pipeline:
        raise TypeError("give the linking module once: linking_module= (or its earlier name pipeline=), not both")
    return linking_module or pipeline
