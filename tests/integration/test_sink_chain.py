"""The sink table on its own: the trigger's positions and hashes (the documented test vector),
the writers it refuses, idempotent moves, and the publication."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import msgpack
import pytest
import trio

from mg.core.clock import parse_time
from mg.postgres.bridge.factory import make_bridge
from mg.postgres.bridge.interface import Bridge
from mg.postgres.sinks import lead, move_batch
from tests.support.sql import sql
from tests.unit.test_sink_chain import FIRST, SECOND

INSERT = (
    "INSERT INTO mg_sink_events (sink, ns, machine_id, incarnation, event_id, created_at, "
    "format_version, data) VALUES ($1, 'orders', 'order-1', 1, $2, $3, $4, $5) RETURNING id, hash"
)
OUTBOX = (
    "INSERT INTO mg_sink_outbox (sink, ns, machine_id, incarnation, event_id, created_at, "
    "format_version, data) VALUES ('main', 'ns', $1, $2, $3, now(), NULL, '\\xc0')"
)


@pytest.fixture
async def bridge(database_url: str) -> AsyncIterator[Bridge]:
    made = make_bridge("thread", database_url, min_size=1, max_size=3)
    await made.open()
    yield made
    await made.close()


async def test_the_trigger_gives_positions_and_the_documented_hashes(database_url: str) -> None:
    async with sql(database_url) as db:
        rows = []
        for event_id, event in ((1, FIRST), (2, SECOND)):
            rows += await db.fetch(
                INSERT,
                "main",
                event_id,
                parse_time(str(event["created_at"])),
                event["format_version"],
                msgpack.packb(event["data"]),
            )
        other = await db.fetch(INSERT, "other", 1, parse_time("2026-01-01T00:00:00Z"), 1, b"\xc0")
    assert [(r["id"], r["hash"].hex()) for r in rows] == [
        (1, FIRST["hash"]),
        (2, SECOND["hash"]),
    ]
    assert other[0]["id"] == 1  # each sink counts on its own


async def test_while_a_sequencer_leads_no_other_session_may_write(
    bridge: Bridge, database_url: str
) -> None:
    async with bridge.dedicated() as leader, sql(database_url) as db:
        await lead(leader, "main")
        with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="sequencer"):
            await db.fetch(INSERT, "main", 1, parse_time("2026-01-01T00:00:00Z"), 1, b"\xc0")
        # Another sink is not affected.
        await db.fetch(INSERT, "other", 1, parse_time("2026-01-01T00:00:00Z"), 1, b"\xc0")


async def test_an_explicit_position_that_is_not_next_and_any_update_are_refused(
    database_url: str,
) -> None:
    async with sql(database_url) as db:
        await db.fetch(INSERT, "main", 1, parse_time("2026-01-01T00:00:00Z"), 1, b"\xc0")
        with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="next position"):
            await db.execute(
                "INSERT INTO mg_sink_events (sink, id, ns, machine_id, incarnation, event_id, "
                "created_at, data) VALUES ('main', 5, 'n', 'm', 1, 2, now(), '\\xc0')"
            )
        with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="immutable"):
            await db.execute("UPDATE mg_sink_events SET data = '\\xc3' WHERE id = 1")


async def test_moving_an_event_twice_leaves_one_row_and_an_empty_outbox(
    bridge: Bridge, database_url: str
) -> None:
    async with sql(database_url) as db:
        for machine, incarnation, event_id in (("a", 1, 1), ("a", 1, 1), ("a", 2, 1), ("b", 1, 1)):
            await db.execute(OUTBOX, machine, incarnation, event_id)
        async with bridge.dedicated() as leader:
            await lead(leader, "main")
            batch = await move_batch(leader, "main", 100, timeout=30)
        rows = await db.fetch(
            "SELECT id, machine_id, incarnation FROM mg_sink_events WHERE sink = 'main' ORDER BY id"
        )
        assert await db.fetchval("SELECT count(*) FROM mg_sink_outbox") == 0
    assert (batch.taken, batch.moved, batch.last_position) == (4, 3, 3)
    # Gap-free even though one insert was skipped; a new incarnation is not a duplicate.
    assert [(r["id"], r["machine_id"], r["incarnation"]) for r in rows] == [
        (1, "a", 1),
        (2, "a", 2),
        (3, "b", 1),
    ]


async def test_a_batch_takes_the_oldest_rows_first_and_keeps_their_order(
    bridge: Bridge, database_url: str
) -> None:
    async with sql(database_url) as db:
        for event_id in range(1, 11):
            await db.execute(OUTBOX, "m", 1, event_id)
        async with bridge.dedicated() as leader:
            await lead(leader, "main")
            first = await move_batch(leader, "main", 4, timeout=30)
            while (await move_batch(leader, "main", 4, timeout=30)).taken:
                await trio.lowlevel.checkpoint()
        found = await db.fetch("SELECT id, event_id FROM mg_sink_events ORDER BY id")
    assert (first.taken, first.last_position) == (4, 4)
    assert [(r["id"], r["event_id"]) for r in found] == [(n, n) for n in range(1, 11)]


async def test_the_sink_table_is_published_for_logical_replication(database_url: str) -> None:
    async with sql(database_url) as db:
        tables = await db.fetch(
            "SELECT tablename FROM pg_publication_tables WHERE pubname = 'mg_sink'"
        )
        inserts_only = await db.fetchval(
            "SELECT pubinsert AND NOT (pubupdate OR pubdelete OR pubtruncate) "
            "FROM pg_publication WHERE pubname = 'mg_sink'"
        )
    assert [r["tablename"] for r in tables] == ["mg_sink_events"]
    assert inserts_only
