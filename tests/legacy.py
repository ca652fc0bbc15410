"""Schemas as the published elements (on DataJoint 0.14) laid them out, built with raw SQL.

The lab schema (``#user``, ``#project``), the subject schema (``subject``) and the session schema
of either variant are declared here with the DDL that DataJoint 0.14 generated for the published
element-lab, element-animal and element-session: native MySQL types (``int``, ``datetime``,
``varchar(n)``, ``longblob``), comments with no DataJoint 2.x type markers, foreign keys
``ON UPDATE CASCADE ON DELETE RESTRICT`` and a ``~log`` table per schema. Blobs are serialised
here by :func:`legacy_blob`, an encoder of DataJoint's blob format written for the tests, so that
what the migration reads does not come from the DataJoint 2.x that reads it back.

:func:`build_legacy` declares and fills the three schemas and returns the rows it wrote as Python
objects (:class:`LegacyContents`) for the tests to compare with what the element reads after the
migration. :func:`snapshot` captures a schema's DDL and raw rows to prove that nothing changed.
"""

from __future__ import annotations

import datetime as dt
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: DataJoint 0.14's event-log table, created in every schema it declared tables in.
LOG_DDL = """
CREATE TABLE IF NOT EXISTS `{db}`.`~log` (
`id` int unsigned NOT NULL AUTO_INCREMENT COMMENT "event order id",
`timestamp` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT "event timestamp",
`version` varchar(12) NOT NULL COMMENT "datajoint version",
`user` varchar(255) NOT NULL COMMENT "user@host",
`host` varchar(255) NOT NULL DEFAULT "" COMMENT "system hostname",
`event` varchar(255) NOT NULL DEFAULT "" COMMENT "event message",
PRIMARY KEY (`id`)
) ENGINE=InnoDB, COMMENT "event logging table for `{db}`"
"""

LAB_DDL = {
    "#user": """
CREATE TABLE IF NOT EXISTS `{lab}`.`#user` (
`user` varchar(32) NOT NULL COMMENT "",
`user_email` varchar(128) NOT NULL DEFAULT "" COMMENT "",
`user_cellphone` varchar(32) NOT NULL DEFAULT "" COMMENT "",
`user_fullname` varchar(64) NOT NULL DEFAULT "" COMMENT "Full name used to uniquely identify an individual",
PRIMARY KEY (`user`)
) ENGINE=InnoDB, COMMENT ""
""",
    "#project": """
CREATE TABLE IF NOT EXISTS `{lab}`.`#project` (
`project` varchar(32) NOT NULL COMMENT "",
`project_description` varchar(1024) NOT NULL DEFAULT "" COMMENT "",
PRIMARY KEY (`project`)
) ENGINE=InnoDB, COMMENT ""
""",
}

SUBJECT_DDL = """
CREATE TABLE IF NOT EXISTS `{subject}`.`subject` (
`subject` varchar(8) NOT NULL COMMENT "",
`subject_nickname` varchar(64) NOT NULL DEFAULT "" COMMENT "",
`sex` enum('M','F','U') NOT NULL COMMENT "",
`subject_birth_date` date NOT NULL COMMENT "",
`subject_description` varchar(1024) NOT NULL DEFAULT "" COMMENT "",
PRIMARY KEY (`subject`)
) ENGINE=InnoDB, COMMENT ""
"""

#: The key of ``session`` in each variant, as 0.14 declared it (foreign-key columns copy the
#: parent's declaration, comment included); ``{secondary}`` is the variant's secondary attribute.
SESSION_DDL = {
    "datetime": """
CREATE TABLE IF NOT EXISTS `{db}`.`session` (
`subject` varchar(8) NOT NULL COMMENT "",
`session_datetime` datetime NOT NULL COMMENT "",
{secondary}PRIMARY KEY (`subject`,`session_datetime`),
FOREIGN KEY (`subject`) REFERENCES `{subject}`.`subject` (`subject`) ON UPDATE CASCADE ON DELETE RESTRICT
) ENGINE=InnoDB, COMMENT ""
""",
    "id": """
CREATE TABLE IF NOT EXISTS `{db}`.`session` (
`subject` varchar(8) NOT NULL COMMENT "",
`session_id` int NOT NULL COMMENT "",
{secondary}PRIMARY KEY (`subject`,`session_id`),
FOREIGN KEY (`subject`) REFERENCES `{subject}`.`subject` (`subject`) ON UPDATE CASCADE ON DELETE RESTRICT
) ENGINE=InnoDB, COMMENT ""
""",
}

