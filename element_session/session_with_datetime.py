"""Session tables whose sessions are identified by subject and start time.

Activate with :func:`activate`; the linking module provides ``Subject``, ``Project`` and
``Experimenter``. Everything but ``Session`` is shared with :mod:`element_session.session_with_id`.
"""

import datajoint as dj

from . import linking, tables

schema = dj.Schema()
activate = linking.activator(schema)


@schema
class Session(dj.Manual):
    """One experimental session: a subject's recording that started at one instant (UTC)."""

    definition = """
    # an experimental session of a subject
    -> Subject
    session_datetime: datetime  # start time of the session, in UTC
    ---
    session_id=null: int32  # optional session number
    """

    Attribute = tables.attribute_part()


SessionDirectory, SessionExperimenter, SessionNote, ProjectSession, SessionTimezone = tables.declare_shared_tables(
    schema, __name__
)
