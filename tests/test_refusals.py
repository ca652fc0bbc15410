"""Every refusal of the database server is a typed error naming what it can (issue 11, section 3).

The issue's example is a schema whose tables are ``latin1``, as 0.14-era lab databases often are:
a note with an emoji passed validation, and the server's ``1366 Incorrect string value`` escaped
raw. The other refusals (too long, out of range, duplicate key, foreign key, lock wait timeout)
are provoked on the real server with plain SQL, on MariaDB and PostgreSQL alike.
"""

from __future__ import annotations

import os
import secrets
import textwrap
import types
from collections.abc import Iterator

import datajoint as dj
import pytest

from element_session import session_with_id
from element_session.database import database_errors, is_refused_login, translate
from element_session.errors import (
    DatabaseBusyError,
    DatabaseRefusedError,
    DatabaseUnreachableError,
    PermissionDeniedError,
)
from element_session.ingest import ingest
from element_session.linking import drop_schema
from tests.helpers import declare_lab, lab_module_text, snapshot

BACKEND = os.environ.get("DJ_BACKEND", "mysql")


@pytest.fixture(scope="module")
def lab(connection, prefix) -> Iterator[types.ModuleType]:
    """Lab and session schemas in ``latin1`` on MariaDB/MySQL (as DataJoint creates them on PostgreSQL)."""
    linking = declare_lab(connection, f"{prefix}rf{secrets.token_hex(3)}_", "latin1", "latin1_swedish_ci")
    linking.Subject.insert1({"subject": "M001", "sex": "F", "subject_birth_date": "2020-01-01"})
    yield linking
    drop_schema(session_with_id.schema)
    drop_schema(linking.lab)


@pytest.fixture(scope="module")
def scratch(connection, prefix) -> Iterator[dj.Schema]:
    """A parent table with a 4-character key and a 16-bit number, and a child table."""
    schema = dj.Schema(f"{prefix}rf_scratch")

    @schema
    class Parent(dj.Manual):
        definition = """
        name: varchar(4)
        ---
        small: int16
        """

    @schema
    class Child(dj.Manual):
        definition = """
        -> Parent
        n: int16
        """

    schema.Parent, schema.Child = Parent, Child
    yield schema
    drop_schema(schema)


NOTES = """
subject,session_id,session_note
M001,1,plain text
M001,2,a note with an emoji 🐭
M001,3,plain again
"""