SESSION_KEY = {
    "datetime": ('`subject` varchar(8) NOT NULL COMMENT "",\n`session_datetime` datetime NOT NULL COMMENT "",\n'),
    "id": '`subject` varchar(8) NOT NULL COMMENT "",\n`session_id` int NOT NULL COMMENT "",\n',
}
SESSION_PK = {"datetime": "`subject`,`session_datetime`", "id": "`subject`,`session_id`"}

#: The tables below ``session``, in declaration order (parents first).
CHILD_DDL = {
    "session__attribute": """
CREATE TABLE IF NOT EXISTS `{db}`.`session__attribute` (
{key}`attribute_name` varchar(32) NOT NULL COMMENT "",
`attribute_value` varchar(2000) NOT NULL DEFAULT '' COMMENT "",
`attribute_blob` longblob DEFAULT NULL COMMENT "",
PRIMARY KEY ({pk},`attribute_name`),
FOREIGN KEY ({pk}) REFERENCES `{db}`.`session` ({pk}) ON UPDATE CASCADE ON DELETE RESTRICT
) ENGINE=InnoDB, COMMENT ""
""",
    "session_directory": """
CREATE TABLE IF NOT EXISTS `{db}`.`session_directory` (
{key}`session_dir` varchar(256) NOT NULL COMMENT "Path to the data directory for a session",
PRIMARY KEY ({pk}),
FOREIGN KEY ({pk}) REFERENCES `{db}`.`session` ({pk}) ON UPDATE CASCADE ON DELETE RESTRICT
) ENGINE=InnoDB, COMMENT ""
""",
    "session_experimenter": """
CREATE TABLE IF NOT EXISTS `{db}`.`session_experimenter` (
{key}`user` varchar(32) NOT NULL COMMENT "",
PRIMARY KEY ({pk},`user`),
FOREIGN KEY ({pk}) REFERENCES `{db}`.`session` ({pk}) ON UPDATE CASCADE ON DELETE RESTRICT,
FOREIGN KEY (`user`) REFERENCES `{lab}`.`#user` (`user`) ON UPDATE CASCADE ON DELETE RESTRICT
) ENGINE=InnoDB, COMMENT "Individual(s) conducting the session"
""",
    "session_note": """
CREATE TABLE IF NOT EXISTS `{db}`.`session_note` (
{key}`session_note` varchar(1024) NOT NULL COMMENT "",
PRIMARY KEY ({pk}),
FOREIGN KEY ({pk}) REFERENCES `{db}`.`session` ({pk}) ON UPDATE CASCADE ON DELETE RESTRICT
) ENGINE=InnoDB, COMMENT ""
""",
    "project_session": """
CREATE TABLE IF NOT EXISTS `{db}`.`project_session` (
`project` varchar(32) NOT NULL COMMENT "",
{key}PRIMARY KEY (`project`,{pk}),
FOREIGN KEY (`project`) REFERENCES `{lab}`.`#project` (`project`) ON UPDATE CASCADE ON DELETE RESTRICT,
FOREIGN KEY ({pk}) REFERENCES `{db}`.`session` ({pk}) ON UPDATE CASCADE ON DELETE RESTRICT
) ENGINE=InnoDB, COMMENT ""
""",
}


# -- DataJoint's blob format, written the way 0.14 wrote it ---------------------------------------

