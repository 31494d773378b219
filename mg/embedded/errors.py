"""The one error of the embedded server."""

from __future__ import annotations


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be set up, started or stopped; the message says why."""
