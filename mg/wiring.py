"""The composition root's first half: settings and a bridge in, every part of a node out.

This is the one place that picks adapters (the Postgres storage, the HTTP processor and
modernizer clients, the Quart app) and connects drivers to the service. Nothing here does I/O;
``mg.node`` runs the parts.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
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
from mg.databases.console import RoutedChain, RoutedConsoleReads
from mg.databases.routing import (
    RoutedHealth,
    RoutedNudges,
    RoutedSinkLog,
    RoutedStorage,
    RoutedWakeups,
    Routes,
)
from mg.databases.unit import Database
from mg.loops.claims import ClaimLoop
from mg.observability.cache_metrics import StateCacheCollector
from mg.observability.fact_log import log_fact
from mg.observability.health import Health
from mg.observability.metrics import Metrics
from mg.observability.observers import fan_out
from mg.observability.sampler import Sampler
from mg.postgres.bridge.interface import Bridge
from mg.postgres.gauges import PostgresGauges
from mg.postgres.pruner import Pruner
from mg.postgres.sequencer import Sequencer
from mg.postgres.sinks import PostgresSinks
from mg.postgres.state_cache import StateCache
from mg.postgres.storage import PostgresStorage
from mg.postgres.wakeups import Wakeups
from mg.service.machines import MachineService
from mg.service.ports import NotificationClaim, Nudges, Storage, TimerClaim
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

    def timer_scheduled(self, ns: str, at: datetime) -> None:
        loop = self.timer_loop
        # A loop asleep until before ``at`` will find the timer anyway when it wakes.
        if loop is None or loop.sleeping_until is None or at < loop.sleeping_until:
            self._wakeups.poke(TIMERS)

    def notification_queued(self, ns: str) -> None:
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
    """Everything a node runs, assembled and not yet started: the parts shared by the whole
    node, and per database its storage and loops (``databases``, the default first)."""

    databases: tuple[Database, ...]
    storage: Storage
    steps: Steps
    service: MachineService
    sink_reader: SinkReader
    app: App
    connections: Connections
    processor: HttpProcessor
    modernizer: HttpModernizer
    metrics: Metrics

    @property
    def timer_loop(self) -> ClaimLoop[TimerClaim]:
        loop = self.databases[0].timer_loop
        assert loop is not None
        return loop

    @property
    def notification_loop(self) -> ClaimLoop[NotificationClaim]:
        loop = self.databases[0].notification_loop
        assert loop is not None
        return loop

    @property
    def sequencers(self) -> tuple[Sequencer, ...]:
        return tuple(s for database in self.databases for s in database.sequencers)

    @property
    def pruners(self) -> tuple[Pruner, ...]:
        return tuple(p for database in self.databases for p in database.pruners)

    async def aclose(self) -> None:
        await self.processor.aclose()
        await self.modernizer.aclose()


def assemble(
    settings: Settings,
    bridges: Mapping[str, Bridge],
    observer: Observer,
    ready: trio.Event,
    exposition: Callable[[], Awaitable[bytes]] | None = None,
) -> Parts:
    """Every part of a node over ``bridges`` (by database name, ``Settings.placements``);
    client requests are answered 503 until ``ready`` is set, and those of a database until
    it is ready. ``exposition`` answers ``/metrics`` instead of this node's own series."""
    cache = StateCache(settings.cache.max_bytes, settings.cache.events)
    databases = []
    for placement in settings.placements():
        bridge = bridges[placement.name]
        wakeups = Wakeups(bridge)
        own = PostgresStorage(
            bridge,
            commit_timeout=settings.database.commit_timeout,
            step_idle_margin=settings.database.step_idle_margin,
            cache=cache,
        )
        databases.append(
            Database(
                placement,
                bridge,
                own,
                wakeups,
                LoopNudges(wakeups),
                PostgresSinks(bridge),
                Health(bridge),
            )
        )
    routes = Routes(databases)
    metrics = Metrics(settings.namespaces, settings.sinks)
    # Facts go to the metrics, the log, and whoever started the node (tests).
    observer = fan_out(metrics.observe, log_fact, observer)
    processor = HttpProcessor(settings.namespaces)
    modernizer = HttpModernizer(settings.namespaces)
    # With one database the map has one entry: the hot path goes to it directly.
    one = len(databases) == 1
    storage: Storage = databases[0].storage if one else RoutedStorage(routes, cache)
    nudges: Nudges = databases[0].nudges if one else RoutedNudges(routes)
    steps = Steps(settings, storage, processor, observer=observer, nudges=nudges)
    metrics.watch(steps.activity, routes.pool_stats)
    metrics.registry.register(StateCacheCollector(cache))
    service = MachineService(steps, modernizer=modernizer)
    signals = Signals(steps)
    owner = node_identity()
    for database in databases:
        _add_loops(settings, database, signals, owner, metrics, observer)
    sink_log = RoutedSinkLog(routes)
    sink_reader = SinkReader(settings, sink_log, RoutedWakeups(routes), sink_log)
    connections = Connections(settings.server.max_connections)
    app = create_app(
        service,
        max_body_bytes=settings.server.max_body_bytes,
        sinks=sink_reader,
        operator=Operator(metrics, RoutedHealth(routes), exposition),
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
            chain=RoutedChain(routes),
            reads=RoutedConsoleReads(routes, tuple(settings.namespaces)),
            authenticator=Authenticator(settings.auth),
            namespaces=tuple(settings.namespaces),
            sink_names=tuple(settings.sinks),
            ready=ready,
            admission=Admission(settings.limits.max_requests_in_flight),
            long_polls=Admission(settings.limits.max_long_polls, "sink long-polls"),
        ),
    )
    return Parts(
        databases=tuple(databases),
        storage=storage,
        steps=steps,
        service=service,
        sink_reader=sink_reader,
        app=app,
        connections=connections,
        processor=processor,
        modernizer=modernizer,
        metrics=metrics,
    )


def _add_loops(
    settings: Settings,
    database: Database,
    signals: Signals,
    owner: str,
    metrics: Metrics,
    observer: Observer,
) -> None:
    """The timer and notification loops, sink sequencers and gauge sampler of one database."""
    storage, wakeups, bridge = database.storage, database.wakeups, database.bridge
    timer_loop: ClaimLoop[TimerClaim] = ClaimLoop(
        TIMERS,
        lambda now, limit: storage.claim_timers(now, limit, owner, settings.timers.lease),
        lambda now: storage.next_wake(),
        signals.fire_timer,
        wakeups,
        settings.timers,
    )
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
        Sequencer(bridge, wakeups, settings.sink_options[sink], observer=observer)
        for sink in database.placement.sinks
    )
    nudges = database.nudges
    assert isinstance(nudges, LoopNudges)
    nudges.timer_loop = timer_loop
    nudges.sequencers = {sequencer.sink: sequencer for sequencer in sequencers}
    database.timer_loop = timer_loop
    database.notification_loop = notification_loop
    database.sequencers = sequencers
    database.pruners = tuple(
        Pruner(bridge, settings.sink_options[sink], observer=observer)
        for sink in database.placement.sinks
        if settings.sink_options[sink].retention is not None
    )
    database.sampler = Sampler(
        PostgresGauges(bridge),
        metrics,
        interval=settings.metrics.sample_interval,
        namespaces=database.placement.namespaces,
        sinks=database.placement.sinks,
    )
