"""Fixtures shared by integration and acceptance tests: a fresh database per test (cloned from a
migrated template), a fake processor over real HTTP, and mg nodes on port 0."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from mg.node import Node, running_node
from mg.postgres.bridge.factory import make_bridge
from mg.postgres.migrations import migrate
from mg.settings import Settings, from_mapping
from tests.support.api import Api
from tests.support.processor import FakeProcessor, serving

TEMPLATE = "mg_template"


async def _migrate_url(url: str) -> None:
    bridge = make_bridge("thread", url, min_size=1, max_size=2, connect_timeout=10)
    await bridge.open()
    try:
        await migrate(bridge)
    finally:
        await bridge.close()


@pytest.fixture(scope="session")
def template_database(postgres_server: Any) -> str:
    postgres_server.drop_database(TEMPLATE)
    postgres_server.create_database(TEMPLATE)
    trio.run(_migrate_url, postgres_server.url(TEMPLATE))
    return TEMPLATE


@pytest.fixture
def database_url(postgres_server: Any, template_database: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    postgres_server.create_database(name, template=template_database)
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


TOP_LEVEL = ("limits", "timers", "notifications", "server", "logging", "auth", "cache")


def node_settings(processor_url: str, **namespace: Any) -> Settings:
    """Settings for a test node: namespace ``test`` on the given processor. Keyword arguments
    are the namespace's keys, except top-level tables (``database``, ``timers``, ...) and
    ``sinks_config`` (the ``[sinks]`` table)."""
    config: dict[str, Any] = {
        "database": namespace.pop("database", {"pool_size": 16}),
        "sinks": namespace.pop("sinks_config", {}),
        **{name: namespace.pop(name) for name in TOP_LEVEL if name in namespace},
        "namespaces": {
            "test": {
                "processor": {"url": processor_url, **namespace.pop("processor", {})},
                "default_processing_timeout": "10s",
                **namespace,
            }
        },
    }
    return from_mapping(config, environ={})


@pytest.fixture
async def processor() -> AsyncIterator[FakeProcessor]:
    async with serving(FakeProcessor()) as fake:
        yield fake


NodeFactory = Callable[..., Any]


@pytest.fixture
async def nodes(database_url: str, processor: FakeProcessor) -> AsyncIterator[NodeFactory]:
    """``await nodes(**namespace_settings)`` starts another node on the test's database.

    Each node runs as a task of this fixture's nursery, so it is entered and left in one task
    whichever fixture or test asked for it.
    """

    async with node_starter(
        database_url, lambda **namespace: node_settings(processor.url, **namespace)
    ) as start:
        yield start


@asynccontextmanager
async def node_starter(
    database_url: str, make_settings: Callable[..., Settings]
) -> AsyncIterator[NodeFactory]:
    """``await start(**options)`` starts a node on ``database_url`` with
    ``make_settings(**options)``, as a task of this block's nursery (so every node is entered and
    left in one task); the nodes stop when the block ends."""

    async def run(settings: Settings, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with running_node(settings, database_url, port=0) as node:
            task_status.started(node)
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:

        async def start(**options: Any) -> Node:
            node: Node = await nursery.start(run, make_settings(**options))
            return node

        yield start
        nursery.cancel_scope.cancel()


@pytest.fixture
async def node(nodes: NodeFactory) -> Node:
    node: Node = await nodes()
    return node


@pytest.fixture
async def api(node: Node) -> AsyncIterator[Api]:
    client = Api(node.url)
    yield client
    await client.aclose()


@asynccontextmanager
async def api_for(node: Node, **kw: Any) -> AsyncIterator[Api]:
    client = Api(node.url, **kw)
    try:
        yield client
    finally:
        await client.aclose()
