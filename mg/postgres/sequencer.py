"""The sink sequencer: one leader per sink across the cluster moves outbox rows into the sink.

Every node runs a ``Sequencer`` per configured sink; one of them leads, by the sink's
session-level advisory lock, and moves batches on the connection that holds it
(``mg.postgres.leadership``: fail-over, stepping down, back-off).

Wake-ups: steps that wrote outbox rows poke ``sink:<name>`` (this node at once, other nodes by a
coalesced NOTIFY); the leader also polls every ``poll_interval``. After each batch it pokes
``sink-events:<name>``, which wakes long-polling readers on every node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import trio

from mg.core.clock import utc_now
from mg.core.facts import Observer, SinkSequenced, ignore
from mg.core.sink import readers_topic, sequencer_topic
from mg.postgres.bridge.interface import Bridge, DedicatedSession
from mg.postgres.leadership import Leadership
from mg.postgres.sinks import lead, move_batch
from mg.postgres.wakeups import Wakeups
from mg.settings import Sink

log = logging.getLogger("mg.sink")

# A batch is one statement over at most batch_size rows; only a sick database takes this long.
BATCH_TIMEOUT = 60.0


class Sequencer:
    def __init__(
        self,
        bridge: Bridge,
        wakeups: Wakeups,
        options: Sink,
        *,
        observer: Observer = ignore,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._bridge = bridge
        self._wakeups = wakeups
        self._options = options
        self._observe = observer
        self._now = clock
        self.sink = options.name
        self._leadership = Leadership(
            bridge,
            "sequencer",
            options.name,
            lambda session: lead(session, options.name),
            self._batches,
        )

    @property
    def leading(self) -> bool:
        return self._leadership.leading

    @property
    def application_name(self) -> str:
        return self._leadership.application_name

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Lead the sink whenever this node can; never returns (cancel it to stop)."""
        task_status.started()
        await self._leadership.run("sequencing")

    async def _batches(self, session: DedicatedSession) -> None:
        sink, size = self._options.name, self._options.batch_size
        while True:
            # Armed before looking, so a poke that lands during the batch is not lost.
            waiter = self._wakeups.arm(sequencer_topic(sink))
            batch = await move_batch(session, sink, size, BATCH_TIMEOUT)
            if batch.moved and batch.last_position is not None and batch.oldest is not None:
                self._wakeups.poke(readers_topic(sink))
                lag = (self._now() - batch.oldest).total_seconds()
                self._observe(SinkSequenced(sink, batch.moved, batch.last_position, lag))
            if batch.taken < size:  # the outbox is drained: sleep until poked or polled
                await waiter.wait(self._options.poll_interval)
