"""Keys compared the way the database compares them (issue 11, section 2).

The session tables and their upstream tables are declared in schemas created with a collation:
``utf8mb4_general_ci`` (MariaDB's stand-in for MySQL 8's case- and accent-insensitive default) and
the binary ``utf8mb4_bin``; on PostgreSQL, whose collations here are deterministic, the schemas as
DataJoint creates them. Either the input key is the stored one (and the report says so) or it is a
typed error naming row, column and value: never a raw DataJoint or driver error.
"""

from __future__ import annotations

import os
import secrets
import textwrap
import types
from collections.abc import Iterator

import pytest

from element_session import session_with_id
from element_session.errors import ConflictError, InputError
from element_session.ingest import ingest
from element_session.linking import drop_schema
from tests.helpers import declare_lab, snapshot

BACKEND = os.environ.get("DJ_BACKEND", "mysql")
COLLATIONS = ["utf8mb4_general_ci", "utf8mb4_bin"] if BACKEND == "mysql" else ["deterministic"]


@pytest.fixture(scope="module", params=COLLATIONS)
def lab(request, connection, prefix) -> Iterator[types.ModuleType]:
    linking = declare_lab(connection, f"{prefix}ky{secrets.token_hex(3)}_", "utf8mb4", request.param)
    linking.ci = request.param.endswith("_ci")
    linking.Subject.insert1({"subject": "M001", "sex": "F", "subject_birth_date": "2020-01-01"})
    linking.User.insert([{"user": "ada"}, {"user": "bob"}])
    linking.Project.insert1({"project": "maps"})
    yield linking
    drop_schema(session_with_id.schema)
    drop_schema(linking.lab)


def write(tmp_path, text: str):
    path = tmp_path / f"in-{secrets.token_hex(3)}.csv"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_activation_warns_once_about_a_collation_that_is_not_binary(lab):
    if not lab.ci:
        assert lab.warned == []
        return
    (message,) = lab.warned
    assert "utf8mb4_general_ci" in message and "lab.subject.subject" in message
    assert "'M001' and 'm001'" in message
    assert "ALTER TABLE `schema`.`table` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" in message


def test_a_session_for_m001_is_the_stored_m001_or_an_unknown_subject(lab, tmp_path):
    path = write(tmp_path, "subject,session_id,session_datetime,experimenter\nm001,1,2024-01-02T10:00:00Z,ADA\n")
    before = snapshot(lab, lab.session)
    if not lab.ci:
        with pytest.raises(InputError) as err:
            ingest("sessions", path, pipeline=lab)
        problems = {(p.row, p.column, p.value): p.reason for p in err.value.problems}
        assert problems[(2, "subject", "m001")] == "unknown subject: ingest it into Subject first"
        assert problems[(2, "experimenter", "ADA")] == "unknown experimenter: ingest it first"
        assert snapshot(lab, lab.session) == before
        return
    report = ingest("sessions", path, pipeline=lab)
    assert report.inserted["Session"] == 1
    assert f"{path} row 2, column subject: 'm001' is the stored 'M001' (collation utf8mb4_general_ci)" in report.matched
    assert f"{path} row 2, column experimenter: 'ADA' is the stored 'ada' (collation utf8mb4_general_ci)" in str(report)
    # the stored spelling is written, so that every table agrees with Subject and User
    assert (lab.session.Session & {"session_id": 1}).to_dicts()[0]["subject"] == "M001"
    assert (lab.session.SessionExperimenter & {"session_id": 1}).to_dicts()[0]["user"] == "ada"
    again = ingest("sessions", path, pipeline=lab)
    assert len(again.present) == 1 and again.new == 0


def test_ingesting_subject_m001_as_advised_is_present_or_new_never_a_raw_duplicate(lab, tmp_path):
    path = write(tmp_path, "subject,sex,subject_birth_date\nm001,F,2020-01-01\n")
    report = ingest("subjects", path, pipeline=lab)
    if lab.ci:
        assert report.new == 0 and report.present == [f"{path} row 2"]
        assert report.matched == [
            f"{path} row 2, column subject: 'm001' is the stored 'M001' (collation utf8mb4_general_ci)"
        ]
        other = write(tmp_path, "subject,sex,subject_birth_date\nm001,M,2020-01-01\n")
        with pytest.raises(ConflictError, match="column 'sex': conflict: stored value is 'F'"):
            ingest("subjects", other, pipeline=lab)
    else:
        assert report.inserted == {"Subject": 1} and report.matched == []
        (lab.Subject & {"subject": "m001"}).delete()
    assert [row["subject"] for row in lab.Subject().to_dicts()] == ["M001"]


def test_two_input_keys_the_database_calls_equal(lab, tmp_path):
    path = write(tmp_path, "user\ncy\nCY\n")
    before = snapshot(lab, lab.session)
    if lab.ci:
        with pytest.raises(InputError) as err:
            ingest("experimenters", path, pipeline=lab)
        (problem,) = err.value.problems
        assert (problem.row, problem.column, problem.value) == (3, "user", "CY")
        assert problem.reason == (
            f"duplicate key (also {path} row 2): "
            "the database compares cy and CY as equal (collation utf8mb4_general_ci)"
        )
        assert snapshot(lab, lab.session) == before
    else:
        assert ingest("experimenters", path, pipeline=lab).inserted == {"User": 2}
        (lab.User & [{"user": "cy"}, {"user": "CY"}]).delete()


def test_one_session_with_attributes_rig_and_Rig(lab, tmp_path):
    path = write(tmp_path, "subject,session_id,attr.Rig,attr.rig\nM001,2,a,b\n")
    before = snapshot(lab, lab.session)
    if lab.ci:
        with pytest.raises(InputError) as err:
            ingest("sessions", path, pipeline=lab)
        (problem,) = err.value.problems
        assert (problem.source, problem.row, problem.column, problem.value) == (str(path), 2, "attr.rig", "b")
        assert (
            problem.reason
            == "the same attribute as attr.Rig for the database (collation utf8mb4_general_ci): give it once"
        )
        assert snapshot(lab, lab.session) == before
    else:
        ingest("sessions", path, pipeline=lab)
        rows = (lab.session.Session.Attribute & {"session_id": 2}).to_dicts()
        assert sorted((r["attribute_name"], r["attribute_value"]) for r in rows) == [("Rig", "a"), ("rig", "b")]


def test_names_of_one_list_and_stored_attributes_compare_by_the_collation(lab, tmp_path):
    listed = write(tmp_path, "subject,session_id,experimenter\nM001,3,ada;ADA\n")
    if lab.ci:
        with pytest.raises(
            InputError, match=r"a name listed twice \(the database compares names by collation utf8mb4_general_ci"
        ):
            ingest("sessions", listed, pipeline=lab)
    else:
        with pytest.raises(InputError, match="unknown experimenter"):
            ingest("sessions", listed, pipeline=lab)
    ingest("sessions", write(tmp_path, "subject,session_id,attr.Gain\nM001,4,2\n"), pipeline=lab)
    respelt = write(tmp_path, "subject,session_id,attr.gain\nm001,4,2\n")
    if lab.ci:  # the same session, the same attribute, the same value: present
        report = ingest("sessions", respelt, pipeline=lab)
        assert report.new == 0 and len(report.matched) == 2
        assert f"{respelt} row 2, column attr.gain: 'gain' is the stored 'Gain'" in str(report)
    else:
        with pytest.raises(InputError, match="unknown subject"):
            ingest("sessions", respelt, pipeline=lab)
