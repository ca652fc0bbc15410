"""Typed errors of element-session: each says what was wrong, where, and how to fix it."""

from __future__ import annotations


class ElementSessionError(Exception):
    """Base class of every error this package raises on purpose."""


class LinkingModuleError(ElementSessionError):
    """Raised by ``activate()`` when the linking module lacks an upstream table it must provide."""


class ActivationError(ElementSessionError):
    """Raised when a session module is activated again under a different schema name."""


class LocalServerError(ElementSessionError):
    """Raised when a private local database server cannot be set up, started or reached."""
