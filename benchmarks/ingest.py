"""Ingestion benchmark: N sessions from one CSV file, through the project and through raw SQL.

Each session of the generated file has 3 attributes, 1 experimenter, 1 note, 1 directory and 1
project link. The project's way is :func:`element_session.ingest.ingest` (reading, validation,
reference and existence checks, one transaction). The baseline is what a hand-written loader
that trusts its input does: read the same file with the ``csv`` module and write the same rows
into the same tables with the raw driver in one transaction (PyMySQL ``executemany``, which
sends multi-row INSERTs; for PostgreSQL psycopg2's ``execute_values``, its multi-row form, since
its ``executemany`` sends one statement per row). The project also writes a ``SessionTimezone``
row per session, so the baseline writes it too: both write 9 rows per session into 7 tables.
Every timed run starts from emptied session tables.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from element_session.localdb import ServerInfo

SESSIONS_PER_SUBJECT = 100  # one a day: a 30-day window of one subject holds 30 sessions at every N
EXPERIMENTERS = [f"bench-user{i}" for i in range(10)]
PROJECTS = [f"bench-project{i}" for i in range(5)]
FIRST_DAY = dt.datetime(2023, 1, 2, 9, 0, 0)
HEADER = [
    "subject", "session_datetime", "session_id", "experimenter", "project", "session_dir", "session_note",
    "attr.rig", "attr.task", "attr.weight_g",
]  # fmt: skip
PAGE = 5_000  # rows per statement for psycopg2's execute_values (the project's batch size too)

#: Tables the sessions are written to: DataJoint class path in the session module, and columns in insert order.
TABLES: dict[str, tuple[str, ...]] = {
    "Session": ("subject", "session_datetime", "session_id"),
    "Session.Attribute": ("subject", "session_datetime", "attribute_name", "attribute_value"),
    "SessionExperimenter": ("subject", "session_datetime", "user"),
    "ProjectSession": ("project", "subject", "session_datetime"),
    "SessionDirectory": ("subject", "session_datetime", "session_dir"),
    "SessionNote": ("subject", "session_datetime", "session_note"),
    "SessionTimezone": ("subject", "session_datetime", "session_timezone"),
}
ROWS_PER_SESSION = {"Session": 1, "Session.Attribute": 3, **{name: 1 for name in list(TABLES)[2:]}}


# -- the data set ------------------------------------------------------------------------------
def subject_name(index: int) -> str:
    return f"bench-s{index:05d}"


def subject_count(n: int) -> int:
    return math.ceil(n / SESSIONS_PER_SUBJECT)


def session_start(day: int) -> dt.datetime:
    """Start time (UTC) of a subject's session number ``day`` (one session a day)."""
    return FIRST_DAY + dt.timedelta(days=day, minutes=7 * (day % 9))


def write_sessions_csv(path: Path, n: int) -> Path:
    """A CSV file of ``n`` sessions, ``SESSIONS_PER_SUBJECT`` per subject, in the ingestion format."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\r\n")
        writer.writerow(HEADER)
        for number in range(n):
            subject, day = subject_name(number // SESSIONS_PER_SUBJECT), number % SESSIONS_PER_SUBJECT
            start = session_start(day)
            writer.writerow(
                [
                    subject,
                    f"{start:%Y-%m-%dT%H:%M:%S}Z",
                    number + 1,
                    EXPERIMENTERS[number % len(EXPERIMENTERS)],
                    PROJECTS[number % len(PROJECTS)],
                    f"{subject}/{start:%Y-%m-%d_%H%M}",
                    f"session {day + 1} of {subject}: routine recording, rig checked, no issues",
                    f"rig-{number % 4}",
                    ("go-nogo", "passive", "2afc")[number % 3],
                    f"{20 + number % 70 / 10:.1f}",
                ]
            )
    return path


def add_references(pipeline: ModuleType, n: int) -> None:
    """The subjects, experimenters and projects the sessions refer to (not timed)."""
    born = dt.date(2022, 6, 1)
    subjects = [{"subject": subject_name(i), "sex": "U", "subject_birth_date": born} for i in range(subject_count(n))]
    pipeline.Subject.insert(subjects, skip_duplicates=True)
    pipeline.Experimenter.insert([{"user": u} for u in EXPERIMENTERS], skip_duplicates=True)
    pipeline.Project.insert([{"project": p} for p in PROJECTS], skip_duplicates=True)


# -- raw driver --------------------------------------------------------------------------------
def connect_raw(server: ServerInfo, *, autocommit: bool = False) -> Any:
    """A raw driver connection to the server: PyMySQL or psycopg2."""
    if server.backend == "postgresql":
        import psycopg2

        connection = psycopg2.connect(
            host=server.host, port=server.port, user=server.user, password=server.password, dbname="postgres"
        )
        connection.autocommit = autocommit
        return connection
    import pymysql

    return pymysql.connect(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        charset="utf8mb4",
        autocommit=autocommit,
    )


def driver_version(server: ServerInfo) -> str:
    from importlib.metadata import version

    name = "psycopg2-binary" if server.backend == "postgresql" else "PyMySQL"
    try:
        return f"{name} {version(name)}"
    except ImportError:
        return name


def table_names(session_module: ModuleType) -> dict[str, str]:
    """Full (quoted, schema-qualified) SQL names of the benchmark's tables."""
    names = {}
    for name in TABLES:
        table: Any = session_module
        for part in name.split("."):
            table = getattr(table, part)
        names[name] = table.full_table_name
    return names


