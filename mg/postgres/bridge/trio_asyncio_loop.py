"""The alternative bridge: asyncpg on a trio-asyncio loop inside the trio run.

Kept so the two bridges stay measurable side by side (``database.bridge = "trio-asyncio"``).

``import trio_asyncio`` patches asyncio process-wide (its loop getters and policy), so it happens
in ``open()``, never at import time of this module.

The loop must outlive any one task, but ``trio_asyncio.open_loop()`` is an async context manager
that has to be entered and exited by the same task. ``open()`` therefore starts a *system task*
(``trio.lowlevel.spawn_system_task``) that enters the loop and waits until ``close()`` asks it to
leave, so ``open``/``close`` work from any task without a nursery, and the bridge is also an async
context manager. If the trio run ends without ``close()``, trio cancels the system task and the
loop still shuts down. The loop object is kept and every coroutine is handed to it explicitly:
tasks that do not descend from the one that opened the loop (quart-trio handlers, for one) cannot
find it through trio-asyncio's context variable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, Unpack

import trio

from mg.postgres.bridge.asyncio_pool import AsyncioPoolBridge, PoolOptions

T = TypeVar("T")
_log = logging.getLogger(__name__)


class TrioAsyncioBridge(AsyncioPoolBridge):
    """asyncpg on a trio-asyncio loop held by a system task; see ``AsyncioPoolBridge``."""

    def __init__(self, dsn: str, **options: Unpack[PoolOptions]) -> None:
        super().__init__(dsn, **options)
        self._loop: Any = None  # trio_asyncio.TrioEventLoop, untyped
        self._run_aio_future: Callable[[asyncio.Future[Any]], Any] | None = None
        self._leave = trio.Event()
        self._left: trio.Event | None = None  # set once the system task has been started

    async def open(self) -> None:
        if self._loop is not None or self._closed:
            raise RuntimeError("a bridge is opened once")
        import trio_asyncio

        self._run_aio_future = trio_asyncio.run_aio_future
        opened, self._left = trio.Event(), trio.Event()
        failure: list[BaseException] = []
        trio.lowlevel.spawn_system_task(self._hold_loop, trio_asyncio, opened, failure)
        try:
            await opened.wait()
            if failure:
                raise failure[0]
            await self._call(self._create_pool())
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.close()
            raise

    async def _hold_loop(
        self, trio_asyncio: Any, opened: trio.Event, failure: list[BaseException]
    ) -> None:
        assert self._left is not None
        # An exception escaping a system task would crash the whole trio run: keep them all here.
        try:
            async with trio_asyncio.open_loop() as loop:
                loop.set_exception_handler(self._on_loop_error)
                self._loop = loop
                opened.set()
                await self._leave.wait()
        except BaseException as error:
            if not opened.is_set():
                failure.append(error)
            elif not isinstance(error, trio.Cancelled):  # Cancelled: the trio run is ending
                _log.error("the trio-asyncio loop of the Postgres bridge failed", exc_info=error)
        finally:
            self._loop = None
            self._closed = True
            opened.set()
            self._left.set()

    async def close(self) -> None:
        if self._leave.is_set():
            return
        self._closed = True  # new calls are refused from here on
        with trio.CancelScope(shield=True):
            try:
                if self._loop is not None:
                    await self._submit(self._shutdown())
            finally:
                self._leave.set()
                if self._left is not None:
                    with trio.move_on_after(self.release_timeout * 3):
                        await self._left.wait()

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None or self._closed:
            coro.close()
            raise trio.ClosedResourceError("the Postgres bridge is not open")
        return await self._submit(coro)

    async def _submit(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._run_aio_future is not None
        task: asyncio.Task[T] = self._loop.create_task(coro)
        # run_aio_future cancels the task on trio cancellation and waits for it to finish, then
        # raises trio.Cancelled: the same contract as the thread bridge's hand-off.
        try:
            result: T = await self._run_aio_future(task)
        except asyncio.CancelledError:
            # Not asked for by the trio side: the bridge is shutting down.
            raise trio.ClosedResourceError("the Postgres bridge was closed") from None
        return result

    def _to_trio(self, fn: Callable[..., object], *args: object) -> None:
        # The loop runs inside trio, in this very thread: call straight away.
        fn(*args)
