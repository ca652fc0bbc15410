"""The published element's ``session_to_nwb`` API, called as downstream exporters call it.

element-array-ephys's ``ecephys_session_to_nwb`` and element-calcium-imaging's
``imaging_session_to_nwb`` take ``session_to_nwb`` from their linking module and call
``session_to_nwb(session_key, lab_key=..., project_key=..., protocol_key=...,
additional_nwbfile_kwargs=...)``. The pipeline below lays out its lab and subject tables as
element-lab and element-animal do (DataJoint 2.x syntax); it runs in a fresh process, since a session
module is activated once per process.
"""

from __future__ import annotations

import json
import secrets
import textwrap

PIPELINE = '''
import datetime as dt
import os

import datajoint as dj
import pynwb

from element_session import session
from element_session.export.nwb import session_to_nwb  # as workflows import it into pipeline.py

prefix = os.environ["DATABASE_PREFIX"] + "{tag}_"
lab = dj.Schema(prefix + "lab")
subject = dj.Schema(prefix + "subject")


@lab
class Organization(dj.Manual):
    definition = """
    organization: varchar(24)  # abbreviated organization name
    ---
    org_name: varchar(255)  # full organization name
    org_comment='': varchar(2048)
    """


@lab
class Lab(dj.Lookup):
    definition = """
    lab: varchar(24)  # abbreviated lab name
    ---
    lab_name: varchar(255)  # full lab name
    institution: varchar(255)
    address: varchar(255)
    time_zone: varchar(64)
    """

    class Organization(dj.Part):
        definition = """
        -> master
        -> Organization
        """


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
class ProtocolType(dj.Lookup):
    definition = """
    protocol_type: varchar(32)
    """


@lab
class Protocol(dj.Lookup):
    definition = """
    protocol: varchar(36)
    ---
    -> ProtocolType
    protocol_description='': varchar(255)
    """


@lab
class Project(dj.Lookup):
    definition = """
    project: varchar(32)
    ---
    project_description='': varchar(1024)
    """


@lab
class ProjectKeywords(dj.Manual):
    definition = """
    -> Project
    keyword: varchar(32)
    """


@lab
class ProjectPublication(dj.Manual):
    definition = """
    -> Project
    publication: varchar(256)
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


if {with_functions}:  # the functions element-lab and element-animal export, as a linking module imports them

    def subject_to_nwb(session_key):
        row = (Subject & session_key).to_dicts()[0]
        subject_id = "from-element-animal:" + row["subject"]
        return pynwb.file.Subject(subject_id=subject_id, sex=row["sex"], species="Mus musculus")

    def element_lab_to_nwb_dict(lab_key=None, project_key=None, protocol_key=None):
        return {{"lab": "from-element-lab", "keywords": ["k"]}}


Experimenter = User
session.activate(prefix + "session", linking_module=__name__)
'''

