"""Session tables whose sessions are identified by subject and session number.

Activate with :func:`activate`; the linking module provides ``Subject``, ``Project`` and
``Experimenter``. Everything but ``Session`` is shared with
:mod:`element_session.session_with_datetime`.
"""

import datajoint as dj

from . import linking, tables

schema = dj.Schema()
activate = linking.activator(schema)


@schema
class Session(dj.Manual):
    """One experimental session: a subject's recording identified by its session number."""

    definition = """
    # an experimental session of a subject
    -> Subject
    session_id: int32  # session number, unique per subject
    ---
    session_datetime=null: datetime  # start time of the session, in UTC, where known
    """

    Attribute = tables.attribute_part()


SessionDirectory, SessionExperimenter, SessionNote, ProjectSession, SessionTimezone = tables.declare_shared_tables(
    schema, __name__
)
