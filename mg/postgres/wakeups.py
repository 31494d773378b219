"""Wake-ups for background loops, within a node and across the cluster.

A loop arms a ``Waiter`` for its topic *before* it looks for work, then waits on it: a poke
that lands while it works is not lost. ``poke`` wakes this node's waiters at once and asks for a
``NOTIFY`` so other nodes wake too. NOTIFYs are coalesced, at most one per ``coalesce`` seconds
and outside any step's transaction (a NOTIFY inside a busy write transaction would serialise
commits). The LISTEN connection is re-established with back-off when it drops; after a drop
every waiter is woken, since pokes may have been missed. Loops still poll, so a lost wake-up only
costs latency.

A payload is ``"<origin> <topic>,<topic>..."``: a node ignores its own NOTIFYs when they come
back (it woke its waiters when it poked; the echo would only make its loops look again for
work they have just taken). A payload without an origin (an older node) wakes every topic named.
"""

from __future__ import annotations

import logging
import random
import uuid

import asyncpg
import trio

from mg.errors import MgError
from mg.postgres.bridge.interface import Bridge
from mg.postgres.failures import translate
from mg.postgres.sql_files import query

log = logging.getLogger("mg.wakeups")

CHANNEL = "mg_wake"


class Waiter:
    """One arming of a topic: ``wait`` returns once the topic is poked after the arming."""

    def __init__(self, event: trio.Event) -> None:
        self._event = event

    async def wait(self, seconds: float) -> bool:
        """True if poked, False if ``seconds`` passed first."""
        if self._event.is_set():
            return True
        with trio.move_on_after(max(seconds, 0)):
            await self._event.wait()
            return True
        return False


class Wakeups:
    def __init__(self, bridge: Bridge, *, coalesce: float = 0.005) -> None:
        self._bridge = bridge
        self._coalesce = coalesce
        self._events: dict[str, trio.Event] = {}
        self._outgoing: set[str] = set()
        self._send_wanted = trio.Event()
        self.listening = False
        # Tells this node's NOTIFYs from the others' (topics contain no spaces).
        self.origin = uuid.uuid4().hex[:16]

    def arm(self, topic: str) -> Waiter:
        event = self._events.get(topic)
        if event is None or event.is_set():
            event = self._events[topic] = trio.Event()
        return Waiter(event)

    def wake_local(self, topic: str) -> None:
        event = self._events.get(topic)
        if event is not None:
            event.set()

    def poke(self, topic: str) -> None:
        """Wake ``topic`` here now, and on every other node soon."""
        self.wake_local(topic)
        self._outgoing.add(topic)
        self._send_wanted.set()

    def _wake_all(self) -> None:
        for event in self._events.values():
            event.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._send_loop)
            await nursery.start(self._listen_loop)
            task_status.started()

    async def _send_loop(self) -> None:
        while True:
            await self._send_wanted.wait()
            self._send_wanted = trio.Event()
            topics, self._outgoing = self._outgoing, set()
            payload = f"{self.origin} {','.join(sorted(topics))}"

            async def work(conn: asyncpg.Connection, payload: str = payload) -> None:
                await conn.execute(query("notify_wake"), CHANNEL, payload)

            try:
                await self._bridge.run(work, timeout=5.0)
            except Exception as error:
                if translate(error, doing="sending a wake-up") is None:
                    raise
                # Other nodes will find the work by polling; this node was woken already.
                log.debug("wake-up NOTIFY not sent: %s", error)
            await trio.sleep(self._coalesce)

    async def _listen_loop(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        backoff = 0.1
        started = False
        while True:
            try:
                async with self._bridge.listen(CHANNEL) as notifications:
                    self.listening = True
                    backoff = 0.1
                    if not started:
                        started = True
                        task_status.started()
                    else:
                        log.info("wake-up listener re-established")
                        self._wake_all()
                    async for payload in notifications:
                        origin, _, topics = payload.rpartition(" ")
                        if origin == self.origin:
                            continue
                        for topic in topics.split(","):
                            self.wake_local(topic)
            except Exception as error:
                # Whatever went wrong, wake-ups come back; loops poll meanwhile.
                expected = isinstance(
                    error, ConnectionError | OSError | asyncpg.PostgresError | MgError
                )
                log.warning(
                    "wake-up listener lost (%s); retrying in %.1fs",
                    error,
                    backoff,
                    exc_info=not expected,
                )
            self.listening = False
            if not started:
                # Start anyway: loops poll, and the listener keeps trying in the background.
                started = True
                task_status.started()
            self._wake_all()
            await trio.sleep(backoff * (1 + random.random() / 2))
            backoff = min(backoff * 2, 10.0)
