"""Migrations 0007 and 0008 (data lifecycle) on a database of the previous schema that holds
machines and sink events: they only add, and everything already there stays readable."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mg.core.model import HistoryBounds, Range
from mg.postgres.bridge.factory import make_bridge
from mg.postgres.migrations import is_current, migrate
from mg.postgres.sinks import PostgresSinks
from mg.postgres.sql_files import migrations
from mg.postgres.storage import PostgresStorage
from mg.service.sink_verify import verify_chain
from tests.support.sql import sql

LIFECYCLE = (7, 8)

MACHINE = """
INSERT INTO mg_machines (ns, id, incarnation, version, status, last_event_id, created_at,
                         updated_at)
VALUES ('test', 'm', 1, 3, 'sleeping', 3, now(), now())
"""
EVENTS = """
INSERT INTO mg_events (ns, machine_id, event_id, created_at, format_version, data)
SELECT 'test', 'm', n, now(), 1, '\\xa1' || decode(to_hex(96 + n), 'hex')
FROM generate_series(1, 3) AS n
"""
SINK_EVENTS = """
INSERT INTO mg_sink_events (sink, ns, machine_id, incarnation, event_id, created_at,
                            format_version, data)
SELECT 'main', 'test', 'm', 1, n, now(), 1, '\\xa1' || decode(to_hex(96 + n), 'hex')
FROM generate_series(1, 3) AS n
"""


@pytest.fixture
def empty_database(postgres_server: Any) -> Iterator[str]:
    name = f"u_{uuid.uuid4().hex[:16]}"
    postgres_server.create_database(name)
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


async def test_the_lifecycle_migrations_keep_machines_and_sink_events(
    empty_database: str,
) -> None:
    previous = [m for m in migrations() if m.version < min(LIFECYCLE)]
    assert {m.version for m in migrations()} >= set(LIFECYCLE)
    bridge = make_bridge("thread", empty_database, min_size=1, max_size=2, connect_timeout=10)
    await bridge.open()
    try:
        await migrate(bridge, known=previous)  # the previous release's schema
        async with sql(empty_database) as db:
            for statement in (MACHINE, EVENTS, SINK_EVENTS):
                await db.execute(statement)
            before = await db.fetch("SELECT * FROM mg_sink_events ORDER BY id")
        assert not await is_current(bridge)
        # Expand steps: a node applies them by itself, with older nodes possibly running.
        assert all(
            m.compatible_with <= min(LIFECYCLE) - 1 for m in migrations() if m.version in LIFECYCLE
        )
        assert set(LIFECYCLE) <= set(await migrate(bridge))
        assert await is_current(bridge)
        machine = await PostgresStorage(bridge).get("test", "m", Range())
        assert machine is not None
        assert machine.history_bounds == HistoryBounds(1, 3)
        assert [e.data for e in machine.history] == ["a", "b", "c"]
        sinks = PostgresSinks(bridge)
        bounds = await sinks.bounds("main")
        assert (bounds.first, bounds.last, bounds.anchor) == (1, 3, bytes(32))
        verdict = await verify_chain(sinks, "main")
        assert (verdict.intact, verdict.checked) == (True, 3)
        async with sql(empty_database) as db:
            assert await db.fetch("SELECT * FROM mg_sink_events ORDER BY id") == before
            view = await db.fetch("SELECT sink, first, last, held FROM mg_sink_retention")
            assert [tuple(r) for r in view] == [("main", 1, 3, 3)]
    finally:
        await bridge.close()
