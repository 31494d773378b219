"""Driver errors translated at the edge, by SQLSTATE class, keeping the cause.

The message of a translated error reaches clients (a 503's body): it says what happened in
words, never the driver's text, which can name the database's host and port. That text goes
to the log (at most one line every few seconds, so an outage does not flood it) and stays the
translated error's ``__cause__``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import asyncpg

from mg.errors import DeadlineExceeded, MgError, StorageUnavailable
from mg.startup import BadConfiguration, CannotRun, DatabaseRefused

# SQLSTATE classes and codes that mean "the database is (transiently) not there for us":
# 08 connection exception, 53 insufficient resources, 57P0x shutdown / cannot connect now,
# 40001 serialisation failure, 40P01 deadlock (both retryable: nothing was applied);
# 25P03 idle-in-transaction timeout and 25P04 transaction timeout: Postgres ended a step's
# session that outlived its deadline and margin (step_session.py), rolling it back.
_TRANSIENT_CLASSES = ("08", "53", "58")
_TRANSIENT_CODES = {"57P01", "57P02", "57P03", "40001", "40P01", "25P03", "25P04"}
_LOCK_TIMEOUT = "55P03"
_QUERY_CANCELED = "57014"
_CONFLICT_CODES = {"40001", "40P01"}
_LOG_EVERY = 10.0  # seconds between two log lines about unavailable storage

log = logging.getLogger("mg.postgres")
_last_logged = [-_LOG_EVERY]  # when the last line about unavailable storage was written


def _unavailable(error: BaseException, doing: str, state: str = "") -> StorageUnavailable:
    now = time.monotonic()
    if now - _last_logged[0] >= _LOG_EVERY:
        _last_logged[0] = now
        log.warning("storage unavailable while %s: %s: %s", doing, type(error).__name__, error)
    if state in _CONFLICT_CODES:
        words = "a conflict with a concurrent transaction"
    elif state[:4] == "25P0":
        words = "Postgres ended a transaction left idle too long"
    elif state[:2] == "53":
        words = "Postgres is short of resources"
    elif state[:2] == "58":
        words = "Postgres reports a system error"
    else:
        words = "Postgres does not answer"
    return StorageUnavailable(f"storage unavailable while {doing}: {words}")


def translate(error: BaseException, *, doing: str) -> MgError | None:
    """The mg error for a driver or transport error, or ``None`` if it is a bug to surface."""
    if isinstance(error, MgError):
        return error
    if isinstance(error, TimeoutError):
        return DeadlineExceeded(f"the deadline passed while {doing}")
    if isinstance(error, asyncpg.PostgresError):
        state = getattr(error, "sqlstate", None) or ""
        if state == _LOCK_TIMEOUT:
            return DeadlineExceeded(f"the deadline passed while {doing} (lock wait)")
        if state == _QUERY_CANCELED:
            return DeadlineExceeded(f"the deadline passed while {doing} (query cancelled)")
        if state in _TRANSIENT_CODES or state[:2] in _TRANSIENT_CLASSES:
            return _unavailable(error, doing, state)
        return None
    if isinstance(
        error,
        asyncpg.InterfaceError
        | asyncpg.exceptions.InternalClientError
        | OSError
        | ConnectionError
        | EOFError,
    ):
        return _unavailable(error, doing)
    return None


# Postgres answers, and says no: waiting will not change its mind. 28: invalid authorization
# (password, role, pg_hba), 3D000: no such database, 42501: no privilege (to create mg's tables).
_REFUSED_CLASSES = ("28",)
_REFUSED_CODES = {"3D000", "42501"}


def refusal(error: BaseException) -> CannotRun | None:
    """The cause that stops a node starting up, when ``error`` is not an outage: a database URL
    the driver cannot use, or a Postgres that refuses this node."""
    if isinstance(error, asyncpg.exceptions.ClientConfigurationError):
        return BadConfiguration(f"the database URL cannot be used: {error}")
    if isinstance(error, asyncpg.PostgresError):
        state = getattr(error, "sqlstate", None) or ""
        if state[:2] in _REFUSED_CLASSES or state in _REFUSED_CODES:
            return DatabaseRefused(f"Postgres refuses this node: {error} (SQLSTATE {state})")
    return None


T = TypeVar("T")


class _Runs(Protocol):
    """``Bridge.run`` and ``Session.run``: a unit of work on a connection, with a timeout."""

    def __call__(self, work: Callable[[Any], Awaitable[T]], *, timeout: float) -> Awaitable[T]: ...


async def run_translated(
    run: _Runs, work: Callable[[Any], Awaitable[T]], *, doing: str, timeout: float
) -> T:
    """``run(work)``, with driver and transport errors raised as mg errors (``translate``);
    anything else (a bug) surfaces unchanged."""
    try:
        return await run(work, timeout=timeout)
    except Exception as error:
        mapped = translate(error, doing=doing)
        if mapped is None or mapped is error:
            raise
        raise mapped from error
