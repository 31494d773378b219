"""The sink sequencer: one leader per sink across the cluster moves outbox rows into the sink.

Every node runs a ``Sequencer`` per configured sink. Each opens a dedicated connection and asks
for the sink's session-level advisory lock there; one gets it and leads, the others wait inside
Postgres. The leader moves batches on that same connection, so:

- a batch can only run while its node leads (the lock and the batch share the connection);
- when the leader dies, its backend ends, the lock is free, and a waiting node leads at once
  (a killed process closes its sockets; a vanished host is caught by the keepalives and
  connection checks set below, within about 15 seconds);
- when the leader's connection drops, ``lost`` fires and the leader steps down at once.

Wake-ups: steps that wrote outbox rows poke ``sink:<name>`` (this node at once, other nodes by a
coalesced NOTIFY); the leader also polls every ``poll_interval``. After each batch it pokes
``sink-events:<name>``, which wakes long-polling readers on every node.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from datetime import datetime

import trio

from mg.core.clock import utc_now
from mg.core.facts import Observer, SinkSequenced, ignore
from mg.core.sink import readers_topic, sequencer_topic
from mg.postgres.bridge.interface import Bridge, DedicatedSession
from mg.postgres.failures import translate
from mg.postgres.sinks import lead, move_batch
from mg.postgres.wakeups import Wakeups
from mg.settings import Sink

log = logging.getLogger("mg.sink")

# A batch is one statement over at most batch_size rows; only a sick database takes this long.
BATCH_TIMEOUT = 60.0
MAX_BACKOFF = 10.0
CONNECTION_SETTINGS = {
    # A leader whose host vanishes must not keep the lock for the two hours of default
    # keepalives: the server drops the connection after about 5 + 3 * 3 seconds of silence, or
    # when it notices the client is gone while waiting for the lock.
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "3",
    "tcp_keepalives_count": "3",
    "client_connection_check_interval": "5000",
    # What a reader has seen must survive a crash of Postgres, or its position could be given
    # to another event afterwards; this also makes the outbox rows moved durable (the WAL is
    # flushed in order), even where the server's default is asynchronous commit.
    "synchronous_commit": "on",
    # Candidates wait for the lock as long as it takes, and a leader may sit idle between
    # batches: server-wide timeouts must not end either (batches have their own bound).
    "statement_timeout": "0",
    "lock_timeout": "0",
    "idle_session_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
}


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
        self.leading = False
        # Operators (and tests) find the leader in pg_stat_activity by this name.
        self.application_name = f"mg {os.getpid()} sequencer {options.name}"[:63]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Lead the sink whenever this node can; never returns (cancel it to stop)."""
        task_status.started()
        sink = self._options.name
        backoff = 0.1
        while True:
            try:
                await self._lead_while_possible()
                log.warning("sequencer of sink %r lost its connection; stepping down", sink)
            except Exception as error:
                if translate(error, doing="sequencing") is None:
                    log.error("sequencer of sink %r failed", sink, exc_info=error)
                else:
                    log.warning("sequencer of sink %r stepped down: %s", sink, error)
            else:
                backoff = 0.1
            await trio.sleep(backoff * (1 + random.random() / 2))
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _lead_while_possible(self) -> None:
        settings = {**CONNECTION_SETTINGS, "application_name": self.application_name}
        async with self._bridge.dedicated(server_settings=settings) as session:
            await lead(session, self._options.name)  # waits here while another node leads
            log.info("sequencer of sink %r is leading", self._options.name)
            self.leading = True
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._step_down_when_lost, session, nursery.cancel_scope)
                    await self._batches(session)
            finally:
                self.leading = False

    @staticmethod
    async def _step_down_when_lost(session: DedicatedSession, scope: trio.CancelScope) -> None:
        await session.lost.wait()
        scope.cancel()

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