def quote(server: ServerInfo, identifier: str) -> str:
    return f'"{identifier}"' if server.backend == "postgresql" else f"`{identifier}`"


def empty_tables(raw: Any, server: ServerInfo, names: dict[str, str]) -> None:
    """Empty the session tables (children first), so that the next run writes into fresh tables."""
    with raw.cursor() as cursor:
        if server.backend == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(names.values())} CASCADE")
        else:
            cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
            for name in reversed(list(names.values())):
                cursor.execute(f"TRUNCATE TABLE {name}")
            cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
    raw.commit()


def table_state(raw: Any, server: ServerInfo, names: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Row count and a digest of the sorted content of every benchmark table."""
    state = {}
    with raw.cursor() as cursor:
        for name, full in names.items():
            columns = ", ".join(quote(server, c) for c in TABLES[name])
            cursor.execute(f"SELECT {columns} FROM {full} ORDER BY {columns}")
            digest = hashlib.sha256()
            count = 0
            for row in cursor.fetchall():
                digest.update(repr(row).encode())
                count += 1
            state[name] = {"rows": count, "sha256": digest.hexdigest()}
    raw.commit()
    return state


# -- the two ways of ingesting -------------------------------------------------------------------
def baseline_rows(path: Path) -> dict[str, list[tuple]]:
    """The rows of every table, read from the CSV file with the ``csv`` module and no validation."""
    rows: dict[str, list[tuple]] = {name: [] for name in TABLES}
    session, attribute, experimenter, project, directory, note, zone = rows.values()
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader)
        index = {name: header.index(name) for name in header}
        attributes = [(name[len("attr.") :], index[name]) for name in header if name.startswith("attr.")]
        for cells in reader:
            subject = cells[index["subject"]]
            start = dt.datetime.fromisoformat(cells[index["session_datetime"]].rstrip("Z"))  # the file's times are UTC
            session.append((subject, start, int(cells[index["session_id"]])))
            attribute.extend((subject, start, name, cells[i]) for name, i in attributes)
            experimenter.append((subject, start, cells[index["experimenter"]]))
            project.append((cells[index["project"]], subject, start))
            directory.append((subject, start, cells[index["session_dir"]]))
            note.append((subject, start, cells[index["session_note"]]))
            zone.append((subject, start, "UTC"))
    return rows


def write_baseline(raw: Any, server: ServerInfo, names: dict[str, str], rows: dict[str, list[tuple]]) -> None:
    """Write ``rows`` into their tables with the raw driver, in one transaction."""
    with raw.cursor() as cursor:
        for name, values in rows.items():
            columns = ", ".join(quote(server, c) for c in TABLES[name])
            if server.backend == "postgresql":
                from psycopg2.extras import execute_values

                execute_values(cursor, f"INSERT INTO {names[name]} ({columns}) VALUES %s", values, page_size=PAGE)
            else:
                marks = ", ".join(["%s"] * len(TABLES[name]))
                cursor.executemany(f"INSERT INTO {names[name]} ({columns}) VALUES ({marks})", values)
    raw.commit()


@dataclass
class Timing:
    """Seconds of one ingestion run; for the baseline also the part spent writing."""

    seconds: float
    write_seconds: float | None = None


def run_baseline(raw: Any, server: ServerInfo, names: dict[str, str], path: Path) -> Timing:
    start = time.perf_counter()
    rows = baseline_rows(path)
    read = time.perf_counter()
    write_baseline(raw, server, names, rows)
    end = time.perf_counter()
    return Timing(end - start, end - read)


def run_project(pipeline: ModuleType, path: Path) -> Timing:
    from element_session.ingest import ingest

    start = time.perf_counter()
    ingest("sessions", path, pipeline=pipeline, progress=False)
    return Timing(time.perf_counter() - start)


def expected_rows(n: int) -> dict[str, int]:
    return {name: n * per for name, per in ROWS_PER_SESSION.items()}
