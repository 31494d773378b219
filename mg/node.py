"""A node's life: settings in, a running node out, and a clean stop.

Start-up order: the HTTP server first (``/health/live`` answers at once, ``/health/ready`` says
503 and client requests get ``503 unavailable`` until Postgres answers), then the database
supervisor, which retries with back-off until Postgres answers and the schema is migrated, and
only then starts the background loops (wake-ups, timers, notifications, sink sequencers, the
metrics sampler). A Postgres lost later means 503s and back-off in every loop, never an exit.

Only a connection-level failure is waited for. A cause that waiting will not heal (``CannotRun``:
mg's SQL not installed, a database URL the driver cannot use, Postgres refusing the node, a
schema this code cannot run against) stops the node: ``Node.refusal`` says why, and
``running_node`` raises it (``mg serve`` exits with its code, docs/upgrading.md).

Stop: the HTTP server stops accepting and finishes the requests in flight, the timer and
notification loops stop claiming and finish the steps in flight, all within
``server.graceful_timeout``; whatever is left then is cancelled (a cancelled step is rolled back
and its timer or notification is claimed again when its lease ends).
"""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio
from hypercorn.config import Config as HypercornConfig

from mg.connections import raise_open_file_limit
from mg.core.facts import Observer, ignore
from mg.databases.unit import Database, pool_size
from mg.errors import MgError
from mg.http_server import serve
from mg.loops.claims import ClaimLoop
from mg.postgres.bridge.factory import make_bridge
from mg.postgres.bridge.interface import Bridge
from mg.postgres.failures import refusal, translate
from mg.postgres.migrations import migrate
from mg.postgres.pruner import Pruner
from mg.postgres.sequencer import Sequencer
from mg.postgres.sql_files import migrations, queries
from mg.service.machines import MachineService
from mg.service.ports import NotificationClaim, TimerClaim
from mg.service.steps import Steps
from mg.settings import Settings
from mg.startup import CannotRun
from mg.wiring import Parts, assemble
from mg.workers.worker import Worker

log = logging.getLogger("mg.node")


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
    pruners: tuple[Pruner, ...] = ()
    ready: trio.Event = field(default_factory=trio.Event)
    refusal: CannotRun | None = None

    def stop(self) -> None:
        self.shutdown.set()

    def refuse(self, cause: CannotRun) -> None:
        """Stop the node for a cause that waiting will not heal."""
        self.refusal = cause
        self.shutdown.set()


def hypercorn_config(
    settings: Settings, port: int | None = None, listen_fd: int | None = None
) -> HypercornConfig:
    config = HypercornConfig()
    # Through mg's own logging setup (JSON lines, level), not a second handler of hypercorn's.
    config.errorlog = logging.getLogger("hypercorn.error")
    bind_port = settings.server.port if port is None else port
    config.bind = [f"{settings.server.host}:{bind_port}"]
    if listen_fd is not None:  # a worker: the socket its parent bound (mg.workers)
        config.bind = [f"fd://{listen_fd}"]
    config.graceful_timeout = settings.server.graceful_timeout
    config.accesslog = None
    config.keep_alive_timeout = settings.server.keep_alive_timeout
    if settings.server.certfile:
        config.certfile = settings.server.certfile
        config.keyfile = settings.server.keyfile
    if settings.server.ca_certs:
        # Mutual TLS: only clients with a certificate signed by these CAs get in.
        config.ca_certs = settings.server.ca_certs
        config.verify_mode = ssl.CERT_REQUIRED
    return config


# Descriptors kept for what is not a client connection: Postgres, processors, logs, files.
_RESERVED_DESCRIPTORS = 128


def connection_cap(settings: Settings) -> int:
    """``server.max_connections``, lowered to what the open-file limit leaves room for (the
    soft limit is raised to the hard one first)."""
    limit = raise_open_file_limit()
    reserved = (
        _RESERVED_DESCRIPTORS
        + settings.database.pool_size
        + sum(ns.processor_max_connections for ns in settings.namespaces.values())
    )
    room = max(limit - reserved, 16)
    if room < settings.server.max_connections:
        log.warning(
            "server.max_connections %d is more than the open-file limit %d leaves room for; "
            "capping client connections at %d",
            settings.server.max_connections,
            limit,
            room,
        )
        return room
    return settings.server.max_connections


