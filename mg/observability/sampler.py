"""Gauges that need the database, sampled by one low-frequency loop per node.

Counting failed machines or queued notifications per scrape would put a query on the path of
every Prometheus scrape (and of every node behind a load balancer); a loop bounds that cost to
a few small aggregates per ``metrics.sample_interval``, whatever the scrape rate. A failed
sample is logged and counted, and the gauges keep their last values (``mg_sampled_at_seconds``
says how old they are).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import trio

from mg.observability.metrics import Metrics
from mg.service.ports import Gauges

log = logging.getLogger("mg.observability.sampler")


class Sampler:
    def __init__(
        self,
        gauges: Gauges,
        metrics: Metrics,
        *,
        interval: float,
        namespaces: Iterable[str] = (),
        sinks: Iterable[str] = (),
    ) -> None:
        self._gauges = gauges
        self._metrics = metrics
        self._interval = interval
        self._namespaces = set(namespaces)
        self._sinks = set(sinks)

    async def sample_once(self) -> None:
        sample = await self._gauges.sample()
        m = self._metrics
        # Configured names, and any the database still has, fall back to zero when absent.
        names = self._namespaces | set(sample.retrying) | set(sample.failed) | set(sample.queued)
        for ns in names:
            m.machines_retrying.labels(ns).set(sample.retrying.get(ns, 0))
            m.machines_failed.labels(ns).set(sample.failed.get(ns, 0))
            m.notifications_queued.labels(ns).set(sample.queued.get(ns, 0))
        for sink in self._sinks | set(sample.outbox):
            pending, oldest = sample.outbox.get(sink, (0, 0.0))
            m.sink_pending.labels(sink).set(pending)
            m.sink_pending_age.labels(sink).set(oldest)
        # Every node reports each sink's position, not only the one whose sequencer leads.
        for sink, position in sample.heads.items():
            m.sink_position.labels(sink).set(position)
        m.sampled_at.set(time.time())

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Sample now, then every ``interval``, until cancelled."""
        task_status.started()
        while True:
            try:
                await self.sample_once()
            except Exception as error:
                self._metrics.sample_failures.inc()
                log.warning("sampling the database for metrics failed: %r", error)
            await trio.sleep(self._interval)