CALLS = """
import datetime as dt, json
import pub_pipeline_{tag} as pipeline

pipeline.Organization.insert1({{"organization": "UW", "org_name": "University of Washington"}})
pipeline.Lab.insert1({{"lab": "LabA", "lab_name": "The A Lab", "institution": "UW (old)", "address": "Seattle",
                       "time_zone": "America/Los_Angeles"}})
pipeline.Lab.Organization.insert1({{"lab": "LabA", "organization": "UW"}})
pipeline.ProtocolType.insert1({{"protocol_type": "IACUC"}})
pipeline.Protocol.insert1({{"protocol": "P-17", "protocol_type": "IACUC", "protocol_description": "surgery"}})
pipeline.Project.insert1({{"project": "maps", "project_description": "cortical maps"}})
pipeline.ProjectKeywords.insert([{{"project": "maps", "keyword": "v1"}}, {{"project": "maps", "keyword": "mouse"}}])
pipeline.ProjectPublication.insert1({{"project": "maps", "publication": "doi:10.1/x"}})
pipeline.Subject.insert1({{"subject": "m1", "sex": "F", "subject_birth_date": "2023-01-02"}})
pipeline.User.insert1({{"user": "ada", "user_fullname": "Lovelace, Ada"}})
key = {{"subject": "m1", "session_datetime": dt.datetime(2024, 3, 10, 13, 30)}}
pipeline.session.Session.insert1(key)
pipeline.session.SessionTimezone.insert1({{**key, "session_timezone": "America/New_York"}})
pipeline.session.SessionExperimenter.insert1({{**key, "user": "ada"}})

TEXT = ("institution", "lab", "experiment_description", "protocol", "notes", "session_description")

def describe(f):
    return {{name: getattr(f, name) for name in TEXT}} | {{
        "keywords": None if f.keywords is None else [str(k) for k in f.keywords],
        "related_publications": None if f.related_publications is None else list(f.related_publications),
        "start": f.session_start_time.isoformat(), "subject": f.subject.subject_id,
        "experimenter": None if f.experimenter is None else list(f.experimenter)}}

out = {{"key_alone": describe(pipeline.session_to_nwb(key))}}
out["published_call"] = describe(pipeline.session_to_nwb(
    key, lab_key={{"lab": "LabA"}}, project_key={{"project": "maps"}}, protocol_key={{"protocol": "P-17"}},
    additional_nwbfile_kwargs={{"session_description": "ephys session"}}))
try:
    pipeline.session_to_nwb(key, lab_key={{"lab": "LabZ"}})
except Exception as err:
    out["unknown_lab"] = [type(err).__name__, str(err)]
from element_session import session_with_id
session_with_id.activate(pipeline.prefix + "session_id", linking_module=pipeline)
session_with_id.Session.insert1({{"subject": "m1", "session_id": 5, "session_datetime": key["session_datetime"]}})
out["both_active"] = describe(pipeline.session_to_nwb(key))["start"]  # only one variant's key is covered
try:
    pipeline.session_to_nwb({{**key, "session_id": 5}})
except Exception as err:
    out["both_hold"] = [type(err).__name__, str(err)]
print(json.dumps(out))
"""


def run_pipeline(run_python, tmp_path, with_functions: bool) -> dict:
    tag = secrets.token_hex(3)
    (tmp_path / f"pub_pipeline_{tag}.py").write_text(PIPELINE.format(tag=tag, with_functions=with_functions))
    result = run_python(textwrap.dedent(CALLS.format(tag=tag)))
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_published_call_reads_element_lab_and_animal_tables(run_python, tmp_path):
    out = run_pipeline(run_python, tmp_path, with_functions=False)
    alone = out["key_alone"]
    assert alone["start"] == "2024-03-10T09:30:00-04:00"  # 13:30 UTC, in the session's own zone
    assert alone["subject"] == "m1" and alone["experimenter"] == ["Lovelace, Ada"]
    assert alone["lab"] is None and alone["institution"] is None
    full = out["published_call"]
    assert full["institution"] == "University of Washington"  # Lab.Organization -> Organization.org_name
    assert full["lab"] == "The A Lab"
    assert full["experiment_description"] == "cortical maps"
    assert full["keywords"] == ["mouse", "v1"] and full["related_publications"] == ["doi:10.1/x"]
    assert full["protocol"] == "P-17" and full["notes"] == "surgery"  # the session has no note of its own
    assert full["session_description"] == "ephys session"  # additional_nwbfile_kwargs win
    assert full["start"] == alone["start"]
    name, message = out["unknown_lab"]
    assert name == "NwbExportError" and "lab_key {'lab': 'LabZ'} names 0 rows" in message
    assert out["both_active"] == alone["start"]
    name, message = out["both_hold"]
    assert name == "SessionNotFoundError" and "both activated session schemas" in message


def test_linking_module_functions_of_element_lab_and_animal_are_used(run_python, tmp_path):
    out = run_pipeline(run_python, tmp_path, with_functions=True)
    assert out["key_alone"]["subject"] == "from-element-animal:m1"
    full = out["published_call"]
    assert full["lab"] == "from-element-lab" and full["keywords"] == ["k"]
    assert full["start"] == "2024-03-10T09:30:00-04:00"


def test_no_activated_session_module_is_refused_clearly(run_python):
    code = """
import json, datetime as dt
from element_session.export.nwb import session_to_nwb
try:
    session_to_nwb({"subject": "m1", "session_datetime": dt.datetime(2024, 1, 1)})
except Exception as err:
    print(json.dumps([type(err).__name__, str(err)]))
"""
    name, message = json.loads(run_python(code).stdout.strip().splitlines()[-1])
    assert name == "ActivationError" and "no session module is activated" in message