async def _until_migrated(bridge: Bridge, name: str = "") -> None:
    """Migrate, retrying with back-off while Postgres does not answer; ``CannotRun`` for the
    causes that retrying will not heal."""
    which = f" (database {name})" if name else ""
    backoff = 0.2
    while True:
        try:
            applied = await migrate(bridge)
        except CannotRun:
            raise
        except Exception as error:
            refused = refusal(error)
            if refused is not None:
                raise refused from error
            if translate(error, doing="migrating") is None and not isinstance(error, MgError):
                raise
            log.warning("waiting for Postgres%s (%s); retrying in %.1fs", which, error, backoff)
            await trio.sleep(backoff * (1 + random.random() / 2))
            backoff = min(backoff * 2, 10.0)
            continue
        if applied:
            log.info("applied migrations %s%s", applied, which)
        return


async def _background(parts: Parts, node: Node, *, task_status: trio.TaskStatus[None]) -> None:
    """Wait for each database, then run everything that needs it; the node is ready once every
    database is (each database's namespaces are served as soon as it is)."""
    task_status.started()
    async with trio.open_nursery() as nursery:
        for database in parts.databases:
            nursery.start_soon(_run_database, database, len(parts.databases) > 1, node)
        for database in parts.databases:
            await database.ready.wait()
        node.ready.set()
        log.info("the node is ready")


async def _run_database(database: Database, named: bool, node: Node) -> None:
    try:
        await _until_migrated(database.bridge, database.name if named else "")
    except CannotRun as cause:
        # A cause that waiting will not heal, in any database, stops the node (mg.startup).
        node.refuse(cause)
        return
    async with trio.open_nursery() as nursery:
        await nursery.start(database.wakeups.run)
        assert database.sampler is not None
        await nursery.start(database.sampler.run)
        for sequencer in database.sequencers:
            await nursery.start(sequencer.run)
        for pruner in database.pruners:
            await nursery.start(pruner.run)
        assert database.timer_loop is not None
        assert database.notification_loop is not None
        await nursery.start(database.timer_loop.run)
        await nursery.start(database.notification_loop.run)
        database.ready.set()
        if named:
            log.info("database %s is ready", database.name)


@asynccontextmanager
async def running_node(
    settings: Settings,
    database_url: str,
    *,
    port: int | None = None,
    observer: Observer = ignore,
    wait_ready: bool = True,
    worker: Worker | None = None,
) -> AsyncIterator[Node]:
    """Start a node on ``database_url``; it stops when the block ends or ``stop()`` is called.

    ``port=0`` binds a free port (tests); the node's ``url`` says which. ``observer`` receives
    the facts the node reports. With ``wait_ready`` the block starts once the database is
    reachable and migrated; without, as soon as HTTP is up (``node.ready`` tells the rest).
    A ``worker`` serves on its parent's socket and answers ``/metrics`` for all workers. A cause
    that waiting will not heal stops the node and is raised (``CannotRun``).
    """
    # An install without mg's SQL says so before anything starts (ResourceMissing).
    migrations()
    queries()
    bridges = await _open_bridges(settings, database_url)
    ready = trio.Event()
    exposition = None if worker is None else worker.exposition()
    gather = None if exposition is None else exposition.gather
    # Client requests are served once a database is ready (the others answer 503 until theirs
    # is); the node is ready when all are.
    serving = ready if len(bridges) == 1 else trio.Event()
    parts = assemble(settings, bridges, observer, serving, gather)
    shutdown = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            # Long-polls answer at once when the node stops, instead of holding up the drain.
            nursery.start_soon(parts.sink_reader.close_when, shutdown)
            if exposition is not None:
                exposition.attach(parts.metrics.render)
                await nursery.start(exposition.serve)
            http_done = trio.Event()
            if worker is not None and worker.index > 0:
                # Worker 0 answers at once (/health/live, 503 until ready); the others take
                # connections from the shared socket only once they can serve them.
                http = (parts, settings, port, shutdown, http_done, worker.listen_fd)
                nursery.start_soon(_serve_http_when, serving, *http)
                binds = [f"fd://{worker.listen_fd}"]
            else:
                listen_fd = None if worker is None else worker.listen_fd
                binds = await nursery.start(
                    _serve_http, parts, settings, port, shutdown, http_done, listen_fd
                )
            node = Node(
                url=binds[0],
                service=parts.service,
                steps=parts.steps,
                timer_loop=parts.timer_loop,
                notification_loop=parts.notification_loop,
                shutdown=shutdown,
                sequencers=parts.sequencers,
                pruners=parts.pruners,
                ready=ready,
            )
            await nursery.start(_background, parts, node)
            if serving is not ready:
                nursery.start_soon(_serve_when_any, parts, serving)
            if wait_ready:
                await _ready_or_stopped(node)
            try:
                if node.refusal is None:
                    yield node
            finally:
                with trio.CancelScope(shield=True):
                    await _drain(parts, settings, shutdown, http_done)
                nursery.cancel_scope.cancel()
        if node.refusal is not None:
            raise node.refusal
    finally:
        with trio.CancelScope(shield=True):
            await parts.aclose()
            for bridge in bridges.values():
                await bridge.close()


