"""The composition root: settings in, a running node out.

This is the one place that picks adapters: the Postgres bridge and storage, the HTTP processor
client, the Quart app on hypercorn. Everything else receives what it needs through constructors.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from mg.adapters.modernizer_http import HttpModernizer
from mg.adapters.processor_http import HttpProcessor
from mg.api.app import create_app
from mg.api.operator import Operator
from mg.core.facts import Observer, ignore
from mg.core.sink import sequencer_topic
from mg.loops.claims import ClaimLoop
from mg.observability.fact_log import log_fact
from mg.observability.health import Health
from mg.observability.metrics import Metrics
from mg.observability.observers import fan_out
from mg.observability.sampler import Sampler
from mg.postgres.bridges import make_bridge
from mg.postgres.migrations import migrate
from mg.postgres.sequencer import Sequencer
from mg.postgres.sinks import PostgresSinks
from mg.postgres.storage import PostgresStorage
from mg.postgres.wakeups import Wakeups
from mg.service.machines import MachineService
from mg.service.ports import NotificationClaim, TimerClaim
from mg.service.signals import Signals
from mg.service.sinks import SinkReader
from mg.service.state_cache import StateCache
from mg.service.steps import Steps
from mg.settings import Settings

log = logging.getLogger("mg.node")

TIMERS = "timers"
NOTIFICATIONS = "notifications"


@dataclass
class Node:
    """A running node: where it listens, its services, and how to stop it."""

    url: str
    service: MachineService
    steps: Steps
    timer_loop: ClaimLoop[TimerClaim]
    notification_loop: ClaimLoop[NotificationClaim]
    shutdown: trio.Event
    sequencers: tuple[Sequencer, ...] = ()

    def stop(self) -> None:
        self.shutdown.set()


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


def hypercorn_config(settings: Settings, port: int | None = None) -> HypercornConfig:
    config = HypercornConfig()
    bind_port = settings.server.port if port is None else port
    config.bind = [f"{settings.server.host}:{bind_port}"]
    config.graceful_timeout = settings.server.graceful_timeout
    config.accesslog = None
    config.keep_alive_timeout = 75
    if settings.server.certfile:
        config.certfile = settings.server.certfile
        config.keyfile = settings.server.keyfile
    if settings.server.ca_certs:
        # Mutual TLS: only clients with a certificate signed by these CAs get in.
        config.ca_certs = settings.server.ca_certs
        config.verify_mode = ssl.CERT_REQUIRED
    return config


@asynccontextmanager
async def running_node(
    settings: Settings,
    database_url: str,
    *,
    port: int | None = None,
    observer: Observer = ignore,
) -> AsyncIterator[Node]:
    """Start a node on ``database_url``; it stops when the block ends or ``stop()`` is called.

    ``port=0`` binds a free port (tests); the node's ``url`` says which. ``observer`` receives
    the facts the node reports.
    """
    bridge = make_bridge(
        settings.database.bridge,
        database_url,
        min_size=1,
        max_size=settings.database.pool_size,
        connect_timeout=settings.database.connect_timeout,
    )
    await bridge.open()
    processor = HttpProcessor(settings.namespaces)
    modernizer = HttpModernizer(settings.namespaces)
    try:
        applied = await migrate(bridge)
        if applied:
            log.info("applied migrations %s", applied)
        storage = PostgresStorage(
            bridge,
            commit_timeout=settings.database.commit_timeout,
            cache=StateCache(settings.cache.max_bytes, settings.cache.events),
        )
        wakeups = Wakeups(bridge)
        nudges = LoopNudges(wakeups)
        metrics = Metrics(settings.namespaces, settings.sinks)
        # Facts go to the metrics, the log, and whoever started the node (tests).
        observer = fan_out(metrics.observe, log_fact, observer)
        steps = Steps(settings, storage, processor, observer=observer, nudges=nudges)
        metrics.watch(steps.activity, lambda: bridge.pool_stats)
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
            lambda now, limit: storage.claim_notifications(
                now, limit, settings.notifications.lease
            ),
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
        sink_reader = SinkReader(settings, PostgresSinks(bridge), wakeups)
        app = create_app(
            service,
            max_body_bytes=settings.server.max_body_bytes,
            sinks=sink_reader,
            operator=Operator(metrics, Health(bridge)),
            auth=settings.auth,
        )
        sampler = Sampler(
            bridge,
            metrics,
            interval=settings.metrics.sample_interval,
            namespaces=settings.namespaces,
            sinks=settings.sinks,
        )
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(wakeups.run)
            await nursery.start(sampler.run)
            for sequencer in sequencers:
                await nursery.start(sequencer.run)
            # Long-polls answer at once when the node stops, instead of holding up the drain.
            nursery.start_soon(sink_reader.close_when, shutdown)
            binds = await nursery.start(
                partial(
                    serve,
                    app,
                    hypercorn_config(settings, port),
                    shutdown_trigger=shutdown.wait,
                )
            )
            await nursery.start(timer_loop.run)
            await nursery.start(notification_loop.run)
            node = Node(
                url=binds[0],
                service=service,
                steps=steps,
                timer_loop=timer_loop,
                notification_loop=notification_loop,
                shutdown=shutdown,
                sequencers=sequencers,
            )
            try:
                yield node
            finally:
                shutdown.set()
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await processor.aclose()
            await modernizer.aclose()
            await bridge.close()