_ARRAY_TYPE_IDS = {
    np.dtype("bool"): 3,
    np.dtype("float64"): 6,
    np.dtype("float32"): 7,
    np.dtype("int8"): 8,
    np.dtype("uint8"): 9,
    np.dtype("int16"): 10,
    np.dtype("uint16"): 11,
    np.dtype("int32"): 12,
    np.dtype("uint32"): 13,
    np.dtype("int64"): 14,
    np.dtype("uint64"): 15,
}


def legacy_blob(obj: Any) -> bytes:
    """``obj`` serialised as DataJoint 0.14 stored it in a ``longblob`` column.

    Numeric arrays of one or more dimensions use the MATLAB-compatible ``mYm`` protocol; dicts,
    lists, strings and Python scalars need the ``dj0`` protocol. Serialisations longer than
    1000 bytes are zlib-compressed behind a ``ZL123`` header where that makes them shorter.
    """
    needs_dj0: list[bool] = []
    body = _pack(obj, needs_dj0)
    blob = (b"dj0\0" if needs_dj0 else b"mYm\0") + body
    if len(blob) > 1000:
        compressed = b"ZL123\0" + struct.pack("<Q", len(blob)) + zlib.compress(blob)
        if len(compressed) < len(blob):
            return compressed
    return blob


def _sized(item: bytes) -> bytes:
    return struct.pack("<Q", len(item)) + item


def _pack(obj: Any, needs_dj0: list[bool]) -> bytes:
    if isinstance(obj, np.ndarray) and obj.dtype in _ARRAY_TYPE_IDS and obj.ndim > 0:
        header = b"A" + struct.pack("<Q", obj.ndim) + struct.pack(f"<{obj.ndim}Q", *obj.shape)
        return header + struct.pack("<II", _ARRAY_TYPE_IDS[obj.dtype], 0) + obj.tobytes(order="F")
    needs_dj0.append(True)
    if obj is None:
        return b"\xff"
    if isinstance(obj, bool):
        return b"\x0b" + struct.pack("<?", obj)
    if isinstance(obj, int):
        size = obj.bit_length() // 8 + 1
        return b"\x0a" + struct.pack("<H", size) + obj.to_bytes(size, "little", signed=True)
    if isinstance(obj, float):
        return b"\x0d" + struct.pack("<d", obj)
    if isinstance(obj, str):
        return b"\x05" + _sized(obj.encode())
    if isinstance(obj, dict):
        items = b"".join(_sized(_pack(k, needs_dj0)) + _sized(_pack(v, needs_dj0)) for k, v in obj.items())
        return b"\x04" + struct.pack("<Q", len(obj)) + items
    if isinstance(obj, list):
        return b"\x02" + struct.pack("<Q", len(obj)) + b"".join(_sized(_pack(v, needs_dj0)) for v in obj)
    raise TypeError(f"legacy_blob does not serialise {type(obj).__name__}")


# -- The contents the fixtures write ---------------------------------------------------------------

USERS = [
    dict(user="alice", user_email="alice@lab.example", user_cellphone="+1 555 0100", user_fullname="Alice Archer"),
    dict(user="bjørn", user_email="", user_cellphone="", user_fullname="Bjørn Ødegård 🧑‍🔬"),
    dict(user="chen", user_email="chen@lab.example", user_cellphone="", user_fullname="陈 静"),
]
PROJECTS = [
    dict(project="vision", project_description="Visual cortex, two-photon 🔬"),
    dict(project="motor", project_description=""),
]
SUBJECTS = [
    dict(
        subject="M001",
        subject_nickname="Speedy",
        sex="M",
        subject_birth_date=dt.date(2019, 3, 14),
        subject_description="",
    ),
    dict(
        subject="F-002",
        subject_nickname="Zoë",
        sex="F",
        subject_birth_date=dt.date(2020, 2, 29),
        subject_description="wild type — Übergröße 🐭",
    ),
    dict(subject="U3", subject_nickname="", sex="U", subject_birth_date=dt.date(2021, 12, 31), subject_description=""),
]


