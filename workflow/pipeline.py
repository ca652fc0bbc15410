"""The workflow pipeline: importing this module activates, in order, the reference schemas,
the session schema (with this module as its linking module) and the downstream schemas.

Schema names carry the prefix of the environment variable ``DATABASE_PREFIX`` (default empty).
The connection comes from DataJoint's settings (``DJ_HOST``, ``DJ_USER``, ``DJ_PASS``,
``DJ_PORT``, ``DJ_BACKEND`` or ``datajoint.json``).
"""

import os

import datajoint as dj

from element_session import session_with_datetime as session
from element_session.linking import check_identifiers
from element_session.locks import activation_lock
from workflow import lab, subject
from workflow.lab import Project, User
from workflow.subject import Subject

__all__ = ["DATABASE_PREFIX", "Experimenter", "Project", "Subject", "User", "lab", "session", "subject"]

DATABASE_PREFIX = os.environ.get("DATABASE_PREFIX", "")

for _name in ("lab", "subject", "session", "inventory"):  # every schema name, before any schema is created
    check_identifiers(dj.conn().adapter.backend, DATABASE_PREFIX + _name, [])

for _schema, _name in ((lab.schema, "lab"), (subject.schema, "subject")):
    with activation_lock(dj.conn(), DATABASE_PREFIX + _name):  # an array's tasks may all start at once
        _schema.activate(DATABASE_PREFIX + _name)

Experimenter = User

session.activate(DATABASE_PREFIX + "session", linking_module=__name__)

# Downstream schemas, after the session schema they depend on.
from workflow import inventory  # noqa: E402

inventory.activate(DATABASE_PREFIX + "inventory", session_module=session)
__all__ += ["inventory"]
