"""Sink retention: one pruner per sink across the cluster deletes the sink's oldest events.

Every node runs a ``Pruner`` per sink that has ``retention``. Like the sequencer, each opens a
dedicated connection and asks for a session-level advisory lock of its own there (a key apart
from the sequencer's, so pruning and sequencing run side by side); one node gets it and prunes,
the others wait inside Postgres. When the pruning node dies, its backend ends and a waiting
node takes over; when its connection drops, it steps down at once.

A batch is one statement (``prune_sink``): of the oldest ``batch_size`` held events, never the
newest, it deletes those past ``max_events`` or sequenced more than ``max_age`` ago, and saves
the new first position and its anchor in the same transaction. The sequencer appends at the
other end of the sink and readers take no locks, so neither waits on a batch. While batches
come back full the pruner goes on at once; otherwise it sleeps ``retention.interval``.
"""

from __future__ import annotations

import logging
import os
import random

import trio

from mg.core.facts import Observer, SinkPruned, ignore
from mg.postgres.bridge.interface import Bridge, DedicatedSession
from mg.postgres.failures import translate
from mg.postgres.sequencer import BATCH_TIMEOUT, CONNECTION_SETTINGS, MAX_BACKOFF
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
        self.leading = False
        self.pruned = 0  # events this node deleted (tests, logs)
        self.application_name = f"mg {os.getpid()} pruner {options.name}"[:63]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Prune the sink whenever this node leads its pruning; never returns."""
        task_status.started()
        backoff = 0.1
        while True:
            try:
                await self._lead_while_possible()
                log.warning("pruner of sink %r lost its connection; stepping down", self.sink)
            except Exception as error:
                if translate(error, doing="pruning") is None:
                    log.error("pruner of sink %r failed", self.sink, exc_info=error)
                else:
                    log.warning("pruner of sink %r stepped down: %s", self.sink, error)
            else:
                backoff = 0.1
            await trio.sleep(backoff * (1 + random.random() / 2))
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _lead_while_possible(self) -> None:
        settings = {**CONNECTION_SETTINGS, "application_name": self.application_name}
        async with self._bridge.dedicated(server_settings=settings) as session:
            await lead_pruning(session, self.sink)  # waits here while another node prunes
            log.info("pruner of sink %r is leading", self.sink)
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
