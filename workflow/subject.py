"""Experimental subjects, in the layout of the published subject element (with a wider key)."""

import datajoint as dj

schema = dj.Schema()


@schema
class Subject(dj.Manual):
    """One experimental subject (an animal or a participant)."""

    definition = """
    # an experimental subject
    subject: varchar(32)  # subject name (the published element allowed 8 characters)
    ---
    subject_nickname='': varchar(64)  # informal name
    sex: enum('M', 'F', 'U')  # M: male, F: female, U: unknown
    subject_birth_date: date  # date of birth
    subject_description='': varchar(1024)  # free-form description
    """
