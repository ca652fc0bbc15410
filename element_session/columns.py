"""The column vocabulary of ingest's input and of the CSV output, and the kinds of rows ingest reads.

Light on purpose (no DataJoint, no pandas): the command line offers ``KINDS`` as choices without
importing ingest, and ingest, the text forms and the web forms share one spelling of each column.
"""

from __future__ import annotations

from typing import Literal

#: Prefix of a session attribute's column: ``attr.<name>``.
ATTRIBUTE_PREFIX = "attr."
#: Separator of several experimenters or projects in one text cell.
LIST_SEPARATOR = ";"
#: Session columns of ingest's input and of the CSV output, after the subject key.
SESSION_FIELDS = ("session_datetime", "session_id", "experimenter", "project", "session_dir", "session_note")
#: The optional column of a session's status (:mod:`element_session.status`): ingest sets it for new
#: sessions (none stored counts as ``acquired``); ``sessions --format csv`` writes it.
STATUS_COLUMN = "status"

Kind = Literal["subjects", "experimenters", "projects", "sessions"]
#: What ingest reads: the rows of one reference table, or sessions.
KINDS: tuple[str, ...] = ("subjects", "experimenters", "projects", "sessions")
#: The linking module's table of each reference kind.
REFERENCE_TABLES = {"subjects": "Subject", "experimenters": "Experimenter", "projects": "Project"}
