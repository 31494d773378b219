"""Prometheus series: one registry per node, fed by the core's facts, the HTTP layer, the
background sampler, and (at scrape time) the node's in-memory queues and connection pool.

``prometheus-client`` writes the exposition format: escaping, histogram buckets and the
``_total``/``_sum``/``_count`` conventions are easy to get subtly wrong in a home-made writer,
and the library is small, pure Python and thread-safe. Each node has its own registry (never
the process-wide default), so several nodes in one process (tests) do not share series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mg.core.facts import (
    EventsTrimmed,
    Fact,
    MachineFailedFact,
    NotificationDelivered,
    ProcessorCalled,
    SinkPruned,
    SinkSequenced,
    StepFinished,
    TimerFired,
)

if TYPE_CHECKING:
    from mg.service.steps import Activity

# ``_created`` series double the number of series for little use; process-wide, as the library
# only offers that switch.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

# Steps and processor calls: a millisecond to a minute (the default handling timeout).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Lateness of timers and the sink: a millisecond to ten minutes.
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600)


class _LiveCollector(Collector):
    """Gauges read at scrape time from memory: the node's queues and its connection pool."""

    def __init__(self) -> None:
        self.activity: Callable[[], Activity] | None = None
        self.pool_stats: Callable[[], Mapping[str, Any]] | None = None

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return list(self._families())

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return list(self._families(fill=True))

    def _families(self, *, fill: bool = False) -> Iterable[GaugeMetricFamily]:
        in_flight = GaugeMetricFamily("mg_steps_in_flight", "Steps holding a step slot now")
        slots = GaugeMetricFamily("mg_step_slots", "Step slots of this node (limits)")
        waiting = GaugeMetricFamily(
            "mg_steps_waiting_for_slot", "Steps waiting for a free step slot"
        )
        queued = GaugeMetricFamily(
            "mg_requests_queued_on_machines",
            "Requests waiting behind another step of the same machine on this node",
        )
        busy = GaugeMetricFamily("mg_machines_busy", "Machines with a step running or queued")
        pool = GaugeMetricFamily(
            "mg_postgres_pool_connections", "Postgres pool connections by state", labels=["state"]
        )
        pool_max = GaugeMetricFamily("mg_postgres_pool_max", "Postgres pool size limit")
        if fill and self.activity is not None:
            now = self.activity()
            in_flight.add_metric([], now.steps_in_flight)
            slots.add_metric([], now.step_slots)
            waiting.add_metric([], now.waiting_for_slot)
            queued.add_metric([], now.queued_on_machines)
            busy.add_metric([], now.busy_machines)
        if fill and self.pool_stats is not None:
            stats = self.pool_stats()
            size, idle = int(stats.get("size", 0)), int(stats.get("idle", 0))
            pool.add_metric(["busy"], size - idle)
            pool.add_metric(["idle"], idle)
            pool_max.add_metric([], int(stats.get("max", 0)))
        return (in_flight, slots, waiting, queued, busy, pool, pool_max)