@pytest.mark.skipif(BACKEND != "mysql", reason="PostgreSQL databases here are UTF-8: any character fits")
def test_an_emoji_in_a_latin1_schema_is_a_typed_error_naming_file_row_column_and_value(lab, tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text(textwrap.dedent(NOTES).lstrip(), encoding="utf-8")
    before = snapshot(lab, lab.session)
    with pytest.raises(DatabaseRefusedError) as err:
        ingest("sessions", path, pipeline=lab)
    assert err.value.code == 1366 and not err.value.transient
    (problem,) = err.value.problems
    assert (problem.source, problem.row, problem.column) == (str(path), 3, "session_note")
    assert problem.value == "a note with an emoji 🐭"
    assert problem.reason.startswith(
        "the database refused a character (or value) the column cannot hold in SessionNote:"
    )
    assert "Incorrect string value" in problem.reason
    assert str(err.value).startswith("1 problem(s) in the input, nothing was written:")
    assert snapshot(lab, lab.session) == before


@pytest.mark.skipif(BACKEND != "mysql", reason="PostgreSQL databases here are UTF-8: any character fits")
def test_the_command_exits_1_naming_the_row(lab, run_python, tmp_path):
    (tmp_path / "latin1_pipeline.py").write_text(
        lab_module_text(lab.lab.database, lab.session.schema.database, create_tables=False)
    )
    (tmp_path / "notes.csv").write_text(textwrap.dedent(NOTES).lstrip(), encoding="utf-8")
    before = snapshot(lab, lab.session)
    result = run_python(
        "import sys; from element_session.cli import main; "
        "sys.exit(main(['ingest', 'sessions', 'notes.csv', '--pipeline', 'latin1_pipeline']))",
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "notes.csv, row 3, column 'session_note': the database refused a character" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(lab, lab.session) == before


def refusal(connection, sql: str, args: tuple) -> DatabaseRefusedError:
    with pytest.raises(DatabaseRefusedError) as err, database_errors():
        connection.query(sql, args=args)
    return err.value


def test_every_refusal_of_the_server_is_typed(scratch, connection):
    parent, child = scratch.Parent.full_table_name, scratch.Child.full_table_name
    mysql = BACKEND == "mysql"
    insert = f"INSERT INTO {parent} (name, small) VALUES (%s, %s)"

    too_long = refusal(connection, insert, ("abcde", 1))
    assert too_long.code == (1406 if mysql else "22001")
    assert "text too long for the column" in str(too_long) if mysql else "value too long" in str(too_long)
    assert too_long.problems[0].column == ("name" if mysql else None)

    out_of_range = refusal(connection, insert, ("a", 70000))
    assert out_of_range.code == (1264 if mysql else "22003")
    assert out_of_range.problems[0].column == ("small" if mysql else None)

    connection.query(insert, args=("a", 1))
    duplicate = refusal(connection, insert, ("a", 2))
    assert duplicate.code == (1062 if mysql else "23505") and duplicate.transient
    assert "a duplicate key" in str(duplicate) if mysql else "duplicate key value" in str(duplicate)

    orphan = refusal(connection, f"INSERT INTO {child} (name, n) VALUES (%s, %s)", ("zz", 1))
    assert orphan.code == (1452 if mysql else "23503") and orphan.transient
    assert orphan.problems[0].column == "name"

    connection.query(f"INSERT INTO {child} (name, n) VALUES (%s, %s)", args=("a", 1))
    referenced = refusal(connection, f"DELETE FROM {parent} WHERE name = %s", ("a",))
    assert referenced.code == (1451 if mysql else "23503")
    assert scratch.Parent().to_dicts() == [{"name": "a", "small": 1}]


@pytest.fixture
def lock_timeout_of_one_second(connection) -> Iterator[None]:
    if BACKEND == "mysql":
        connection.query("SET SESSION innodb_lock_wait_timeout = 1")
        yield
        connection.query("SET SESSION innodb_lock_wait_timeout = DEFAULT")
    else:
        connection.query("SET lock_timeout = '1s'")
        yield
        connection.query("SET lock_timeout = DEFAULT")


@pytest.fixture
def other_connection(server):
    """A second connection of the driver itself, to hold locks while the test's connection waits."""
    if BACKEND == "mysql":
        import pymysql

        other = pymysql.connect(host=server.host, port=server.port, user=server.user, password=server.password)
    else:
        import psycopg2

        other = psycopg2.connect(
            host=server.host, port=server.port, user=server.user, password=server.password, dbname="postgres"
        )
    yield other
    other.rollback()
    other.close()


def test_a_lock_held_past_the_retries_is_a_typed_busy_error_and_nothing_is_written(
    lab, other_connection, lock_timeout_of_one_second, tmp_path
):
    cursor = other_connection.cursor()
    cursor.execute(  # uncommitted: the ingest below waits for this row's key
        f"INSERT INTO {lab.Subject.full_table_name} (subject, sex, subject_birth_date) VALUES (%s, %s, %s)",
        ("LOCKED", "F", "2020-01-01"),
    )
    path = tmp_path / "subjects.csv"
    path.write_text("subject,sex,subject_birth_date\nFREE,M,2021-01-01\nLOCKED,F,2020-01-01\n", encoding="utf-8")
    with pytest.raises(DatabaseBusyError, match=r"the database gave up on the write \((a lock wait timeout|a dead)"):
        ingest("subjects", path, pipeline=lab)
    other_connection.rollback()
    assert [row["subject"] for row in lab.Subject().to_dicts()] == ["M001"]


# -- a refused login: one rule (database.is_refused_login), for the command line and the web alike --------
def _mysql(code: int, message: str) -> Exception:
    import pymysql

    return pymysql.err.OperationalError(code, message)


def _postgres(message: str) -> Exception:
    import psycopg2

    return psycopg2.OperationalError(f'connection to server at "127.0.0.1", port 5432 failed: FATAL:  {message}\n')


REFUSED_LOGINS = {
    "MySQL 1044": lambda: _mysql(1044, "Access denied for user 'ann'@'%' to database 'lab'"),
    "MySQL 1045": lambda: _mysql(1045, "Access denied for user 'ann'@'localhost' (using password: YES)"),
    "MySQL 1698": lambda: _mysql(1698, "Access denied for user 'root'@'localhost'"),
    "PostgreSQL wrong password": lambda: _postgres('password authentication failed for user "ann"'),
    "PostgreSQL no such role": lambda: _postgres('role "ann" does not exist'),
}
NOT_LOGINS = {
    "MySQL 2003": lambda: _mysql(2003, "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] refused)"),
    "PostgreSQL closed port": lambda: _postgres("Connection refused\n\tIs the server running on that host?"),
    "PostgreSQL no such table": lambda: _postgres('relation "lab.user_role" does not exist'),
}


@pytest.mark.parametrize("case", REFUSED_LOGINS)
def test_each_refused_login_is_one_rule_and_a_permission_error(case):
    err = REFUSED_LOGINS[case]()
    assert is_refused_login(err)
    assert isinstance(translate(err), PermissionDeniedError)


@pytest.mark.parametrize(
    ("said", "words"),
    [
        ("Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)", "nothing accepts"),
        ("Can't connect to MySQL server on 'x.invalid' ([Errno -2] Name or service not known)", "not known"),
        ("Can't connect to MySQL server on '10.1.1.1' ([Errno 113] No route to host)", "no route to the host"),
        ("Lost connection to MySQL server during query", "the server ended the connection"),
        ("Can't connect to MySQL server on '10.1.1.1' (timed out)", "the server did not answer (no answer within"),
    ],
)
def test_a_failure_to_connect_is_said_in_words_not_the_drivers(said, words):
    typed = translate(_mysql(2003 if said.startswith("Can't") else 2013, said))
    assert isinstance(typed, DatabaseUnreachableError) and words in str(typed), typed
    assert "Errno" not in str(typed) and "MySQL server" not in str(typed)


@pytest.mark.parametrize("case", NOT_LOGINS)
def test_a_failure_to_connect_is_not_a_refused_login(case):
    err = NOT_LOGINS[case]()
    assert not is_refused_login(err)
    assert not isinstance(translate(err), PermissionDeniedError)
