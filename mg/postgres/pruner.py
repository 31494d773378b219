"""Sink retention: one pruner per sink across the cluster deletes the sink's oldest events.

Every node runs a ``Pruner`` per sink that has ``retention``. Like the sequencer, one of them
leads, by a session-level advisory lock of its own (a key apart from the sequencer's, so pruning
and sequencing run side by side), and prunes on the connection that holds it
(``mg.postgres.leadership``: fail-over, stepping down, back-off).

A batch is one statement (``prune_sink``): of the oldest ``batch_size`` held events, never the
newest, it deletes those past ``max_events`` or sequenced more than ``max_age`` ago, and saves
the new first position and its anchor in the same transaction. The sequencer appends at the
other end of the sink and readers take no locks, so neither waits on a batch. While batches
come back full the pruner goes on at once; otherwise it sleeps ``retention.interval``.
"""

from __future__ import annotations

import logging

import trio

from mg.core.facts import Observer, SinkPruned, ignore
from mg.postgres.bridge.interface import Bridge, DedicatedSession
from mg.postgres.leadership import Leadership
from mg.postgres.sequencer import BATCH_TIMEOUT
from mg.postgres.sinks import lead_pruning, prune_batch
from mg.settings import Retention, Sink

log = logging.getLogger("mg.sink")


class Pruner:
    def __init__(self, bridge: Bridge, options: Sink, *, observer: Observer = ignore) -> None:
        assert options.retention is not None
        self._bridge = bridge
        self._retention: Retention = options.retention
        self._observe = observer
        self.sink = options.name
        self.pruned = 0  # events this node deleted (tests, logs)
        self._leadership = Leadership(
            bridge,
            "pruner",
            options.name,
            lambda session: lead_pruning(session, options.name),
            self._batches,
        )

    @property
    def leading(self) -> bool:
        return self._leadership.leading

    @property
    def application_name(self) -> str:
        return self._leadership.application_name

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Prune the sink whenever this node leads its pruning; never returns."""
        task_status.started()
        await self._leadership.run("pruning")

    async def _batches(self, session: DedicatedSession) -> None:
        retention = self._retention
        while True:
            batch = await prune_batch(
                session,
                self.sink,
                retention.max_events,
                retention.max_age,
                retention.batch_size,
                BATCH_TIMEOUT,
            )
            if batch.count:
                self.pruned += batch.count
                self._observe(SinkPruned(self.sink, batch.count, batch.first))
            if batch.count < retention.batch_size:
                await trio.sleep(retention.interval)
            else:
                await trio.lowlevel.checkpoint()  # other work of the node runs in between
