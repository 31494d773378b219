"""The composition root: settings in, a running node out.

This is the one place that picks adapters: the Postgres bridge and storage, the HTTP processor
client, the Quart app on hypercorn. Everything else receives what it needs through constructors.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from mg.adapters.processor_http import HttpProcessor
from mg.api.app import create_app
from mg.api.operator import Operator
from mg.observability.fact_log import log_fact
from mg.observability.health import Health
from mg.observability.metrics import Metrics
from mg.observability.observers import fan_out
from mg.observability.sampler import Sampler
from mg.postgres.bridges import make_bridge
from mg.postgres.migrations import migrate
from mg.postgres.storage import PostgresStorage
from mg.service.machines import MachineService
from mg.settings import Settings

log = logging.getLogger("mg.node")


@dataclass
class Node:
    """A running node: where it listens, its service, and how to stop it."""

    url: str
    service: MachineService
    shutdown: trio.Event

    def stop(self) -> None:
        self.shutdown.set()


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


async def _in_scope(
    scope: trio.CancelScope,
    run: Callable[..., Awaitable[None]],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    with scope:
        await run(task_status=task_status)


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
    try:
        applied = await migrate(bridge)
        if applied:
            log.info("applied migrations %s", applied)
        storage = PostgresStorage(bridge, commit_timeout=settings.database.commit_timeout)
        metrics = Metrics(settings.namespaces, settings.sinks)
        service = MachineService(
            settings, storage, processor, observer=fan_out(metrics.observe, log_fact)
        )
        metrics.watch(service.activity, lambda: bridge.pool_stats)
        app = create_app(
            service,
            max_body_bytes=settings.server.max_body_bytes,
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
        # Its own scope: stopping the sampler must not cut short hypercorn's graceful drain.
        sampling = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            await nursery.start(_in_scope, sampling, sampler.run)
            binds = await nursery.start(
                partial(
                    serve,
                    app,
                    hypercorn_config(settings, port),
                    shutdown_trigger=shutdown.wait,
                )
            )
            node = Node(url=binds[0], service=service, shutdown=shutdown)
            try:
                yield node
            finally:
                shutdown.set()
                sampling.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await processor.aclose()
            await bridge.close()
