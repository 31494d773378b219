"""The one door from trio to asyncpg.

asyncpg is an asyncio library and mg runs on trio. Every database call goes through a
``Bridge``: trio code hands it *work*, an asyncio coroutine function taking a connection, and the
bridge runs that work as one coroutine on the asyncio side. Running a whole unit of work as one
asyncio coroutine is what makes cancellation safe: when a trio caller is cancelled, the asyncio
task is cancelled once, and its cleanup (rollback, release to the pool) runs to completion on the
asyncio side instead of being cancelled with the caller.

Two implementations share this interface (``database.bridge`` in the config):

- ``thread`` (default): asyncpg on its own asyncio loop in a dedicated thread.
- ``trio-asyncio``: asyncpg on a trio-asyncio loop inside the trio run.

``mg.postgres.bridge.factory.make_bridge(kind, dsn, **options)`` builds either.

Cancellation contract: a trio caller cancelled during ``run`` (or ``Session.run``) gets
``trio.Cancelled`` only once the asyncio task has finished unwinding, so when the call has
returned, its transaction is rolled back and its transaction-level locks are free. That wait is
bounded by the bridge's ``release_timeout`` (a connection that cannot be cleaned up in time is
terminated, never reused), provided ``work`` itself lets ``asyncio.CancelledError`` through.
If the work had already completed when the cancel arrived, its result is returned instead and
trio raises ``Cancelled`` at the caller's next checkpoint. Calls on a closed bridge, and calls
still running when it is closed, raise ``trio.ClosedResourceError``.

Pooled connections are not reset on release (see ``asyncio_pool``), so no session state may be
left on them. Work that needs session state, above all a session-level advisory lock held for as
long as a node leads something, uses ``dedicated()``: a connection of its own, closed at the end.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Self, TypeVar

import asyncpg
import trio

T = TypeVar("T")

Work = Callable[[asyncpg.Connection], Awaitable[T]]
"""An asyncio coroutine function run on the bridge's loop with a connection."""


class Session(abc.ABC):
    """A connection held across trio work (a step holds one across its processor call).

    Work run through ``run`` executes on the asyncio side, one at a time, on the same connection.
    When the session ends, by return or by cancellation, any open transaction is rolled back and
    the connection goes back to the pool; that cleanup cannot be cancelled by the trio caller.
    """

    @abc.abstractmethod
    async def run(self, work: Work[T], *, timeout: float | None = None, release: bool = False) -> T:
        """Run ``work`` on the session's connection. ``release=True`` makes it the session's
        last unit: the connection goes back to the pool in the same crossing, whatever the
        outcome (an open transaction is rolled back); later calls raise."""


class DedicatedSession(Session):
    """A session on a connection opened for it alone, closed when it ends.

    Closing the connection ends everything the server keeps for the session, session-level
    advisory locks included, whichever way the block is left. ``lost`` is set as soon as the
    connection drops (the server ended it, the network failed): from then on the session holds
    nothing, and ``run`` raises.
    """

    @property
    @abc.abstractmethod
    def lost(self) -> trio.Event: ...


class Bridge(abc.ABC):
    """A pool of asyncpg connections reachable from trio.

    Use ``open()``/``close()`` or ``async with bridge:``; either works from any trio task.
    """

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def open(self) -> None:
        """Create the pool (and, for ``thread``, start the loop thread)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the pool and stop the loop; safe to call twice."""

    @abc.abstractmethod
    async def run(self, work: Work[T], *, timeout: float | None = None) -> T:
        """Run ``work`` on a pooled connection and release it.

        ``timeout`` bounds the whole unit (acquire included); past it ``TimeoutError`` is raised
        on the trio side and the asyncio task is cancelled. Errors raised by ``work`` come back
        unchanged.
        """

    @abc.abstractmethod
    def session(
        self, *, timeout: float | None = None, lazy: bool = False
    ) -> AbstractAsyncContextManager[Session]:
        """Hold one pooled connection for the duration of the ``async with`` block.

        ``timeout`` bounds acquiring the connection. ``lazy=True`` acquires it in the first
        ``run`` instead of on entry (one crossing fewer; errors of the acquire then come from
        that ``run``).
        """

    @abc.abstractmethod
    def dedicated(
        self, *, timeout: float | None = None, server_settings: Mapping[str, str] | None = None
    ) -> AbstractAsyncContextManager[DedicatedSession]:
        """Open a connection for the duration of the ``async with`` block (never from the pool,
        never counted in it) and close it at the end; see ``DedicatedSession``.

        ``timeout`` bounds connecting (default: the bridge's connect timeout);
        ``server_settings`` are sent when connecting (``application_name``, keepalives...).
        """

    @abc.abstractmethod
    def listen(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[str]]:
        """LISTEN on ``channel`` over a dedicated connection (not from the pool).

        Yields an async iterator of notification payloads. If the connection drops the iterator
        raises ``ConnectionError``; the caller re-enters ``listen`` to re-establish it.
        """

    @property
    @abc.abstractmethod
    def pool_stats(self) -> dict[str, Any]:
        """``size``, ``idle``, ``max`` of the pool, for metrics."""
