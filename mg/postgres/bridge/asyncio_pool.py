"""The asyncio half shared by both bridges: the pool and units of work (sessions and LISTEN live
in ``bridge_session`` and ``bridge_listen``; dedicated sessions reuse the session owner).

Everything here runs on the bridge's asyncio loop. A subclass supplies only the crossing:
``_call`` runs one coroutine on the loop and waits for it from trio, and ``_to_trio`` schedules a
plain callable on the trio side from the loop. ``_call`` must follow one rule: when the trio
caller is cancelled, cancel the asyncio task once and keep waiting until it has finished, then
raise ``trio.Cancelled`` (or return the result if the task completed anyway). Waiting is what
makes "the cancelled call has returned" mean "its transaction is rolled back and its connection
is back in the pool", which callers rely on (an advisory lock held by a cancelled step must be
free before the retry). The wait is bounded because every cleanup below has its own timeout.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypedDict, TypeVar, cast

import asyncpg
import trio

from mg.postgres.bridge.interface import Bridge, DedicatedSession, Session, Work
from mg.postgres.bridge.listen import Listener, Lost, Notifications
from mg.postgres.bridge.session import (
    BridgeSession,
    DedicatedBridgeSession,
    SessionOwner,
    breaks_connection,
)

T = TypeVar("T")
_log = logging.getLogger(__name__)

Reset = Literal["cheap", "full"]


class PoolOptions(TypedDict, total=False):
    """The pool's settings, as ``AsyncioPoolBridge`` takes them (subclasses pass them on)."""

    min_size: int
    max_size: int
    connect_timeout: float
    release_timeout: float
    reset: Reset


if TYPE_CHECKING:  # generic in the stubs only
    from asyncpg.pool import PoolConnectionProxy

    Pooled: TypeAlias = PoolConnectionProxy[asyncpg.Record]


