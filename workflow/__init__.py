"""A ready DataJoint pipeline built on element-session: reference tables, sessions, downstream.

Import :mod:`workflow.pipeline` to activate it (schema names carry ``DATABASE_PREFIX``).
"""