def _attribute_values(index: int) -> list[tuple[str, str, Any]]:
    """(attribute_name, attribute_value, attribute_blob) of the ``index``-th session."""
    rng = np.random.default_rng(index)
    return [
        ("gain", f"{2.5 + index}", None),
        ("kernel", "", np.arange(12, dtype=np.float64).reshape(3, 4) * (index + 1)),
        ("mask", "", np.array([[1, -2, 3], [4, 5, -6]], dtype=np.int32)),
        ("trace", "", rng.standard_normal(400)),  # over 1000 bytes, but stored uncompressed: noise does not shrink
        ("counts", "", np.repeat(np.arange(50), 40).reshape(40, 50)),  # stored zlib-compressed
        ("params", "", {"rate": 30000, "channels": [1, 2, 3], "label": "täst 🐭", "scale": 0.5}),
        ("labels", "", ["left", "right", "ünder", "🦉"]),
        ("comment", "ok", f"session {index}: ça va 🧠"),
    ]


NOTES = [
    "first session — all good",
    "électrode déplacée; 🐭 was calm 👍",
    "日本語のメモ",
    "",
    "𠜎𠜱 (CJK extension B) and 🧪🧫",
]


#: Notes of a latin1 fixture: text that MySQL's latin1 (Windows-1252) holds beyond ASCII.
LATIN1_NOTES = [
    "37 °C \u2013 ½ dose",  # an en dash
    "Übergröße, Ø 3 mm — très bien",
    "plain ASCII",
    "",
    "µ-electrode ± 5 µm; naïve «mouse» ‰",
]


def fit_text(text: str, charset: str | None) -> str:
    """``text`` as a ``charset`` column holds it: latin1 (Windows-1252) drops what it lacks, e.g. emoji."""
    if charset != "latin1":
        return text
    return text.encode("cp1252", errors="ignore").decode("cp1252").rstrip()


def fit_rows(rows: list[dict], charset: str | None) -> list[dict]:
    """``rows`` with every text value fitted to ``charset``."""
    return [{k: fit_text(v, charset) if isinstance(v, str) else v for k, v in row.items()} for row in rows]


#: The legacy layouts the fixtures build: variant ("datetime" or "id"), whether ``session`` has
#: ``session_id`` (datetime variant) and whether ``session_datetime`` is nullable (id variant).
LAYOUTS = {
    "datetime": ("datetime", True, False),  # 0.2.0's session_with_datetime
    "datetime-no-id": ("datetime", False, False),  # releases before 0.2.0: no session_id
    "id": ("id", True, True),  # 0.2.0's session_with_id
    "id-datetime-required": ("id", True, False),  # an id variant whose session_datetime is NOT NULL
}
#: The element module of each variant.
MODULES = {"datetime": "session_with_datetime", "id": "session_with_id"}


@dataclass
class LegacyContents:
    """The rows written to a legacy session schema, as Python objects, keyed as the element reads them."""

    layout: str
    sessions: list[dict] = field(default_factory=list)
    attributes: list[dict] = field(default_factory=list)
    directories: list[dict] = field(default_factory=list)
    experimenters: list[dict] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)
    project_sessions: list[dict] = field(default_factory=list)

    @property
    def variant(self) -> str:
        return LAYOUTS[self.layout][0]

    def by_table(self) -> dict[str, list[dict]]:
        """The rows by the name of the element's table class that reads them."""
        return {
            "Session": self.sessions,
            "Session.Attribute": self.attributes,
            "SessionDirectory": self.directories,
            "SessionExperimenter": self.experimenters,
            "SessionNote": self.notes,
            "ProjectSession": self.project_sessions,
        }


@dataclass(frozen=True)
class LegacySchemas:
    """Names of the three legacy schemas of one fixture."""

    lab: str
    subject: str
    session: str


