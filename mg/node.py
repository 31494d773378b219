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

from mg.adapters.processor_http import HttpProcessor
from mg.api.app import create_app
from mg.core.facts import Observer, ignore
from mg.core.sink import sequencer_topic
from mg.postgres.bridges import make_bridge
from mg.postgres.migrations import migrate
from mg.postgres.sequencer import Sequencer
from mg.postgres.sinks import PostgresSinks
from mg.postgres.storage import PostgresStorage
from mg.postgres.wakeups import Wakeups
from mg.service.machines import MachineService
from mg.service.sinks import SinkReader
from mg.settings import Settings

log = logging.getLogger("mg.node")


@dataclass
class Node:
    """A running node: where it listens, its service, and how to stop it."""

    url: str
    service: MachineService
    shutdown: trio.Event
    sequencers: tuple[Sequencer, ...] = ()

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
    try:
        applied = await migrate(bridge)
        if applied:
            log.info("applied migrations %s", applied)
        wakeups = Wakeups(bridge)
        sequencers = tuple(
            Sequencer(bridge, wakeups, options, observer=observer)
            for options in settings.sink_options.values()
        )
        local = {sequencer.sink: sequencer for sequencer in sequencers}

        def events_written(sinks: tuple[str, ...]) -> None:
            for sink in sinks:
                here = local.get(sink)
                if here is not None and here.leading:
                    # No NOTIFY to the whole cluster for the sequencer of this very node (if it
                    # has just stopped leading, the next leader starts with a batch anyway).
                    wakeups.wake_local(sequencer_topic(sink))
                else:
                    wakeups.poke(sequencer_topic(sink))

        storage = PostgresStorage(
            bridge, commit_timeout=settings.database.commit_timeout, events_written=events_written
        )
        service = MachineService(settings, storage, processor, observer=observer)
        sink_reader = SinkReader(settings, PostgresSinks(bridge), wakeups)
        app = create_app(service, max_body_bytes=settings.server.max_body_bytes, sinks=sink_reader)
        shutdown = trio.Event()
        async with trio.open_nursery() as background:
            await background.start(wakeups.run)
            for sequencer in sequencers:
                await background.start(sequencer.run)
            # Long-polls answer at once when the node stops, instead of holding up the drain.
            background.start_soon(sink_reader.close_when, shutdown)
            try:
                async with trio.open_nursery() as nursery:
                    binds = await nursery.start(
                        partial(
                            serve,
                            app,
                            hypercorn_config(settings, port),
                            shutdown_trigger=shutdown.wait,
                        )
                    )
                    node = Node(
                        url=binds[0], service=service, shutdown=shutdown, sequencers=sequencers
                    )
                    try:
                        yield node
                    finally:
                        shutdown.set()
            finally:
                # Once hypercorn has drained (steps committed meanwhile were still sequenced),
                # the background loops, which never end by themselves, are stopped.
                background.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await processor.aclose()
            await bridge.close()