class Metrics:
    """The node's series. ``observe`` is the core's ``Observer``; it never raises."""

    def __init__(self, namespaces: Iterable[str] = (), sinks: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.steps = Counter(
            "mg_steps",
            "Steps by namespace, kind and outcome",
            ["ns", "kind", "outcome"],
            registry=r,
        )
        self.step_seconds = Histogram(
            "mg_step_duration_seconds",
            "Step duration, from queueing on the machine to commit",
            ["ns", "kind"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.processor_seconds = Histogram(
            "mg_processor_call_duration_seconds",
            "Processor call duration by outcome (ok, transient, permanent, refused)",
            ["ns", "kind", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.machine_failures = Counter(
            "mg_machine_failures",
            "Machines that became failed, by step kind",
            ["ns", "kind"],
            registry=r,
        )
        self.timers_fired = Counter(
            "mg_timers_fired", "Timers fired by outcome", ["ns", "outcome"], registry=r
        )
        self.timer_lag = Histogram(
            "mg_timer_fire_lag_seconds",
            "How late timers fired (fire time minus due time)",
            ["ns"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.notifications = Counter(
            "mg_notifications_delivered",
            "Notification deliveries by outcome",
            ["ns", "outcome"],
            registry=r,
        )
        self.notification_wait = Histogram(
            "mg_notification_queued_seconds",
            "Time from queueing a notification to its delivery",
            ["ns"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.sink_events = Counter(
            "mg_sink_sequenced_events", "Events moved into a sink", ["sink"], registry=r
        )
        self.sink_lag = Histogram(
            "mg_sink_sequencer_lag_seconds",
            "Age of the oldest event of each batch the sequencer moved (commit to readable)",
            ["sink"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.sink_position = Gauge(
            "mg_sink_position", "Last id given out in a sink", ["sink"], registry=r
        )
        self.events_trimmed = Counter(
            "mg_events_trimmed",
            "Events trimmed from machines' histories (trim actions and history.max_events)",
            ["ns"],
            registry=r,
        )
        self.sink_pruned = Counter(
            "mg_sink_pruned_events", "Events deleted by a sink's retention", ["sink"], registry=r
        )
        self.sink_first = Gauge(
            "mg_sink_first_position",
            "First position a sink holds (older ones were pruned), as this node last saw it",
            ["sink"],
            registry=r,
        )
        self.http_requests = Counter(
            "mg_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "mg_http_request_duration_seconds",
            "HTTP request duration by route",
            ["route"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        # Sampled from the database by ``mg.observability.sampler``.
        self.machines_retrying = Gauge(
            "mg_machines_retrying", "Machines whose step is being retried", ["ns"], registry=r
        )
        self.machines_failed = Gauge("mg_machines_failed", "Failed machines", ["ns"], registry=r)
        self.notifications_queued = Gauge(
            "mg_notifications_queued",
            "Notifications queued, not yet delivered",
            ["ns"],
            registry=r,
        )
        self.sink_pending = Gauge(
            "mg_sink_outbox_pending",
            "Events committed but not yet in the sink",
            ["sink"],
            registry=r,
        )
        self.sink_pending_age = Gauge(
            "mg_sink_outbox_oldest_seconds",
            "Age of the oldest event not yet in the sink (0 when none)",
            ["sink"],
            registry=r,
        )
        self.sample_failures = Counter(
            "mg_sampler_failures", "Failed database samples of the gauges above", registry=r
        )
        self.sampled_at = Gauge(
            "mg_sampled_at_seconds",
            "Unix time of the last successful database sample",
            registry=r,
        )
        self.live = _LiveCollector()
        r.register(self.live)
        # Known label values start at zero, so "none" is a value rather than a missing series.
        for ns in namespaces:
            for gauge in (self.machines_retrying, self.machines_failed, self.notifications_queued):
                gauge.labels(ns).set(0)
        for sink in sinks:
            for gauge in (self.sink_pending, self.sink_pending_age):
                gauge.labels(sink).set(0)

    def watch(
        self,
        activity: Callable[[], Activity] | None = None,
        pool_stats: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        """Read these at each scrape."""
        if activity is not None:
            self.live.activity = activity
        if pool_stats is not None:
            self.live.pool_stats = pool_stats

    def observe(self, fact: Fact) -> None:
        match fact:
            case StepFinished():
                self.steps.labels(fact.ns, fact.kind, fact.outcome).inc()
                self.step_seconds.labels(fact.ns, fact.kind).observe(fact.seconds)
            case ProcessorCalled():
                self.processor_seconds.labels(fact.ns, fact.kind, fact.outcome).observe(
                    fact.seconds
                )
            case MachineFailedFact():
                self.machine_failures.labels(fact.ns, fact.kind).inc()
            case TimerFired():
                self.timers_fired.labels(fact.ns, fact.outcome).inc()
                self.timer_lag.labels(fact.ns).observe(max(fact.lag_seconds, 0.0))
            case NotificationDelivered():
                self.notifications.labels(fact.ns, fact.outcome).inc()
                self.notification_wait.labels(fact.ns).observe(max(fact.queued_seconds, 0.0))
            case SinkSequenced():
                self.sink_events.labels(fact.sink).inc(fact.count)
                self.sink_lag.labels(fact.sink).observe(max(fact.lag_seconds, 0.0))
                self.sink_position.labels(fact.sink).set(fact.position)
            case EventsTrimmed():
                self.events_trimmed.labels(fact.ns).inc(fact.count)
            case SinkPruned():
                self.sink_pruned.labels(fact.sink).inc(fact.count)
                self.sink_first.labels(fact.sink).set(fact.first)

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_seconds.labels(route).observe(seconds)

    def render(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)