def legacy_contents(layout: str, charset: str | None = None) -> LegacyContents:
    """The rows :func:`create_session` writes for ``layout``, computed without a database.

    As the element reads them after the migration: a session of the layout without
    ``session_id`` reads ``session_id=None``. With ``charset="latin1"`` the text is what latin1
    holds: the notes are :data:`LATIN1_NOTES`, and other text loses the characters latin1 lacks.
    """
    variant, has_id, nullable_datetime = LAYOUTS[layout]
    contents = LegacyContents(layout)
    start = dt.datetime(2019, 12, 31, 23, 59, 59)
    for index in range(6):
        subject = SUBJECTS[index % len(SUBJECTS)]["subject"]
        when = start + dt.timedelta(days=37 * index, hours=index, minutes=7 * index)
        if variant == "datetime":
            key = dict(subject=subject, session_datetime=when)
            session = dict(key, session_id=index + 1 if has_id and index % 3 else None)
        else:
            key = dict(subject=subject, session_id=index + 1)
            session = dict(key, session_datetime=when if index % 3 or not nullable_datetime else None)
        contents.sessions.append(session)
        for name, value, blob in _attribute_values(index):
            value = fit_text(value, charset)
            contents.attributes.append(dict(key, attribute_name=name, attribute_value=value, attribute_blob=blob))
        directory = fit_text(f"{subject}/{when:%Y-%m-%d_%H-%M-%S}/raw 📁", charset)
        contents.directories.append(dict(key, session_dir=directory))
        for person in USERS[: 1 + index % len(USERS)]:
            contents.experimenters.append(dict(key, user=person["user"]))
        if index % 5 != 4:
            notes = LATIN1_NOTES if charset == "latin1" else NOTES
            contents.notes.append(dict(key, session_note=fit_text(notes[index % len(notes)], charset)))
        contents.project_sessions.append(dict(key, project=PROJECTS[index % 2]["project"]))
        if index == 0:
            contents.project_sessions.append(dict(key, project=PROJECTS[1]["project"]))
    return contents


# -- Declaring and filling ---------------------------------------------------------------------------


def _insert(connection, db: str, table: str, rows: list[dict]) -> None:
    for row in rows:
        names = ", ".join(f"`{name}`" for name in row)
        marks = ", ".join(["%s"] * len(row))
        connection.query(f"INSERT INTO `{db}`.`{table}` ({names}) VALUES ({marks})", args=tuple(row.values()))


def _log(connection, db: str, event: str) -> None:
    connection.query(
        f"INSERT INTO `{db}`.`~log` (version, user, host, event) VALUES (%s, %s, %s, %s)",
        args=("0.14.3py", "dj@localhost", "lab-pc", event),
    )


def _create_schema(connection, db: str, charset: str | None = None) -> None:
    connection.query(f"CREATE DATABASE `{db}`" + (f" CHARACTER SET {charset}" if charset else ""))
    connection.query(LOG_DDL.format(db=db))


def create_lab(connection, lab: str, charset: str | None = None) -> None:
    """The lab schema of element-lab: ``#user`` and ``#project``, filled (text fitted to ``charset``)."""
    _create_schema(connection, lab, charset)
    for table, ddl in LAB_DDL.items():
        connection.query(ddl.format(lab=lab))
        _log(connection, lab, f"Declared `{lab}`.`{table}`")
    _insert(connection, lab, "#user", fit_rows(USERS, charset))
    _insert(connection, lab, "#project", fit_rows(PROJECTS, charset))


def create_subject(connection, subject: str, charset: str | None = None) -> None:
    """The subject schema of element-animal: ``subject`` with its 8-character key, filled."""
    _create_schema(connection, subject, charset)
    connection.query(SUBJECT_DDL.format(subject=subject))
    _log(connection, subject, f"Declared `{subject}`.`subject`")
    _insert(connection, subject, "subject", fit_rows(SUBJECTS, charset))


