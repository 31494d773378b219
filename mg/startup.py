"""Causes that stop a node from starting, each with its own exit code (docs/upgrading.md).

Only a connection-level failure means "waiting for Postgres": the node retries, answering 503 on
``/health/ready`` with the cause meanwhile. The causes here cannot heal by waiting: the node logs
one line naming the cause and ``mg serve`` (or ``mg migrate``) exits with ``exit_code``.
"""

from __future__ import annotations

from typing import ClassVar


class CannotRun(Exception):
    """A cause retrying will not heal."""

    exit_code: ClassVar[int] = 1


class BadConfiguration(CannotRun):
    """The configuration cannot work (an unusable database URL, ...)."""

    exit_code = 2


class SchemaIncompatible(CannotRun):
    """The database schema and this mg's code cannot run together (a schema newer than the code
    knows, one that has left this code behind, a migration changed after it was applied, or a
    pending migration that would leave older nodes behind)."""

    exit_code = 3


class ResourceMissing(CannotRun):
    """A file mg needs at run time (its SQL) is not installed."""

    exit_code = 4


class DatabaseRefused(CannotRun):
    """Postgres answers but refuses this node: authentication, a missing database, no
    privilege to create mg's tables."""

    exit_code = 5
