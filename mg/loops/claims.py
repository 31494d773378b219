"""A loop that claims due work from the database and runs it, used for timers and for
notifications.

It claims in due-time order, never more than it has room to run (claims carry leases, and a
claim waiting in a local queue would only age its lease), sleeps exactly until the next due time
(no fixed floor, capped by the polling interval), and wakes early when poked. Errors of one item
stay with that item; errors of the loop itself (Postgres away) mean back-off, never an exit.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

import trio

from mg.core.clock import utc_now
from mg.errors import MgError
from mg.settings import Loop

log = logging.getLogger("mg.loops")

C = TypeVar("C")


class Waiter(Protocol):
    async def wait(self, seconds: float) -> bool: ...


class Waker(Protocol):
    def arm(self, topic: str) -> Waiter: ...

    def wake_local(self, topic: str) -> None: ...


class ClaimLoop(Generic[C]):
    def __init__(
        self,
        topic: str,
        claim: Callable[[datetime, int], Awaitable[list[C]]],
        next_due: Callable[[datetime], Awaitable[datetime | None]],
        handle: Callable[[C], Awaitable[None]],
        waker: Waker,
        settings: Loop,
        *,
        rearm_after_each: bool = False,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.topic = topic
        self._claim = claim
        self._next_due = next_due
        self._handle = handle
        self._waker = waker
        self._settings = settings
        self._rearm = rearm_after_each
        self._now = clock
        # A semaphore, not a CapacityLimiter: a slot is taken by the loop and given back by the
        # task that ran the item.
        self._limiter = trio.Semaphore(settings.concurrency)
        self.sleeping_until: datetime | None = None
        self.handled = 0
        self._claiming = trio.CancelScope()
        self._running = False
        # Set once the loop has stopped and its steps in flight are done (or it never ran).
        self.drained = trio.Event()

    def stop(self) -> None:
        """Claim nothing more; ``run`` returns once the items in flight are done."""
        self._claiming.cancel()
        if not self._running:
            self.drained.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                with self._claiming:
                    await self._claim_forever(nursery)
                # Leaving the nursery waits for the steps in flight: a stopping node drains them.
        finally:
            self._running = False
            self.drained.set()

    async def _claim_forever(self, nursery: trio.Nursery) -> None:
        backoff = 0.1
        while True:
            waiter = self._waker.arm(self.topic)
            await self._limiter.acquire()
            room = min(self._settings.batch, 1 + self._limiter.value)
            try:
                claims = await self._claim(self._now(), room)
                backoff = 0.1
            except Exception as error:
                # Whatever Postgres does, the loop backs off and tries again; it never exits.
                self._limiter.release()
                log.warning(
                    "%s loop: cannot claim (%s); retrying in %.1fs",
                    self.topic,
                    error,
                    backoff,
                    exc_info=not isinstance(error, MgError | OSError),
                )
                await trio.sleep(backoff * (1 + random.random() / 2))
                backoff = min(backoff * 2, 10.0)
                continue
            if not claims:
                self._limiter.release()
            for index, item in enumerate(claims):
                if index > 0:
                    self._limiter.acquire_nowait()  # room counted these slots as free
                nursery.start_soon(self._run_one, item)
            if claims and len(claims) == room:
                continue  # more may be due right now
            await self._sleep(waiter)

    async def _sleep(self, waiter: Waiter) -> None:
        now = self._now()
        delay = self._settings.poll_interval
        try:
            due = await self._next_due(now)
        except Exception as error:
            log.warning(
                "%s loop: cannot read the next due time (%s)",
                self.topic,
                error,
                exc_info=not isinstance(error, MgError | OSError),
            )
            due = None
        if due is not None:
            try:
                delay = min(delay, max((due - now).total_seconds(), 0.0))
            except (TypeError, OverflowError, ValueError) as error:
                # Storage gives aware, finite times; should anything else come back, the loop
                # sleeps a little (no hot loop) rather than stop every timer of the node.
                log.warning("%s loop: odd next due time %r (%s)", self.topic, due, error)
                delay = min(delay, 1.0)
        self.sleeping_until = now + timedelta(seconds=delay)
        try:
            await waiter.wait(delay)
        finally:
            self.sleeping_until = None

    async def _run_one(self, item: C) -> None:
        try:
            await self._handle(item)
        except MgError as error:
            # Postgres away, a lock wait past its deadline...: the claim's lease ends and the
            # item is claimed again.
            log.warning(
                "%s loop: %r not done (%s); it comes back when its lease ends",
                self.topic,
                item,
                error,
            )
        except Exception:
            log.exception("%s loop: unexpected error on %r", self.topic, item)
        finally:
            self.handled += 1
            self._limiter.release()
            if self._rearm:
                self._waker.wake_local(self.topic)