def create_session(
    connection, schemas: LegacySchemas, layout: str = "datetime", charset: str | None = None
) -> LegacyContents:
    """The session schema of element-session in ``layout`` (a key of :data:`LAYOUTS`), filled.

    The lab and subject schemas must exist. Returns the rows written, as the element reads them.
    """
    variant, has_id, nullable_datetime = LAYOUTS[layout]
    db = schemas.session
    if variant == "datetime":
        secondary = '`session_id` int DEFAULT NULL COMMENT "",\n' if has_id else ""
    else:
        secondary = f'`session_datetime` datetime {"DEFAULT NULL" if nullable_datetime else "NOT NULL"} COMMENT "",\n'
    _create_schema(connection, db, charset)
    connection.query(SESSION_DDL[variant].format(db=db, subject=schemas.subject, secondary=secondary))
    _log(connection, db, f"Declared `{db}`.`session`")
    for table, ddl in CHILD_DDL.items():
        connection.query(ddl.format(db=db, lab=schemas.lab, key=SESSION_KEY[variant], pk=SESSION_PK[variant]))
        _log(connection, db, f"Declared `{db}`.`{table}`")
    contents = legacy_contents(layout, charset)
    sessions = [{k: v for k, v in row.items() if has_id or k != "session_id"} for row in contents.sessions]
    _insert(connection, db, "session", sessions)
    blobs = [dict(row, attribute_blob=None if row["attribute_blob"] is None else legacy_blob(row["attribute_blob"]))
             for row in contents.attributes]  # fmt: skip
    _insert(connection, db, "session__attribute", blobs)
    _insert(connection, db, "session_directory", contents.directories)
    _insert(connection, db, "session_experimenter", contents.experimenters)
    _insert(connection, db, "session_note", contents.notes)
    _insert(connection, db, "project_session", contents.project_sessions)
    return contents


def build_legacy(
    connection, base: str, layout: str = "datetime", charset: str | None = None
) -> tuple[LegacySchemas, LegacyContents]:
    """Declare and fill legacy schemas named ``base`` + "lab", "subject" and "session".

    ``charset`` (e.g. ``"latin1"``) is the schemas' default character set, as on a MySQL 5.x server;
    by default the server's. The text written is fitted to it (:func:`fit_text`).
    """
    schemas = LegacySchemas(lab=base + "lab", subject=base + "subject", session=base + "session")
    create_lab(connection, schemas.lab, charset)
    create_subject(connection, schemas.subject, charset)
    return schemas, create_session(connection, schemas, layout, charset)


# -- Reading back through the element ----------------------------------------------------------------


def legacy_linking_module(schemas: LegacySchemas, style: str = "virtual"):
    """A linking module whose upstream tables are the legacy lab and subject tables, as they are.

    ``style="virtual"`` makes their classes from the database (``dj.virtual_schema``);
    ``style="declared"`` declares minimal classes bound to the existing tables, which DataJoint
    reads from the database and never creates (``create_tables=False``).
    """
    import types

    import datajoint as dj

    linking = types.ModuleType("legacy_lab_pipeline")
    if style == "virtual":
        lab, subject = dj.virtual_schema(schemas.lab), dj.virtual_schema(schemas.subject)
        linking.Subject, linking.Project, linking.Experimenter = subject.Subject, lab.Project, lab.User
        return linking
    lab = dj.Schema(schemas.lab, create_schema=False, create_tables=False)
    subject = dj.Schema(schemas.subject, create_schema=False, create_tables=False)

    @lab
    class User(dj.Lookup):
        definition = """
        user: varchar(32)
        ---
        user_email='': varchar(128)
        user_cellphone='': varchar(32)
        user_fullname='': varchar(64)
        """

    @lab
    class Project(dj.Lookup):
        definition = """
        project: varchar(32)
        ---
        project_description='': varchar(1024)
        """

    @subject
    class Subject(dj.Manual):
        definition = """
        subject: varchar(8)
        ---
        subject_nickname='': varchar(64)
        sex: enum('M', 'F', 'U')
        subject_birth_date: date
        subject_description='': varchar(1024)
        """

    linking.Subject, linking.Project, linking.Experimenter = Subject, Project, User
    return linking


