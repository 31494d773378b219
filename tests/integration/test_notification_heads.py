"""Only the head of a machine's notification queue has a delivery time
(sql/migrations/0006_notification_heads.sql): the claim reads heads only, consuming a head makes
the next one due, and the queue lock closes the race between a notify and a consuming step."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import trio

from mg.postgres.sql_files import query
from tests.support.sql import Sql, sql

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Sql]:
    async with sql(database_url) as conn:
        for machine_id in ("hot", "cold"):
            await conn.execute(
                "INSERT INTO mg_machines (ns, id, incarnation, version, status, last_event_id,"
                " created_at, updated_at) VALUES ('n', $1, 1, 1, 'sleeping', 0, now(), now())",
                machine_id,
            )
        yield conn


async def enqueue(db: Sql, machine_id: str) -> int | None:
    found: int | None = await db.fetchval(
        query("enqueue_notification"), "n", machine_id, b"\xc0", None, None, "forward", None, NOW
    )
    return found


async def delivery_times(db: Sql, machine_id: str) -> list[datetime | None]:
    rows = await db.fetch(
        "SELECT deliver_at FROM mg_notifications WHERE ns = 'n' AND machine_id = $1 ORDER BY id",
        machine_id,
    )
    return [r["deliver_at"] for r in rows]


async def claim(db: Sql, limit: int = 10) -> list[tuple[str, int]]:
    rows = await db.fetch(query("claim_due_notifications"), NOW, limit, 30.0)
    return sorted((r["machine_id"], r["id"]) for r in rows)


async def test_only_the_head_is_due_and_consuming_it_makes_the_next_one_due(db: Sql) -> None:
    first, second, third = [await enqueue(db, "hot") for _ in range(3)]
    assert await delivery_times(db, "hot") == [NOW, None, None]
    assert await enqueue(db, "missing") is None

    assert await claim(db) == [("hot", first)]
    await db.execute(query("delete_notification"), first)
    # The next one is due at once (the database's now), the one after still waits.
    times = await delivery_times(db, "hot")
    assert times[0] is not None
    assert times[1] is None
    assert await db.fetchval("SELECT min(id) FROM mg_notifications") == second

    # Consuming one that is gone already changes nothing.
    await db.execute(query("delete_notification"), first)
    assert len(await delivery_times(db, "hot")) == 2
    assert third is not None


async def test_a_deep_queue_is_not_read_by_the_claim(db: Sql) -> None:
    """With 2,000 notifications queued on one machine, two rows have a delivery time (the
    heads): all the claim's index (partial, on deliver_at) holds. Before 0006 it held 2,001 and
    the claim stepped over 1,999 of them each time."""
    await db.execute(
        "SELECT mg_enqueue_notification('n', 'hot', '\\xc0', NULL, NULL, 'forward', NULL, $1)"
        " FROM generate_series(1, 2000)",
        NOW,
    )
    cold = await enqueue(db, "cold")
    hot_head = await db.fetchval("SELECT min(id) FROM mg_notifications WHERE machine_id = 'hot'")
    with_time = "SELECT count(*) FROM mg_notifications WHERE deliver_at IS NOT NULL"
    assert await db.fetchval(with_time) == 2
    assert await claim(db) == [("cold", cold), ("hot", hot_head)]


async def test_repair_makes_the_parked_head_due_and_the_rest_keep_waiting(db: Sql) -> None:
    first, _second = await enqueue(db, "hot"), await enqueue(db, "hot")
    # A failed machine parks its head.
    await db.execute(query("postpone_notification"), first, None, 1, "failed")
    assert await delivery_times(db, "hot") == [None, None]
    await db.execute(query("resume_notifications"), "n", "hot", NOW)
    assert await delivery_times(db, "hot") == [NOW, None]


async def test_a_notify_during_a_consuming_step_waits_and_becomes_the_head(
    db: Sql, database_url: str
) -> None:
    """Without the queue lock this notification would see the old head (its deletion not yet
    committed), queue behind it, and be left behind nothing: never delivered."""
    head = await enqueue(db, "hot")
    results: list[int | None] = []
    async with db.bridge.session() as step:
        await step.run(lambda conn: conn.execute("BEGIN"))
        await step.run(lambda conn: conn.execute(query("delete_notification"), head))

        async def notify() -> None:
            results.append(await enqueue(db, "hot"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(notify)
            await trio.sleep(0.5)
            assert results == [], "the notify did not wait for the consuming step"
            await step.run(lambda conn: conn.execute("COMMIT"))
    [new] = results
    assert new is not None
    assert await delivery_times(db, "hot") == [NOW]


async def test_a_notify_during_a_remove_is_removed_with_the_queue_or_refused(
    db: Sql, database_url: str
) -> None:
    await enqueue(db, "hot")
    results: list[int | None] = []
    async with db.bridge.session() as step:
        await step.run(lambda conn: conn.execute("BEGIN"))
        for name in ("lock_notification_queue", "delete_notifications", "delete_machine"):
            await step.run(lambda conn, name=name: conn.execute(query(name), "n", "hot"))

        async def notify() -> None:
            results.append(await enqueue(db, "hot"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(notify)
            await trio.sleep(0.5)
            assert results == []
            await step.run(lambda conn: conn.execute("COMMIT"))
    assert results == [None]
    assert await delivery_times(db, "hot") == []
