"""The composition root: settings in, a running node out.

This is the one place that picks adapters: the Postgres bridge and storage, the HTTP processor
client, the Quart app on hypercorn. Everything else receives what it needs through constructors.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
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
from mg.loops.claims import ClaimLoop
from mg.postgres.bridges import make_bridge
from mg.postgres.migrations import migrate
from mg.postgres.storage import PostgresStorage
from mg.postgres.wakeups import Wakeups
from mg.service.machines import MachineService
from mg.service.ports import NotificationClaim, TimerClaim
from mg.service.signals import Signals
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

    def stop(self) -> None:
        self.shutdown.set()


class LoopNudges:
    """``Nudges`` for a node: wake the loops here at once, and other nodes by NOTIFY."""

    def __init__(self, wakeups: Wakeups) -> None:
        self._wakeups = wakeups
        self.timer_loop: ClaimLoop[TimerClaim] | None = None

    def timer_scheduled(self, at: datetime) -> None:
        loop = self.timer_loop
        # A loop asleep until before ``at`` will find the timer anyway when it wakes.
        if loop is None or loop.sleeping_until is None or at < loop.sleeping_until:
            self._wakeups.poke(TIMERS)

    def notification_queued(self) -> None:
        self._wakeups.poke(NOTIFICATIONS)

    def events_written(self, sinks: tuple[str, ...]) -> None:
        for sink in sinks:
            self._wakeups.poke(f"sink:{sink}")


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
    return config


@asynccontextmanager
async def running_node(
    settings: Settings, database_url: str, *, port: int | None = None
) -> AsyncIterator[Node]:
    """Start a node on ``database_url``; it stops when the block ends or ``stop()`` is called.

    ``port=0`` binds a free port (tests); the node's ``url`` says which.
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
        storage = PostgresStorage(bridge, commit_timeout=settings.database.commit_timeout)
        wakeups = Wakeups(bridge)
        nudges = LoopNudges(wakeups)
        steps = Steps(settings, storage, processor, nudges=nudges)
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
        app = create_app(service, max_body_bytes=settings.server.max_body_bytes)
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(wakeups.run)
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