def check_read_back(session_module, contents: LegacyContents) -> None:
    """Every row of ``contents`` reads back through the activated element exactly as written."""
    for name, expected in contents.by_table().items():
        table = session_module
        for part in name.split("."):
            table = getattr(table, part)
        rows = table().to_dicts()
        key = table.primary_key
        assert len(rows) == len(expected), f"{name}: {len(rows)} rows read, {len(expected)} written"
        order = sorted(expected, key=lambda row: repr([row[k] for k in key]))
        for actual, wanted in zip(sorted(rows, key=lambda row: repr([row[k] for k in key])), order, strict=True):
            assert actual.keys() == wanted.keys(), f"{name}: attributes {sorted(actual)} != {sorted(wanted)}"
            for attribute, value in wanted.items():
                assert_same(actual[attribute], value, f"{name} {[wanted[k] for k in key]} {attribute}")


# -- Proving that nothing changed ------------------------------------------------------------------


def snapshot(connection, db: str) -> dict[str, tuple[str, list[tuple]]]:
    """Every table of ``db`` (hidden ones included): its ``SHOW CREATE TABLE`` and its rows in key order."""
    tables = [
        row[0]
        for row in connection.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY table_name", args=(db,)
        )
    ]
    result = {}
    for table in tables:
        ddl = connection.query(f"SHOW CREATE TABLE `{db}`.`{table}`").fetchone()[1]
        rows = connection.query(f"SELECT * FROM `{db}`.`{table}`").fetchall()
        result[table] = (ddl, sorted(rows, key=repr))
    return result


def data_snapshot(connection, db: str) -> dict[str, list[tuple]]:
    """The rows of the element's tables in ``db``, by table and in key order, without the DDL."""
    return {
        table: rows
        for table, (_, rows) in snapshot(connection, db).items()
        if not table.startswith("~") and table != "session_timezone"
    }


def assert_same(actual: Any, expected: Any, where: str = "value") -> None:
    """Deep equality of decoded blobs: arrays equal in dtype, shape and values; other types exactly."""
    if isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray), f"{where}: {type(actual).__name__} is not an array"
        assert actual.dtype == expected.dtype, f"{where}: dtype {actual.dtype} != {expected.dtype}"
        assert actual.shape == expected.shape, f"{where}: shape {actual.shape} != {expected.shape}"
        assert np.array_equal(actual, expected), f"{where}: values differ"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), f"{where}: {actual!r} != {expected!r}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r} != {expected!r}"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{index}]")
    else:
        assert type(actual) is type(expected) and actual == expected, f"{where}: {actual!r} != {expected!r}"


# -- A downstream schema of another published element, as DataJoint 0.14 declared it ------------------

#: DataJoint 0.14's job reservation table, one per schema (DataJoint 2.x uses ``~~<table>`` instead).
JOBS_DDL = """
CREATE TABLE `{db}`.`~jobs` (
`table_name` varchar(255) NOT NULL COMMENT "className of the table",
`key_hash` char(32) NOT NULL COMMENT "key hash",
`status` enum('reserved','error','ignore') NOT NULL COMMENT "if tuple is missing, the job is available",
`key` longblob COMMENT "structure containing the key",
`error_message` varchar(2047) NOT NULL DEFAULT "" COMMENT "error message returned if failed",
`error_stack` mediumblob COMMENT "error stack if failed",
`user` varchar(255) NOT NULL DEFAULT "" COMMENT "database user",
`host` varchar(255) NOT NULL DEFAULT "" COMMENT "system hostname",
`pid` int unsigned NOT NULL DEFAULT "0" COMMENT "system process id",
`connection_id` bigint unsigned NOT NULL DEFAULT "0" COMMENT "connection id",
`timestamp` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT "automatic timestamp",
PRIMARY KEY (`table_name`,`key_hash`)
) ENGINE=InnoDB, COMMENT "job reservation table for `{db}`"
"""

