"""NWB export of one session: a ``pynwb.NWBFile`` with the session's metadata, and the file on disk.

pynwb is an optional dependency (``pip install "element-session[nwb]"``); it is imported only when
an export is made, and its absence is a :class:`NwbUnavailableError`.

Where each part of a session goes in the file:

- ``session_start_time``: the stored instant (``session_datetime``, UTC), expressed in the
  session's own zone (``SessionTimezone``; UTC where none is recorded). A session without a start
  time (possible in the id variant) cannot be exported: NWB requires one.
- ``identifier``: a UUID5 of the schema, the table and the primary key (see
  :func:`nwb_identifier`): exporting a session again gives the same identifier.
- ``session_id``: ``session_id`` as text where set (the key in the id variant).
- ``session_description``: subject, local start time and projects, in one sentence.
- ``experimenter``: the full name of each ``SessionExperimenter`` (an attribute of the
  ``Experimenter`` table whose name ends in ``fullname``, such as ``user_fullname``), else the key.
- ``notes``: the ``SessionNote``.
- ``keywords``: the names of the session's projects; ``experiment_description``: the projects with
  their descriptions.
- ``subject``: a ``pynwb.file.Subject`` from the linking module's ``Subject`` row (see
  :func:`subject_arguments`).
- ``acquisition["session_attributes"]``: the ``Session.Attribute`` rows as a ``DynamicTable``
  with the text columns ``attribute_name``, ``attribute_value`` and ``attribute_blob`` (the object
  value as JSON text in the form of :mod:`element_session.blob_json`, ``''`` where there is none).
  NWB has no core place for free key/value session metadata other than an extension
  (``LabMetaData``); a table of the core ``hdmf-common`` type keeps the rows readable by any NWB
  reader, and ``scratch`` is meant for data not to be shared.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .. import blob_json, times
from ..attribute_blobs import Unreadable, read_attribute_blobs
from ..errors import (
    DandiWarning,
    FormatError,
    InputProblem,
    NwbExportError,
    NwbUnavailableError,
    OutputExistsError,
    SessionNotFoundError,
    one_problem,
    raise_if_problems,
)
from ..formats import key_text
from ..pipeline import linking_module_argument, linking_module_of, session_module_of
from ..query import session_key_of_subject
from ..tables import other_key
from . import dandi

if TYPE_CHECKING:
    import pynwb

#: Namespace of the UUID5 identifiers of exported sessions.
IDENTIFIER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "element-session:nwb-export")
ATTRIBUTES_TABLE = "session_attributes"
NWB_SEX = {"m": "M", "male": "M", "f": "F", "female": "F", "o": "O", "other": "O", "u": "U", "unknown": "U"}
#: Subject attributes read into ``pynwb.file.Subject``, each by the names it may have in a Subject table.
SUBJECT_ATTRIBUTES = {
    "sex": ("sex", "subject_sex"),
    "date_of_birth": ("subject_birth_date", "date_of_birth", "birth_date", "subject_date_of_birth"),
    "description": ("subject_description", "description"),
    "species": ("species", "subject_species"),
    "strain": ("strain", "subject_strain"),
    "genotype": ("genotype", "subject_genotype"),
    "age": ("age", "subject_age"),
    "weight": ("weight", "subject_weight"),
}
NICKNAMES = ("subject_nickname", "nickname")


def _pynwb() -> ModuleType:
    try:
        import pynwb
    except ImportError as err:
        raise NwbUnavailableError(
            f"NWB export needs pynwb, which cannot be imported ({err}): "
            'install it with `pip install "element-session[nwb]"`'
        ) from err
    return pynwb


def check_fields(fields: Mapping[str, Any], kind: str, argument: str) -> None:
    """Check that pynwb's ``kind`` (``"Subject"`` or ``"NWBFile"``) takes every key of ``fields``.

    The fields it takes are read from pynwb (its docval), so that they follow the installed version.
    ``argument`` names where the fields came from in the message (``subject_kwargs``; the command
    line's ``subject_fields`` is shown as ``--subject-field``).

    Raises
    ------
    NwbUnavailableError
        pynwb is not installed.
    InputError
        In the arguments (``argument``): a key that is not a field of ``kind``, with the fields it takes.
    """
    from hdmf.utils import get_docval

    pynwb = _pynwb()
    taken = [a["name"] for a in get_docval((pynwb.file.Subject if kind == "Subject" else pynwb.NWBFile).__init__)]
    reason = f"not a field of NWB's {kind}, which takes: {', '.join(taken)}"
    raise_if_problems([InputProblem("arguments", None, argument, k, reason) for k in fields if k not in taken])


# -- the session and its rows -----------------------------------------------------------------------------------
def _session_row(session_module: ModuleType, session_key: Mapping[str, Any]) -> dict[str, Any]:
    """The one ``Session`` row of ``session_key`` (its primary-key attributes; others are ignored)."""
    session = session_module.Session
    if session.database is None:
        raise NwbExportError(f"{session_module.__name__} is not activated: call its activate() first")
    if not isinstance(session_key, Mapping):
        raise one_problem("arguments", "session_key", session_key, f"expected a dict of {session.primary_key}")
    missing = [k for k in session.primary_key if session_key.get(k) is None]
    if missing:
        raise one_problem(
            "arguments", "session_key", dict(session_key), f"missing primary-key attribute(s) {missing} of Session"
        )
    key = {k: session_key[k] for k in session.primary_key}
    if "session_datetime" in key:
        key["session_datetime"] = times.time_argument("session_datetime", key["session_datetime"])
    rows = (session & key).to_dicts()
    if not rows:
        raise SessionNotFoundError(f"no session {key_text(key)} in schema {session.database}")
    return rows[0]


#: The lookup of a session by subject and start time or number, now in :mod:`element_session.query` (the old name,
#: documented in ``docs/times.md``, is kept).
find_session_key = session_key_of_subject


def _upstream(session_module: ModuleType, linking_module: ModuleType | None, name: str, link: Any) -> Any:
    """The upstream table ``name``: the linking module's if given, else the parent of ``link`` that is not Session."""
    if linking_module is not None:
        table = getattr(linking_module, name, None)
        if table is None:
            raise NwbExportError(f"linking module {linking_module.__name__!r} has no `{name}` table")
        return table()
    session_name = session_module.Session.full_table_name
    parents = [p for p in link.parents(as_objects=True) if p.full_table_name != session_name]
    if len(parents) != 1:
        raise NwbExportError(
            f"cannot tell the `{name}` table from the parents of {link.full_table_name}: pass linking_module="
        )
    return parents[0]


def _first_attribute(table: Any, matches: Any) -> str | None:
    return next((a for a in table.heading.secondary_attributes if matches(a.lower().replace("_", ""))), None)


def _experimenters(m: ModuleType, linking_module: ModuleType | None, key: dict) -> list[str]:
    link = m.SessionExperimenter
    people = _upstream(m, linking_module, "Experimenter", link)
    name = other_key(link, m.Session)
    full = _first_attribute(people, lambda a: a.endswith("fullname"))
    rows = (people & (link & key)).to_dicts()
    return [(row[full] if full and row[full] else str(row[name])) for row in sorted(rows, key=lambda r: r[name])]


def _projects(m: ModuleType, linking_module: ModuleType | None, key: dict) -> list[tuple[str, str]]:
    link = m.ProjectSession
    projects = _upstream(m, linking_module, "Project", link)
    name = other_key(link, m.Session)
    described = _first_attribute(projects, lambda a: "description" in a)
    rows = (projects & (link & key)).to_dicts()
    return [(str(r[name]), (r[described] or "") if described else "") for r in sorted(rows, key=lambda r: r[name])]


def _subject_table(m: ModuleType, linking_module: ModuleType | None) -> Any:
    if linking_module is not None:
        return _upstream(m, linking_module, "Subject", m.Session)
    parents = m.Session.parents(as_objects=True)
    if len(parents) != 1:
        raise NwbExportError(f"cannot tell the Subject table from the parents of {m.Session.full_table_name}")
    return parents[0]


def _json_value(value: Any) -> Any:
    """A JSON-able form of a primary-key value (text, number, date or time) for :func:`nwb_identifier`.

    Kept as it was when identifiers were first made, so that a session's identifier never changes.
    """
    if hasattr(value, "tolist"):  # numpy integers
        return value.tolist()
    if isinstance(value, dt.date):  # and datetimes
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return repr(value)


# -- the NWB objects --------------------------------------------------------------------------------------------
def nwb_identifier(session: Any, key: Mapping[str, Any]) -> str:
    """The NWB identifier of a session: UUID5 (namespace :data:`IDENTIFIER_NAMESPACE`) of the JSON text
    ``{"key": {...}, "table": "<schema>.<table>"}`` (sorted keys, start time as naive-UTC ISO text).

    The same session in the same schema always gets the same identifier, on either backend.
    """
    table = f"{session.database}.{session.table_name}"
    named = {k: key[k] for k in session.primary_key}
    text = json.dumps({"key": named, "table": table}, default=_json_value, sort_keys=True)
    return str(uuid.uuid5(IDENTIFIER_NAMESPACE, text))


def subject_arguments(row: Mapping[str, Any], key: Sequence[str], zone: str | None) -> dict[str, Any]:
    """Arguments of ``pynwb.file.Subject`` from one row of a Subject table.

    ``subject_id`` is the key (attributes joined by ``_`` if several). Attributes are found by the
    names in :data:`SUBJECT_ATTRIBUTES`; empty values are left out. ``sex`` maps to NWB's ``M``,
    ``F``, ``O`` or ``U`` (unrecognised values are ``U``). A birth date (or ISO 8601 date text)
    becomes midnight of that day in the session's zone (``zone``; UTC where none); a birth datetime
    is read as UTC, like session times. A nickname is added to the description.
    """
    found: dict[str, Any] = {"subject_id": "_".join(str(row[k]) for k in key)}
    for argument, names in SUBJECT_ATTRIBUTES.items():
        value = next((row[n] for n in names if row.get(n) not in (None, "")), None)
        if value is None:
            continue
        if argument == "sex":
            value = NWB_SEX.get(str(value).strip().lower(), "U")
        elif argument == "date_of_birth":
            if isinstance(value, str):
                try:
                    value = dt.date.fromisoformat(value.strip())
                except ValueError:
                    continue  # not a date: left out rather than guessed
            if isinstance(value, dt.datetime):
                value = times.local_time(value.replace(tzinfo=None), zone)
            elif isinstance(value, dt.date):
                value = dt.datetime(value.year, value.month, value.day, tzinfo=times.zone_info(zone or "UTC"))
            else:
                continue
        elif argument == "weight":
            value = value if isinstance(value, int | float | str) else str(value)
        else:
            value = str(value)
        found[argument] = value
    nickname = next((row[n] for n in NICKNAMES if row.get(n)), None)
    if nickname:
        described = found.get("description")
        found["description"] = f"{described} (nickname: {nickname})" if described else f"nickname: {nickname}"
    return found


def _attributes_table(m: ModuleType, key: dict) -> Any:
    from pynwb.core import DynamicTable

    rows = sorted((m.Session.Attribute & key).proj("attribute_value").to_dicts(), key=lambda r: r["attribute_name"])
    if not rows:
        return None
    blobs = next(iter(read_attribute_blobs(m.Session & key, m).values()), {})
    table = DynamicTable(
        name=ATTRIBUTES_TABLE,
        description="Session.Attribute rows of this session: name, value as text, and the object value as JSON "
        "text in element-session's form (element_session.blob_json; '' where there is none)",
    )
    table.add_column("attribute_name", "name of the attribute")
    table.add_column("attribute_value", "value of the attribute as text")
    table.add_column("attribute_blob", "object value of the attribute as JSON text (element_session.blob_json)")
    for r in rows:
        name = r["attribute_name"]
        table.add_row(
            attribute_name=name, attribute_value=r["attribute_value"] or "", attribute_blob=_blob_text(key, name, blobs)
        )
    return table


def _blob_text(key: dict, name: str, blobs: dict[str, Any]) -> str:
    """The JSON text of one attribute's object value ('' where none); FormatError naming session and attribute."""
    if name not in blobs:
        return ""
    value = blobs[name]
    try:
        if isinstance(value, Unreadable):
            raise FormatError(value.reason)
        return blob_json.dumps(value)
    except FormatError as err:
        raise FormatError(
            f"session {key_text(key)}, attribute {name!r}: its object value cannot be exported: {err}"
        ) from None


def session_to_nwb(
    session_key: Mapping[str, Any],
    lab_key: Mapping[str, Any] | None = None,
    project_key: Mapping[str, Any] | None = None,
    protocol_key: Mapping[str, Any] | None = None,
    additional_nwbfile_kwargs: Mapping[str, Any] | None = None,
    *,
    session_module: ModuleType | None = None,
    linking_module: ModuleType | None = None,
    pipeline: ModuleType | None = None,
    institution: str | None = None,
    lab: str | None = None,
    subject_kwargs: Mapping[str, Any] | None = None,
    **nwbfile_kwargs: Any,
) -> pynwb.NWBFile:
    """An in-memory ``pynwb.NWBFile`` of one session (what goes where: see the module's docstring).

    Called as the published element defines it — ``session_to_nwb(session_key, lab_key=None,
    project_key=None, protocol_key=None, additional_nwbfile_kwargs=None)``, often with the key alone,
    as element-array-ephys's ``ecephys_session_to_nwb`` and element-calcium-imaging's
    ``imaging_session_to_nwb`` do through their linking module — or with this project's keywords.

    Parameters
    ----------
    session_key : dict
        The session's primary key (other attributes are ignored). A start time in the key may be a
        naive (UTC) or aware datetime, or ISO 8601 text (``docs/times.md``; without an offset: UTC,
        as stored).
    lab_key, project_key, protocol_key : dict, optional
        Keys of the linking module's ``Lab``, ``Project`` and ``Protocol`` rows. With the linking
        module's ``element_lab_to_nwb_dict`` (element-lab), its answer is used; otherwise the tables
        are read: ``Lab`` gives ``institution`` (``Organization.org_name`` through ``Lab.Organization``
        where that part exists, else ``Lab.institution``) and ``lab`` (``lab_name``); ``Project`` gives
        ``experiment_description`` (``project_description``), ``ProjectKeywords`` the ``keywords`` and
        ``ProjectPublication`` the ``related_publications``; ``Protocol`` gives ``protocol`` (its key)
        and, for a session without a note, ``notes`` (``protocol_description``).
    additional_nwbfile_kwargs : dict, optional
        ``pynwb.NWBFile`` arguments that replace or add to those made here (published name of
        ``nwbfile_kwargs``).
    session_module : module, optional
        The activated session module; by default the activated variant whose ``Session`` holds the key.
    linking_module : module, optional
        The linking module whose tables and functions to read; by default the one the session module
        was activated with. Its ``subject_to_nwb(session_key)`` (element-animal) makes the subject
        where it provides one; otherwise the subject comes from ``Subject`` (see :func:`subject_arguments`).
    pipeline : module, optional
        The earlier name of ``linking_module`` (accepted without a warning); not both (``TypeError``).
    institution, lab : str, optional
        Written as the file's institution and lab (they override ``lab_key``'s).
    subject_kwargs : dict, optional
        ``pynwb.file.Subject`` arguments added to, or replacing, those read from the Subject table
        (e.g. ``{"species": "Mus musculus"}``, which DANDI requires). A ``date_of_birth`` given as a
        date or ISO 8601 text is read as every time from a person is, in the session's zone (a date
        alone: its midnight there, as a birth date column); text that is not a time is an ``InputError``.
    nwbfile_kwargs
        Further ``pynwb.NWBFile`` arguments, as ``additional_nwbfile_kwargs``.

    Time zones: ``session_start_time`` is always the stored instant (UTC) expressed in the session's
    own zone (``SessionTimezone``, else UTC); it cannot be overridden, so that no export shifts a
    session in time (the published element read stored times as the exporting machine's local time).

    Raises
    ------
    NwbUnavailableError
        pynwb is not installed.
    SessionNotFoundError
        No session has the key, or both activated variants hold it (pass ``session_module``).
    ActivationError
        No session module is activated.
    InputError
        In the arguments: a key of ``subject_kwargs`` that is not a field of ``pynwb.file.Subject``, or one of
        ``additional_nwbfile_kwargs`` or ``nwbfile_kwargs`` that is not a field of ``pynwb.NWBFile``
        (:func:`check_fields`); a ``date_of_birth`` that is not a time; a session key that is not one.
    NwbExportError
        Both ``linking_module`` and ``pipeline`` are given, the session has no start time,
        ``session_start_time`` is given, a key names no or several
        lab/project/protocol rows, the linking module lacks the table a key needs, or pynwb rejects
        the arguments' values.
    FormatError
        An attribute's object value cannot be read or written losslessly (names the session and the
        attribute; see :mod:`element_session.blob_json`).
    """
    pynwb = _pynwb()
    extra = {**(additional_nwbfile_kwargs or {}), **nwbfile_kwargs}
    if "session_start_time" in extra:
        raise NwbExportError("session_start_time cannot be given: it is the session's stored session_datetime")
    check_fields(subject_kwargs or {}, "Subject", "subject_kwargs")
    check_fields(additional_nwbfile_kwargs or {}, "NWBFile", "additional_nwbfile_kwargs")
    check_fields(nwbfile_kwargs, "NWBFile", "nwbfile_kwargs")
    if not isinstance(session_key, Mapping):
        raise one_problem("arguments", "session_key", session_key, "expected a dict of the session's primary key")
    given = linking_module_argument(linking_module, pipeline)
    m = session_module if session_module is not None else session_module_of(session_key)
    linking = given if given is not None else linking_module_of(m)
    row = _session_row(m, session_key)
    key = {k: row[k] for k in m.Session.primary_key}
    if row["session_datetime"] is None:
        raise NwbExportError(
            f"session {key_text(key)} has no session_datetime, and NWB requires a session_start_time: "
            f"set the session's start time in {m.Session.full_table_name} before exporting it"
        )
    zone_rows = (m.SessionTimezone & key).to_dicts()
    zone = zone_rows[0]["session_timezone"] if zone_rows else None
    start = times.local_time(row["session_datetime"], zone)
    note_rows = (m.SessionNote & key).to_dicts()
    projects = _projects(m, given, key)

    subjects = _subject_table(m, given)
    subject_key = list(subjects.primary_key)
    (subject_row,) = (subjects & {k: row[k] for k in subject_key}).to_dicts()
    subject_id = "_".join(str(row[k]) for k in subject_key)

    session_number = row.get("session_id")
    description = f"Session of subject {subject_id} started {start.isoformat()} ({zone or 'UTC'})"
    if session_number is not None:
        description += f", session {session_number}"
    if projects:
        description += f"; projects: {', '.join(name for name, _ in projects)}"
    arguments: dict[str, Any] = {
        "session_description": description + ".",
        "identifier": nwb_identifier(m.Session, key),
        "session_start_time": start,
        "session_id": None if session_number is None else str(session_number),
        "experimenter": _experimenters(m, given, key) or None,
        "notes": note_rows[0]["session_note"] if note_rows else None,
        "keywords": [name for name, _ in projects] or None,
        "experiment_description": "; ".join(f"{n}: {d}" if d else n for n, d in projects) or None,
    }
    lab_arguments = _lab_arguments(linking, lab_key, project_key, protocol_key)
    if arguments["notes"] is not None:
        lab_arguments.pop("notes", None)  # the session's own note comes first
    arguments.update({k: v for k, v in lab_arguments.items() if v is not None})
    arguments.update({k: v for k, v in (("institution", institution), ("lab", lab)) if v is not None})
    subject_to_nwb = getattr(linking, "subject_to_nwb", None)
    fields = dict(subject_kwargs or {})
    born = fields.get("date_of_birth")
    if isinstance(born, str | dt.date) and not isinstance(born, dt.datetime):  # pynwb takes only a datetime
        try:
            instant = times.read_time(born, zone or "UTC", dates=True)
        except times.TimeError as err:
            raise one_problem("arguments", "subject_kwargs['date_of_birth']", born, str(err)) from None
        fields["date_of_birth"] = times.local_time(instant.utc, instant.zone).astimezone(dt.UTC)
    try:
        if callable(subject_to_nwb) and not subject_kwargs:
            arguments["subject"] = subject_to_nwb(key)
        else:
            arguments["subject"] = pynwb.file.Subject(**{**subject_arguments(subject_row, subject_key, zone), **fields})
        arguments.update(extra)
        nwbfile = pynwb.NWBFile(**{k: v for k, v in arguments.items() if v is not None})
    except (TypeError, ValueError) as err:
        raise NwbExportError(f"pynwb rejected the arguments of session {key_text(key)}: {err}") from None
    attributes = _attributes_table(m, key)
    if attributes is not None:
        nwbfile.add_acquisition(attributes)
    return nwbfile


def _one_row(linking: ModuleType | None, name: str, key: Mapping[str, Any], argument: str) -> dict[str, Any]:
    """The one row of the linking module's table ``name`` that ``key`` names."""
    table = getattr(linking, name, None)
    if table is None:
        where = f"linking module {linking.__name__!r}" if linking is not None else "no linking module"
        raise NwbExportError(f"{argument} was given, but {where} has no `{name}` table (nor element_lab_to_nwb_dict)")
    rows = (table() & dict(key)).to_dicts()
    if len(rows) != 1:
        raise NwbExportError(f"{argument} {dict(key)!r} names {len(rows)} rows of {table.full_table_name}, not one")
    return rows[0]


def _lab_arguments(
    linking: ModuleType | None,
    lab_key: Mapping[str, Any] | None,
    project_key: Mapping[str, Any] | None,
    protocol_key: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """NWBFile arguments from the lab, project and protocol keys (see :func:`session_to_nwb`)."""
    if not any((lab_key, project_key, protocol_key)):
        return {}
    from_element_lab = getattr(linking, "element_lab_to_nwb_dict", None)
    if callable(from_element_lab):
        return dict(from_element_lab(lab_key=lab_key, project_key=project_key, protocol_key=protocol_key))
    arguments: dict[str, Any] = {}
    if lab_key:
        row = _one_row(linking, "Lab", lab_key, "lab_key")
        assert linking is not None  # _one_row found its Lab table
        arguments["lab"] = row.get("lab_name") or next(str(row[k]) for k in linking.Lab.primary_key)
        arguments["institution"] = row.get("institution")
        organization = getattr(linking.Lab, "Organization", None)
        if organization is not None and getattr(linking, "Organization", None) is not None:
            names = (linking.Organization() & (organization() & dict(lab_key))).to_dicts()
            arguments["institution"] = names[0].get("org_name") if names else arguments["institution"]
    if project_key:
        row = _one_row(linking, "Project", project_key, "project_key")
        arguments["experiment_description"] = row.get("project_description") or row.get("project_title")
        for table, column, argument in (
            ("ProjectKeywords", "keyword", "keywords"),
            ("ProjectPublication", "publication", "related_publications"),
        ):
            if getattr(linking, table, None) is not None:
                values = sorted(r[column] for r in (getattr(linking, table)() & dict(project_key)).to_dicts())
                arguments[argument] = values or None
    if protocol_key:
        row = _one_row(linking, "Protocol", protocol_key, "protocol_key")
        arguments["protocol"] = str(row.get("protocol") or next(iter(dict(protocol_key).values())))
        arguments["notes"] = row.get("protocol_description")
    return arguments


def write_nwb(
    session_key: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    strict: bool = False,
    **kwargs: Any,
) -> Path:
    """Write one session to the NWB file ``path`` (``kwargs`` as for :func:`session_to_nwb`); the path.

    An existing file is an error unless ``overwrite``. The file is written under a temporary name
    next to ``path`` and renamed at the end, so that a failed export leaves no partial file.
    ``linking_module=`` (older name ``pipeline=``) is passed on as the rest of ``kwargs``.

    What the DANDI archive would refuse is said (:mod:`element_session.export.dandi`): a subject
    without a species, a sex, or an age or date of birth, each with how to supply it, before
    writing; and, where nwbinspector is installed, its CRITICAL findings (DANDI's configuration) on
    the written file. By default as one :class:`~element_session.errors.DandiWarning` each; with
    ``strict`` (for pipelines that publish to DANDI) as an :class:`NwbExportError`, and nothing is written.

    Warns
    -----
    DandiWarning
        What DANDI would refuse (not ``strict``).

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` was not given (the file is left as it is).
    NwbExportError
        ``path`` cannot be written; with ``strict``, what DANDI would refuse; and as :func:`session_to_nwb`.
    NwbUnavailableError, SessionNotFoundError, ActivationError, InputError, FormatError
        As :func:`session_to_nwb` (an unknown field of ``subject_kwargs`` before anything is written).
    """
    pynwb = _pynwb()
    path = Path(path)
    try:
        path.exists()
    except OSError as err:
        raise NwbExportError(f"cannot write {path}: {err.strerror}") from None
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    if not path.parent.is_dir():
        raise NwbExportError(f"cannot write {path}: directory {path.parent} does not exist")
    nwbfile = session_to_nwb(session_key, **kwargs)
    said = dandi.subject_problems(nwbfile)
    dandi.check_subject(nwbfile, strict=strict)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.nwb")  # pynwb warns on other endings
    try:
        with pynwb.NWBHDF5IO(str(partial), "w") as io:
            io.write(nwbfile)
        findings = dandi.inspect_file(partial, said=said) or []
        if findings:
            message = "nwbinspector's CRITICAL checks (DANDI's configuration) found: " + "; ".join(findings)
            if strict:
                raise NwbExportError(message + " (refused by --strict / strict=True; nothing was written)")
            warnings.warn(message, DandiWarning, stacklevel=2)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
