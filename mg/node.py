"""The composition root: settings in, a running node out.

This is the one place that picks adapters: the Postgres bridge and storage, the HTTP processor
client, the Quart app on hypercorn. Everything else receives what it needs through constructors.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from mg.adapters.modernizer_http import HttpModernizer
from mg.adapters.processor_http import HttpProcessor
from mg.api.app import create_app
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
        service = MachineService(settings, storage, processor, modernizer=modernizer)
        app = create_app(service, max_body_bytes=settings.server.max_body_bytes)
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
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
    finally:
        with trio.CancelScope(shield=True):
            await processor.aclose()
            await modernizer.aclose()
            await bridge.close()
