"""The migration runner: produces the schema, once, even when nodes start together."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from mg.postgres.bridge.factory import make_bridge
from mg.postgres.migrations import MigrationError, is_current, migrate
from mg.postgres.sql_files import migrations
from tests.support.sql import sql


@pytest.fixture
def empty_database(postgres_server: Any) -> Iterator[str]:
    name = f"e_{uuid.uuid4().hex[:16]}"
    postgres_server.create_database(name)
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


async def test_two_runners_at_once_apply_each_migration_once(empty_database: str) -> None:
    bridges = [
        make_bridge("thread", empty_database, min_size=1, max_size=2, connect_timeout=10)
        for _ in range(2)
    ]
    results: list[list[int]] = []
    try:
        for bridge in bridges:
            await bridge.open()
        assert not await is_current(bridges[0])

        async def run(bridge: Any) -> None:
            results.append(await migrate(bridge))

        async with trio.open_nursery() as nursery:
            for bridge in bridges:
                nursery.start_soon(run, bridge)
        everything = [m.version for m in migrations()]
        assert sorted(results, key=len) == [[], everything]
        assert await migrate(bridges[0]) == []
        assert await is_current(bridges[1])
    finally:
        for bridge in bridges:
            await bridge.close()

    async with sql(empty_database) as conn:
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {
            "mg_machines",
            "mg_events",
            "mg_tags",
            "mg_notifications",
            "mg_sink_outbox",
            "mg_sink_events",
        } <= tables
        count = await conn.fetchval("SELECT count(*) FROM mg_schema_migrations")
        assert count == len(migrations())
        # An applied migration whose file changed is refused, not silently skipped.
        await conn.execute("UPDATE mg_schema_migrations SET checksum = 'x' WHERE version = 1")
    bridge = make_bridge("thread", empty_database, min_size=1, max_size=2, connect_timeout=10)
    await bridge.open()
    try:
        with pytest.raises(MigrationError, match="changed"):
            await migrate(bridge)
    finally:
        await bridge.close()
