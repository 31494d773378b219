"""The composition root's first half: settings and a bridge in, every part of a node out.

This is the one place that picks adapters (the Postgres storage, the HTTP processor and
modernizer clients, the Quart app) and connects drivers to the service. Nothing here does I/O;
``mg.node`` runs the parts.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime

import trio

from mg.adapters.modernizer_http import HttpModernizer
from mg.adapters.processor_http import HttpProcessor
from mg.api.admission import Admission
from mg.api.app import App, create_app
from mg.api.auth import Authenticator
from mg.api.operator import Operator
from mg.connections import Connections
from mg.console.app import add_console
from mg.console.web import Console
from mg.core.facts import Observer
from mg.core.sink import sequencer_topic
from mg.loops.claims import ClaimLoop
from mg.observability.cache_metrics import StateCacheCollector
from mg.observability.fact_log import log_fact
from mg.observability.health import Health
from mg.observability.metrics import Metrics
from mg.observability.observers import fan_out
from mg.observability.sampler import Sampler
from mg.postgres.bridge.interface import Bridge
from mg.postgres.console_reads import PostgresConsoleReads
from mg.postgres.gauges import PostgresGauges
from mg.postgres.pruner import Pruner
from mg.postgres.sequencer import Sequencer
from mg.postgres.sinks import PostgresSinks
from mg.postgres.state_cache import StateCache
from mg.postgres.storage import PostgresStorage
from mg.postgres.wakeups import Wakeups
from mg.service.machines import MachineService
from mg.service.ports import NotificationClaim, TimerClaim
from mg.service.signals import Signals
from mg.service.sinks import SinkReader
from mg.service.steps import Steps
from mg.settings import Settings

TIMERS = "timers"
NOTIFICATIONS = "notifications"


class LoopNudges:
    """``Nudges`` for a node: wake the loops here at once, and other nodes by NOTIFY."""

    def __init__(self, wakeups: Wakeups) -> None:
        self._wakeups = wakeups
        self.timer_loop: ClaimLoop[TimerClaim] | None = None
        self.sequencers: dict[str, Sequencer] = {}

    def timer_scheduled(self, at: datetime) -> None:
        loop = self.timer_loop
        # A loop asleep until before ``at`` will find the timer anyway when it wakes.
        if loop is None or loop.sleeping_until is None or at < loop.sleeping_until:
            self._wakeups.poke(TIMERS)

    def notification_queued(self) -> None:
        self._wakeups.poke(NOTIFICATIONS)

    def events_written(self, sinks: tuple[str, ...]) -> None:
        for sink in sinks:
            here = self.sequencers.get(sink)
            if here is not None and here.leading:
                # No NOTIFY to the whole cluster for the sequencer of this very node (if it has
                # just stopped leading, the next leader starts with a batch anyway).
                self._wakeups.wake_local(sequencer_topic(sink))
            else:
                self._wakeups.poke(sequencer_topic(sink))


def node_identity() -> str:
    """Names this node in timer leases (for operators reading ``lease_owner``)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class Parts:
    """Everything a node runs, assembled and not yet started."""

    storage: PostgresStorage
    wakeups: Wakeups
    steps: Steps
    service: MachineService
    timer_loop: ClaimLoop[TimerClaim]
    notification_loop: ClaimLoop[NotificationClaim]
    sequencers: tuple[Sequencer, ...]
    pruners: tuple[Pruner, ...]
    sink_reader: SinkReader
    sampler: Sampler
    app: App
    connections: Connections
    processor: HttpProcessor
    modernizer: HttpModernizer

    async def aclose(self) -> None:
        await self.processor.aclose()
        await self.modernizer.aclose()


def assemble(settings: Settings, bridge: Bridge, observer: Observer, ready: trio.Event) -> Parts:
    """Every part of a node; client requests are answered 503 until ``ready`` is set."""
    storage = PostgresStorage(
        bridge,
        commit_timeout=settings.database.commit_timeout,
        step_idle_margin=settings.database.step_idle_margin,
        cache=StateCache(settings.cache.max_bytes, settings.cache.events),
    )
    wakeups = Wakeups(bridge)
    nudges = LoopNudges(wakeups)
    metrics = Metrics(settings.namespaces, settings.sinks)
    # Facts go to the metrics, the log, and whoever started the node (tests).
    observer = fan_out(metrics.observe, log_fact, observer)
    processor = HttpProcessor(settings.namespaces)
    modernizer = HttpModernizer(settings.namespaces)
    steps = Steps(settings, storage, processor, observer=observer, nudges=nudges)
    metrics.watch(steps.activity, lambda: bridge.pool_stats)
    metrics.registry.register(StateCacheCollector(storage.cache))
    service = MachineService(steps, modernizer=modernizer)
    signals = Signals(steps)
    owner = node_identity()
    timer_loop: ClaimLoop[TimerClaim] = ClaimLoop(
        TIMERS,
        lambda now, limit: storage.claim_timers(now, limit, owner, settings.timers.lease),
        lambda now: storage.next_wake(),
        signals.fire_timer,
        wakeups,
        settings.timers,
    )
    nudges.timer_loop = timer_loop
    notification_loop: ClaimLoop[NotificationClaim] = ClaimLoop(
        NOTIFICATIONS,
        lambda now, limit: storage.claim_notifications(now, limit, settings.notifications.lease),
        storage.next_notification,
        signals.deliver,
        wakeups,
        settings.notifications,
        rearm_after_each=True,
    )
    sequencers = tuple(
        Sequencer(bridge, wakeups, options, observer=observer)
        for options in settings.sink_options.values()
    )
    nudges.sequencers = {sequencer.sink: sequencer for sequencer in sequencers}
    pruners = tuple(
        Pruner(bridge, options, observer=observer)
        for options in settings.sink_options.values()
        if options.retention is not None
    )
    sink_log = PostgresSinks(bridge)
    sink_reader = SinkReader(settings, sink_log, wakeups, sink_log)
    connections = Connections(settings.server.max_connections)
    app = create_app(
        service,
        max_body_bytes=settings.server.max_body_bytes,
        sinks=sink_reader,
        operator=Operator(metrics, Health(bridge)),
        auth=settings.auth,
        max_requests_in_flight=settings.limits.max_requests_in_flight,
        max_long_polls=settings.limits.max_long_polls,
        ready=ready,
        connections=connections,
    )
    # The operator console (/ui/): another driver of the same service, same tokens.
    add_console(
        app,
        Console(
            service=service,
            sinks=sink_reader,
            chain=PostgresSinks(bridge),
            reads=PostgresConsoleReads(bridge, tuple(settings.namespaces)),
            authenticator=Authenticator(settings.auth),
            namespaces=tuple(settings.namespaces),
            sink_names=tuple(settings.sinks),
            ready=ready,
            admission=Admission(settings.limits.max_requests_in_flight),
            long_polls=Admission(settings.limits.max_long_polls, "sink long-polls"),
        ),
    )
    sampler = Sampler(
        PostgresGauges(bridge),
        metrics,
        interval=settings.metrics.sample_interval,
        namespaces=settings.namespaces,
        sinks=settings.sinks,
    )
    return Parts(
        storage=storage,
        wakeups=wakeups,
        steps=steps,
        service=service,
        timer_loop=timer_loop,
        notification_loop=notification_loop,
        sequencers=sequencers,
        pruners=pruners,
        sink_reader=sink_reader,
        sampler=sampler,
        app=app,
        connections=connections,
        processor=processor,
        modernizer=modernizer,
    )
