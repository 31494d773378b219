"""A bridge session on the asyncio side: one task holds the connection, work items take turns.

Shared by both bridges through ``AsyncioPoolBridge``. The same owner serves pooled sessions
(acquire from the pool, give back to it) and dedicated ones (connect, close).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar, cast

import asyncpg
import trio

from mg.postgres.bridge.interface import DedicatedSession, Session, Work

T = TypeVar("T")
C = TypeVar("C")  # the connection held: a pool's proxy, or a connection of its own


def breaks_connection(error: BaseException) -> bool:
    """Whether a connection whose work raised ``error`` may be left in an unknown state.

    An error the server reported (a constraint, a lock timeout) leaves the connection fine, and
    so do mg's own errors raised inside work. Cancellation and timeouts are asyncpg's to clean
    up: it asks the server to cancel the query, which frees the transaction's locks at once
    (terminating instead would leave the backend running until it noticed). A lost connection
    or a client-side protocol error ("another operation is in progress") is not recoverable:
    such a connection is terminated rather than handed to the next unit of work.
    """
    if isinstance(error, asyncpg.PostgresConnectionError):
        return True
    return isinstance(
        error, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError | OSError
    ) and not isinstance(error, TimeoutError)


class SessionOwner(Generic[C]):
    """The asyncio task that holds a session's connection from acquire to release.

    Work items run in their callers' (cancellable) tasks, one at a time under ``_lock``. The owner
    itself is never cancelled by trio, only told to finish, so rolling back and releasing cannot
    be interrupted by the caller.
    """

    def __init__(
        self,
        acquire: Callable[[], Awaitable[C]],
        acquire_timeout: float | None,
        give_back: Callable[[C, bool], Awaitable[None]],
    ) -> None:
        self._acquire = acquire
        self._acquire_timeout = acquire_timeout
        self._give_back = give_back
        self._lock = asyncio.Lock()
        self._conn: C | None = None
        self._finish: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._broken = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        acquired: asyncio.Future[None] = loop.create_future()
        self._finish = asyncio.Event()
        self._task = loop.create_task(self._hold(acquired, self._finish))
        try:
            # Shielded so that cancelling start() does not cancel the future the owner sets.
            await asyncio.shield(acquired)
        except asyncio.CancelledError:
            # Whether it is still acquiring or already holding, the owner's own cleanup runs.
            self._task.cancel()
            await asyncio.wait([self._task])
            raise

    async def _hold(self, acquired: asyncio.Future[None], finish: asyncio.Event) -> None:
        try:
            async with asyncio.timeout(self._acquire_timeout):
                conn = await self._acquire()
        except Exception as error:
            # Reported once, through start(); the task itself ends quietly.
            acquired.set_exception(error)
            return
        except BaseException:
            acquired.cancel()
            raise
        self._conn = conn
        acquired.set_result(None)
        try:
            await finish.wait()
        finally:
            async with self._lock:  # lets a work item that is being cancelled unwind first
                self._conn = None
                await self._give_back(conn, self._broken)

    async def execute(self, work: Work[T], limit: float | None) -> T:
        async with self._lock:
            if self._conn is None:
                raise trio.ClosedResourceError("the session has ended")
            try:
                async with asyncio.timeout(limit):
                    # The proxy forwards every Connection method; the stubs do not relate them.
                    return await work(cast(asyncpg.Connection, self._conn))
            except BaseException as error:
                self._broken = self._broken or breaks_connection(error)
                raise

    async def execute_around(
        self, work: Work[T], limit: float | None, *, start: bool, finish: bool
    ) -> T:
        """``execute``, with the acquire before it and/or the release after it in the same
        coroutine, so that a step costs one crossing per unit of work and none for the
        session's own bookkeeping. The release runs whatever the work's outcome."""
        try:
            if start:
                await self.start()
            return await self.execute(work, limit)
        finally:
            if finish:
                await self.finish()

    async def finish(self) -> None:
        if self._finish is not None and self._task is not None:
            self._finish.set()
            await asyncio.wait([self._task])


class BridgeSession(Session):
    """The trio face of a ``SessionOwner``; ``call`` is the bridge's crossing to its loop.

    A lazy session (``started`` False) acquires its connection in its first ``run``.
    ``finished`` turns True once a ``run(release=True)`` has come back (with a result or an
    error): the connection is then back in the pool and the session's exit has nothing to do.
    """

    def __init__(
        self,
        owner: SessionOwner[Any],
        call: Callable[[Coroutine[Any, Any, Any]], Awaitable[Any]],
        *,
        started: bool = True,
    ) -> None:
        self._owner = owner
        self._call = call
        self._started = started
        self.finished = False

    @property
    def started(self) -> bool:
        return self._started

    async def run(self, work: Work[T], *, timeout: float | None = None, release: bool = False) -> T:
        if self.finished:
            raise trio.ClosedResourceError("the session has ended")
        start, self._started = not self._started, True
        if not (start or release):
            result: T = await self._call(self._owner.execute(work, timeout))
            return result
        coro = self._owner.execute_around(work, timeout, start=start, finish=release)
        try:
            result = await self._call(coro)
        except trio.Cancelled:
            raise  # the owner may not have finished: the session's exit makes sure
        except BaseException:
            self.finished = release
            raise
        self.finished = release
        return result


class DedicatedBridgeSession(BridgeSession, DedicatedSession):
    """A ``BridgeSession`` on a connection of its own; ``lost`` is set from the loop side."""

    def __init__(
        self,
        owner: SessionOwner[Any],
        call: Callable[[Coroutine[Any, Any, Any]], Awaitable[Any]],
        lost: trio.Event,
    ) -> None:
        super().__init__(owner, call)
        self._lost = lost

    @property
    def lost(self) -> trio.Event:
        return self._lost
