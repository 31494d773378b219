"""The operators' psql views (sql/migrations/0004_views.sql) on a scripted scenario: rows
written by hand in every state the loops and steps leave them in, then each view read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.sql import Sql, sql

# (ns, id, status, timer fire_at offset in s, wake_at offset, lease owner, lease offset,
#  retry subject, retry attempt, retry next offset, failure reason, status before failure)
MACHINES: list[tuple[Any, ...]] = [
    ("orders", "o1-sleeping", "sleeping", None, None, None, None, None, None, None, None, None),
    ("orders", "o2-later", "waiting", 3600, 3600, None, None, None, None, None, None, None),
    ("orders", "o3-due", "waiting", -600, -600, None, None, None, None, None, None, None),
    ("orders", "o4-firing", "waiting", -60, 30, "node-a", 30, None, None, None, None, None),
    ("orders", "o5-failed", "failed", -120, None, None, None, None, None, None, "boom", "waiting"),
    ("orders", "o6-retry", "retrying", -90, -5, None, None, "timer", 2, -5, None, None),
    ("orders", "o7-orphan", "waiting", -300, -1, "dead-node", -1, None, None, None, None, None),
    ("refunds", "r1-notif", "retrying", None, None, None, None, "notification", 1, 20, None, None),
]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Sql]:
    async with sql(database_url) as conn:
        for (
            ns,
            mid,
            status,
            fire,
            wake,
            owner,
            lease,
            subject,
            attempt,
            nxt,
            reason,
            before,
        ) in MACHINES:
            await conn.execute(
                "INSERT INTO mg_machines (ns, id, incarnation, version, status, last_event_id,"
                " timer_fire_at, wake_at, lease_owner, lease_until, retry_subject, retry_attempt,"
                " retry_next_at, retry_first_failed_at, retry_reason, failure_reason,"
                " status_before_failure, timer_trace, created_at, updated_at)"
                " VALUES ($1, $2, 1, 1, $3, 0,"
                " now() + make_interval(secs => $4), now() + make_interval(secs => $5), $6,"
                " now() + make_interval(secs => $7), $8, $9, now() + make_interval(secs => $10),"
                " CASE WHEN $8::text IS NOT NULL THEN now() - interval '1 minute' END,"
                " CASE WHEN $8::text IS NOT NULL THEN 'processor answered 503' END,"
                " $11, $12, CASE WHEN $4::float8 IS NOT NULL THEN '00-trace-span-01' END,"
                " now() - interval '1 hour', now())",
                ns, mid, status, fire, wake, owner, lease, subject, attempt, nxt, reason, before,
            )  # fmt: skip
        # Notifications: o1's head is due and one waits behind it (only a queue's head has a
        # delivery time), the failed machine's head is parked with one behind it, one retry
        # is scheduled for r1.
        for ns, mid, deliver, attempt, error in (
            ("orders", "o1-sleeping", -2, 0, None),
            ("orders", "o1-sleeping", None, 0, None),
            ("orders", "o5-failed", None, 0, None),
            ("orders", "o5-failed", None, 0, None),
            ("refunds", "r1-notif", 20, 1, "processor unreachable"),
        ):
            await conn.execute(
                "INSERT INTO mg_notifications (ns, machine_id, args, created_at, deliver_at,"
                " attempt, last_error) VALUES ($1, $2, '\\xc0', now() - interval '30 seconds',"
                " now() + make_interval(secs => $3), $4, $5)",
                ns, mid, deliver, attempt, error,
            )  # fmt: skip
        # Sink "main" has three events sequenced (positions and hashes come from the trigger) and
        # three more waiting in the outbox; sink "audit" has only a backlog.
        for event_id in (1, 2, 3):
            await conn.execute(
                "INSERT INTO mg_sink_events (sink, ns, machine_id, incarnation, event_id,"
                " created_at, data) VALUES ('main', 'orders', 'o1-sleeping', 1, $1::bigint,"
                " now() - interval '90 seconds', '\\xc0')",
                event_id,
            )
        await conn.execute(
            "INSERT INTO mg_sink_outbox (sink, ns, machine_id, incarnation, event_id,"
            " created_at, data) VALUES ('audit', 'orders', 'o1-sleeping', 1, 1,"
            " now() - interval '5 seconds', '\\xc0')"
        )
        for event_id in (4, 5, 6):
            await conn.execute(
                "INSERT INTO mg_sink_outbox (sink, ns, machine_id, incarnation, event_id,"
                " created_at, data) VALUES ('main', 'orders', 'o1-sleeping', 1, $1::bigint,"
                " now() - make_interval(secs => 64 - $1::int), '\\xc0')",
                event_id,
            )
        yield conn


async def test_machine_counts_by_namespace_and_status(db: Sql) -> None:
    rows = await db.fetch("SELECT ns, status, machines FROM mg_machine_counts ORDER BY ns, status")
    assert [tuple(r) for r in rows] == [
        ("orders", "failed", 1),
        ("orders", "retrying", 1),
        ("orders", "sleeping", 1),
        ("orders", "waiting", 4),
        ("refunds", "retrying", 1),
    ]


async def test_failed_machines_with_their_reasons(db: Sql) -> None:
    [row] = await db.fetch("SELECT * FROM mg_failed_machines")
    assert (row["ns"], row["id"], row["reason"], row["status_before"]) == (
        "orders",
        "o5-failed",
        "boom",
        "waiting",
    )
    assert row["kept_timer"] is not None
    assert row["queued_notifications"] == 2


async def test_retrying_machines(db: Sql) -> None:
    rows = await db.fetch(
        "SELECT id, retrying, failed_attempts, last_error FROM mg_retrying_machines"
    )
    assert [tuple(r) for r in rows] == [
        ("o6-retry", "timer", 2, "processor answered 503"),
        ("r1-notif", "notification", 1, "processor answered 503"),
    ]


async def test_timers_and_their_states(db: Sql) -> None:
    rows = await db.fetch("SELECT id, state, claimed_by, trace FROM mg_timers")
    assert [(r["id"], r["state"], r["claimed_by"]) for r in rows] == [
        ("o3-due", "due", None),
        ("o7-orphan", "due", "dead-node"),
        ("o5-failed", "suspended", None),
        ("o6-retry", "retrying", None),
        ("o4-firing", "firing", "node-a"),
        ("o2-later", "scheduled", None),
    ]
    assert {r["trace"] for r in rows} == {"00-trace-span-01"}


async def test_due_timers_are_the_ones_no_loop_holds(db: Sql) -> None:
    rows = await db.fetch("SELECT id, kind, overdue_by, expired_claim_of FROM mg_due_timers")
    assert [(r["id"], r["kind"], r["expired_claim_of"]) for r in rows] == [
        ("o3-due", "timer", None),
        ("o6-retry", "retry", None),
        ("o7-orphan", "timer", "dead-node"),
    ]
    lateness = {r["id"]: r["overdue_by"] for r in rows}
    assert lateness["o3-due"] >= timedelta(minutes=10)
    assert timedelta(seconds=5) <= lateness["o6-retry"] < timedelta(minutes=1)
    assert lateness["o7-orphan"] >= timedelta(minutes=5)


async def test_queued_notifications_and_their_queues(db: Sql) -> None:
    rows = await db.fetch(
        "SELECT ns, machine_id, place_in_queue, state, failed_attempts, last_error"
        " FROM mg_queued_notifications"
    )
    assert [tuple(r) for r in rows] == [
        ("orders", "o1-sleeping", 1, "due", 0, None),
        ("orders", "o1-sleeping", 2, "waiting", 0, None),
        ("orders", "o5-failed", 1, "parked", 0, None),
        ("orders", "o5-failed", 2, "waiting", 0, None),
        ("refunds", "r1-notif", 1, "scheduled", 1, "processor unreachable"),
    ]
    queues = await db.fetch(
        "SELECT ns, queued, parked, retrying, machines, oldest_waiting FROM mg_notification_queues"
        " ORDER BY ns"
    )
    assert [tuple(r)[:5] for r in queues] == [("orders", 4, 2, 0, 2), ("refunds", 1, 0, 1, 1)]
    assert all(r["oldest_waiting"] >= timedelta(seconds=30) for r in queues)


async def test_sink_backlog_is_the_sequencers_lag(db: Sql) -> None:
    rows = await db.fetch("SELECT sink, pending, lag FROM mg_sink_backlog ORDER BY sink")
    assert [(r["sink"], r["pending"]) for r in rows] == [("audit", 1), ("main", 3)]
    lag = {r["sink"]: r["lag"] for r in rows}
    assert lag["main"] >= timedelta(seconds=59)
    assert timedelta(seconds=5) <= lag["audit"] < timedelta(seconds=59)


async def test_sink_heads_give_position_hash_and_lag(db: Sql) -> None:
    rows = await db.fetch("SELECT * FROM mg_sink_heads")
    assert [(r["sink"], r["position"], r["pending"]) for r in rows] == [
        ("audit", None, 1),
        ("main", 3, 3),
    ]
    main = rows[1]
    stored = await db.fetchval("SELECT hash FROM mg_sink_events WHERE sink = 'main' AND id = 3")
    assert main["head_hash"] == stored.hex()
    assert main["last_commit_to_sequenced"] >= timedelta(seconds=89)
    assert main["lag"] >= timedelta(seconds=59)


async def test_views_read_in_psql_as_the_readme_shows(
    db: Sql, postgres_server: Any, database_url: str
) -> None:
    dbname = urlsplit(database_url).path.lstrip("/")
    text = postgres_server.psql("SELECT ns, id, reason FROM mg_failed_machines", dbname)
    assert "o5-failed" in text
    assert "boom" in text
