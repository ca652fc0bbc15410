"""Property: any set of sessions that ingest accepts survives export and import exactly (and a second import
writes nothing). The round trip is in this process: the sessions are exported, deleted, and imported back."""

from __future__ import annotations

from hypothesis import given

from element_session.ingest import ingest
from element_session.transfer import export_sessions, import_sessions
from tests.test_roundtrip_properties import PEOPLE, PROJECTS, SETTINGS, SUBJECTS, clear, sessions
from tests.transfer_dump import assert_same_content, dump


@SETTINGS
@given(rows=sessions())
def test_ingested_sessions_survive_export_and_import_exactly(references, rows, tmp_path):
    pipeline = references(SUBJECTS, PEOPLE, PROJECTS)
    clear(pipeline)
    for row in rows:  # each row says its own zone: naive times are read in it
        zone = row.pop("zone")
        ingest("sessions", [row], pipeline=pipeline, timezone=zone)
    before = dump(pipeline, SUBJECTS)
    path = tmp_path / "sessions.zip"
    exported = export_sessions(path, pipeline.session, subject=SUBJECTS, overwrite=True)  # one path, every example
    clear(pipeline)  # the sessions and their parts go; the subjects, people and projects stay
    report = import_sessions(path, pipeline)
    references_rows = sum(exported.rows[role] for role in ("subject.Subject", "lab.User", "lab.Project"))
    assert report.present == references_rows
    assert report.written == sum(exported.rows.values()) - references_rows
    assert_same_content(before, dump(pipeline, SUBJECTS))
    assert import_sessions(path, pipeline).written == 0