#: An Imported table and its part, laid out like element-array-ephys's on 0.14: blobs, native numbers.
DOWNSTREAM_DDL = {
    "_recording": """
CREATE TABLE `{db}`.`_recording` (
{key}`insertion_number` tinyint unsigned NOT NULL COMMENT "",
`sampling_rate` double NOT NULL COMMENT "(Hz)",
`channel_map` longblob NOT NULL COMMENT "channel index -> (x, y) in um",
`recording_note` varchar(255) NOT NULL DEFAULT "" COMMENT "",
PRIMARY KEY ({pk},`insertion_number`),
FOREIGN KEY ({pk}) REFERENCES `{session}`.`session` ({pk}) ON UPDATE CASCADE ON DELETE RESTRICT
) ENGINE=InnoDB, COMMENT "one probe insertion of a session"
""",
    "_recording__channel": """
CREATE TABLE `{db}`.`_recording__channel` (
{key}`insertion_number` tinyint unsigned NOT NULL COMMENT "",
`channel` int NOT NULL COMMENT "",
`trace` longblob DEFAULT NULL COMMENT "voltage (uV)",
PRIMARY KEY ({pk},`insertion_number`,`channel`),
FOREIGN KEY ({pk},`insertion_number`) REFERENCES `{db}`.`_recording` ({pk},`insertion_number`)
  ON UPDATE CASCADE ON DELETE RESTRICT
) ENGINE=InnoDB, COMMENT ""
""",
}

DOWNSTREAM_NOTES = ["gain ½, 37 °C \u2013 Ø 2 mm", "Über alles"]


def downstream_rows(contents: LegacyContents, charset: str | None = None) -> dict[str, list[dict]]:
    """The rows :func:`create_downstream` writes, blobs as Python objects, by table."""
    key_names = ["subject", "session_datetime" if contents.variant == "datetime" else "session_id"]
    recordings, channels = [], []
    for index, session in enumerate(contents.sessions):
        key = {name: session[name] for name in key_names}
        channel_map = {"x": np.arange(4, dtype=np.float64) * 20.0, "y": np.array([0.0, 15.0, 30.0, 45.0])}
        note = fit_text(DOWNSTREAM_NOTES[index % 2] + (" 🐭" if index == 1 else ""), charset)
        recordings.append(dict(key, insertion_number=1, sampling_rate=30000.0, channel_map=channel_map,
                               recording_note=note))  # fmt: skip
        for channel in range(3):
            trace = np.sin(np.arange(50) * (channel + 1) / 7.0) if channel < 2 else None
            channels.append(dict(key, insertion_number=1, channel=channel, trace=trace))
    return {"_recording": recordings, "_recording__channel": channels}


def create_downstream(
    connection, schemas: LegacySchemas, contents: LegacyContents, db: str, charset: str | None = None
) -> dict[str, list[dict]]:
    """A downstream schema ``db`` of a 0.14 element below ``schemas.session``: blobs, no markers, ``~jobs``.

    Returns the rows written (:func:`downstream_rows`). ``~jobs`` holds one failed job, no reservation.
    """
    _create_schema(connection, db, charset)
    for table, ddl in DOWNSTREAM_DDL.items():
        connection.query(
            ddl.format(
                db=db, session=schemas.session, key=SESSION_KEY[contents.variant], pk=SESSION_PK[contents.variant]
            )
        )
        _log(connection, db, f"Declared `{db}`.`{table}`")
    connection.query(JOBS_DDL.format(db=db))
    rows = downstream_rows(contents, charset)
    for table, table_rows in rows.items():
        blobs = {"channel_map", "trace"}
        stored = [
            {k: legacy_blob(v) if k in blobs and v is not None else v for k, v in row.items()} for row in table_rows
        ]
        _insert(connection, db, table, stored)
    connection.query(
        f"INSERT INTO `{db}`.`~jobs` (table_name, key_hash, status, `key`, error_message, user, host) "
        "VALUES (%s, %s, 'error', %s, %s, 'dj@lab-pc', 'lab-pc')",
        args=(f"`{db}`.`_recording`", "0" * 32, legacy_blob({"subject": "U3"}), "FileNotFoundError: probe.meta"),
    )
    return rows