async def _open_bridges(settings: Settings, default_url: str) -> dict[str, Bridge]:
    """A pool per database, sized by its namespaces. No connection at open (min_size 0): a
    node starts even while a Postgres is away."""
    bridges: dict[str, Bridge] = {}
    placements = settings.placements()
    loops = settings.timers.concurrency + settings.notifications.concurrency
    for placement in placements:
        slots = sum(settings.step_slots(ns) for ns in placement.namespaces)
        size = settings.database.pool_size
        if len(placements) > 1:
            size = pool_size(size, min(slots, settings.limits.max_steps_in_flight), loops)
        bridge = make_bridge(
            settings.database.bridge,
            placement.url or default_url,
            min_size=0,
            max_size=size,
            connect_timeout=settings.database.connect_timeout,
        )
        await bridge.open()
        bridges[placement.name] = bridge
    return bridges


async def _serve_when_any(parts: Parts, serving: trio.Event) -> None:
    async with trio.open_nursery() as nursery:
        for database in parts.databases:

            async def set_when(database: Database = database) -> None:
                await database.ready.wait()
                serving.set()
                nursery.cancel_scope.cancel()

            nursery.start_soon(set_when)


async def _serve_http_when(
    serving: trio.Event,
    parts: Parts,
    settings: Settings,
    port: int | None,
    shutdown: trio.Event,
    done: trio.Event,
    listen_fd: int | None,
) -> None:
    async with trio.open_nursery() as waiting:

        async def stop_waiting() -> None:
            await shutdown.wait()
            waiting.cancel_scope.cancel()

        waiting.start_soon(stop_waiting)
        await serving.wait()
        waiting.cancel_scope.cancel()
    if shutdown.is_set():
        done.set()
        return
    await _serve_http(
        parts, settings, port, shutdown, done, listen_fd, task_status=trio.TASK_STATUS_IGNORED
    )


async def _ready_or_stopped(node: Node) -> None:
    async with trio.open_nursery() as nursery:

        async def first(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(first, node.ready)
        nursery.start_soon(first, node.shutdown)


async def _serve_http(
    parts: Parts,
    settings: Settings,
    port: int | None,
    shutdown: trio.Event,
    done: trio.Event,
    listen_fd: int | None = None,
    *,
    task_status: trio.TaskStatus[list[str]],
) -> None:
    parts.connections.cap = connection_cap(settings)
    try:
        await serve(
            parts.app,
            hypercorn_config(settings, port, listen_fd),
            parts.connections,
            http2=settings.server.http2,
            max_body_bytes=settings.server.max_body_bytes,
            shutdown_trigger=shutdown.wait,
            task_status=task_status,
        )
    finally:
        done.set()


async def _drain(
    parts: Parts, settings: Settings, shutdown: trio.Event, http_done: trio.Event
) -> None:
    """Stop taking work and let the work in flight finish, within the graceful timeout."""
    shutdown.set()
    loops = [
        loop
        for database in parts.databases
        for loop in (database.timer_loop, database.notification_loop)
        if loop is not None
    ]
    for loop in loops:
        loop.stop()
    with trio.move_on_after(settings.server.graceful_timeout) as limit:
        await http_done.wait()
        for loop in loops:
            await loop.drained.wait()
    if limit.cancelled_caught:
        log.warning(
            "work still in flight after %.1fs; cancelling it", settings.server.graceful_timeout
        )
