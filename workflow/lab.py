"""People and projects of a lab, in the layout of the published lab element."""

import datajoint as dj

schema = dj.Schema()


@schema
class User(dj.Lookup):
    """One person of the lab; pipelines use it as the session's ``Experimenter``."""

    definition = """
    # a person of the lab
    user: varchar(32)  # short user name
    ---
    user_email='': varchar(128)  # e-mail address
    user_cellphone='': varchar(32)  # phone number
    user_fullname='': varchar(64)  # full name
    """


@schema
class Project(dj.Lookup):
    """One research project that sessions belong to."""

    definition = """
    # a research project
    project: varchar(32)  # short project name
    ---
    project_description='': varchar(1024)  # what the project is about
    """