async def _cheap_reset(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query (advisory unlock all, CLOSE ALL, UNLISTEN *, RESET ALL).

    The pool still rolls back an open transaction before calling this. mg leaves nothing else
    on pooled connections (transaction-level locks and SET LOCAL only; LISTEN has its own
    connections), and the reset query is one round trip per unit of work.
    """


class AsyncioPoolBridge(Bridge):
    """``Bridge`` over an asyncpg pool living on some asyncio loop; see the module docstring."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        release_timeout: float = 5.0,
        reset: Reset = "cheap",
    ) -> None:
        """``release_timeout`` bounds cleanup (waiting for a cancelled query, rollback, pool
        reset, closing); a connection that misses it is terminated instead of reused.
        ``reset="full"`` restores asyncpg's per-release reset query (see ``_cheap_reset``)."""
        self.dsn = dsn
        self.min_size, self.max_size = min_size, max_size
        self.connect_timeout, self.release_timeout = connect_timeout, release_timeout
        self.reset = reset
        self._pool: asyncpg.Pool | None = None
        self._closed = False
        self._listeners: set[Listener] = set()  # touched on the loop side only
        self._dedicated: set[asyncpg.Connection] = set()  # likewise

    # -- the crossing, supplied by subclasses ------------------------------------------------

    @abc.abstractmethod
    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it from trio (rules in the module docstring)."""

    @abc.abstractmethod
    def _to_trio(self, fn: Callable[..., object], *args: object) -> None:
        """From the loop, have ``fn(*args)`` called soon on the trio side; must not raise."""

    # -- the asyncio side ---------------------------------------------------------------------

    @staticmethod
    def _on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Log what asyncio reports; trio-asyncio's default would raise it and kill the loop."""
        _log.error(
            "asyncio on the Postgres bridge: %s",
            context.get("message", "unhandled error"),
            exc_info=context.get("exception"),
        )

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None or self._closed:
            raise trio.ClosedResourceError("the Postgres bridge is not open")
        return self._pool

    async def _create_pool(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=self.min_size,
            max_size=self.max_size,
            timeout=self.connect_timeout,
            reset=_cheap_reset if self.reset == "cheap" else None,
        )

    async def _unit(self, work: Work[T], limit: float | None) -> T:
        pool = self._require_pool()
        conn: Pooled | None = None
        broken = False
        try:
            async with asyncio.timeout(limit):
                conn = await pool.acquire()
                return await work(cast(asyncpg.Connection, conn))
        except BaseException as error:
            broken = breaks_connection(error)
            raise
        finally:
            # Outside the timeout: a unit that finished in time is not reported as timed out
            # because its release was slow.
            if conn is not None:
                await self._give_back(conn, broken)

    async def _give_back(self, conn: Pooled, broken: bool = False) -> None:
        """Return ``conn`` to the pool with no transaction open, or terminate it."""
        pool = self._pool
        assert pool is not None, "connections exist only while the pool does"
        try:
            conn.is_closed()
        except asyncpg.InterfaceError:
            # The server ended the session (an idle-in-transaction timeout, a terminated
            # backend): asyncpg has already released the connection and detached its proxy.
            return
        try:
            if broken and not conn.is_closed():
                _log.info("terminating a connection left in doubt by its last unit of work")
                conn.terminate()
            elif conn.is_in_transaction():
                # asyncpg's release would roll back too, but it reports a transaction it did not
                # start (a raw BEGIN) to the loop's exception handler, and this path is expected.
                async with asyncio.timeout(self.release_timeout):
                    await conn.execute("ROLLBACK")
        except Exception as error:
            _log.warning("terminating a connection that failed to roll back: %r", error)
            conn.terminate()
        finally:
            # Even when cancelled during the rollback: a connection that is never released is
            # lost to the pool for good. The pool waits for a cancelled query to be
            # acknowledged, rolls back whatever is still open, and terminates the connection if
            # that fails or takes too long; the release itself is shielded inside asyncpg.
            try:
                await pool.release(conn, timeout=self.release_timeout)
            except Exception as error:
                _log.warning("a connection was terminated instead of released: %r", error)

    async def _shutdown(self) -> None:
        """Cancel everything still running on the loop, then close the pool (bounded)."""
        me = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not me]
        for task in others:
            task.cancel()
        # Nothing on a dedicated connection needs an orderly goodbye (closing is what frees its
        # session locks), and an orderly close would wait for the answer to its cancelled query,
        # whose cancel request is one of the tasks just cancelled.
        for conn in list(self._dedicated):
            conn.terminate()
        if others:
            await asyncio.wait(others, timeout=self.release_timeout)
        if self._pool is not None:
            try:
                async with asyncio.timeout(self.release_timeout):
                    await self._pool.close()
            except TimeoutError:
                self._pool.terminate()
        for listener in list(self._listeners):
            listener.terminate()

    async def _open_listener(self, listener: Listener) -> None:
        await listener.open(self.dsn, self.connect_timeout)
        self._listeners.add(listener)

    async def _close_listener(self, listener: Listener) -> None:
        self._listeners.discard(listener)
        await listener.close(self.release_timeout)

    # -- the trio side --------------------------------------------------------------------------

    async def _cleanup(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run cleanup to completion even if the caller is being cancelled."""
        with trio.move_on_after(self.release_timeout * 3, shield=True):
            # If the bridge was closed first, its shutdown did this cleanup.
            with contextlib.suppress(trio.ClosedResourceError):
                await self._call(coro)

    async def run(self, work: Work[T], *, timeout: float | None = None) -> T:
        return await self._call(self._unit(work, timeout))

    @asynccontextmanager
    async def _session(self, acquire_limit: float | None, lazy: bool) -> AsyncIterator[Session]:
        owner = SessionOwner(self._require_pool().acquire, acquire_limit, self._give_back)
        if not lazy:
            await self._call(owner.start())
        session = BridgeSession(owner, self._call, started=not lazy)
        try:
            yield session
        finally:
            # A lazy session that never ran holds nothing. (A first run that was cancelled may
            # or may not have acquired: it counts as started, and finishing is idempotent.)
            if session.started and not session.finished:
                await self._cleanup(owner.finish())

    def session(
        self, *, timeout: float | None = None, lazy: bool = False
    ) -> AbstractAsyncContextManager[Session]:
        return self._session(timeout, lazy)

    @asynccontextmanager
    async def _dedicated_session(
        self, connect_limit: float | None, server_settings: Mapping[str, str] | None
    ) -> AsyncIterator[DedicatedSession]:
        self._require_pool()  # refused on a closed bridge, like everything else
        lost = trio.Event()
        limit = self.connect_timeout if connect_limit is None else connect_limit
        settings = dict(server_settings or {})

        def on_lost(_conn: object) -> None:
            self._to_trio(lost.set)

        async def connect() -> asyncpg.Connection:
            conn = await asyncpg.connect(self.dsn, timeout=limit, server_settings=settings)
            conn.add_termination_listener(on_lost)
            self._dedicated.add(conn)
            return conn

        async def close(conn: asyncpg.Connection, broken: bool) -> None:
            self._dedicated.discard(conn)
            conn.remove_termination_listener(on_lost)  # our own close is not a loss
            if broken:
                conn.terminate()
                return
            try:
                await conn.close(timeout=self.release_timeout)
            except Exception as error:
                _log.warning("terminating a dedicated connection that failed to close: %r", error)
                conn.terminate()

        owner = SessionOwner(connect, limit, close)
        await self._call(owner.start())
        try:
            yield DedicatedBridgeSession(owner, self._call, lost)
        finally:
            await self._cleanup(owner.finish())

    def dedicated(
        self, *, timeout: float | None = None, server_settings: Mapping[str, str] | None = None
    ) -> AbstractAsyncContextManager[DedicatedSession]:
        return self._dedicated_session(timeout, server_settings)

    @asynccontextmanager
    async def _listen(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        # Unbounded: the loop side cannot wait for a slow reader, and payloads are small wake-ups.
        send, receive = trio.open_memory_channel[str | Lost](math.inf)
        listener = Listener(channel, send, self._to_trio)
        with send, receive:
            await self._call(self._open_listener(listener))
            try:
                yield Notifications(receive, channel)
            finally:
                await self._cleanup(self._close_listener(listener))

    def listen(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[str]]:
        return self._listen(channel)

    @property
    def pool_stats(self) -> dict[str, Any]:
        pool = self._pool
        if pool is None:
            return {"size": 0, "idle": 0, "max": self.max_size}
        return {"size": pool.get_size(), "idle": pool.get_idle_size(), "max": pool.get_max_size()}
