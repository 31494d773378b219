"""Sequencer leadership: one leader per sink among many candidates, a prompt take-over when the
leader's connection dies, and every outbox row moved exactly once across the change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio

from mg.core.facts import Fact, SinkSequenced
from mg.postgres.bridge.factory import make_bridge
from mg.postgres.bridge.interface import Bridge
from mg.postgres.sequencer import Sequencer
from mg.postgres.wakeups import Wakeups
from mg.settings import Sink
from tests.support.sql import Sql, sql

OUTBOX = (
    "INSERT INTO mg_sink_outbox (sink, ns, machine_id, incarnation, event_id, created_at, "
    "format_version, data) SELECT 'main', 'ns', $1, 1, e, now(), 1, '\\xc0' "
    "FROM generate_series($2::bigint, $3::bigint) AS e"
)
LEADER_BACKEND = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 1296520011 "
    "AND objsubid = 2 AND granted"
)


@dataclass
class Candidate:
    bridge: Bridge
    sequencer: Sequencer
    facts: list[SinkSequenced]


@pytest.fixture
async def candidates(database_url: str) -> AsyncIterator[list[Candidate]]:
    """Three would-be sequencers of sink ``main``, each on a bridge of its own (a node each)."""
    made: list[Candidate] = []
    try:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                bridge = make_bridge("thread", database_url, min_size=1, max_size=3)
                await bridge.open()
                wakeups = Wakeups(bridge)
                await nursery.start(wakeups.run)
                facts: list[SinkSequenced] = []

                def observe(fact: Fact, facts: list[SinkSequenced] = facts) -> None:
                    if isinstance(fact, SinkSequenced):
                        facts.append(fact)

                options = Sink("main", batch_size=50, poll_interval=0.05)
                sequencer = Sequencer(bridge, wakeups, options, observer=observe)
                await nursery.start(sequencer.run)
                made.append(Candidate(bridge, sequencer, facts))
            yield made
            nursery.cancel_scope.cancel()
    finally:
        for candidate in made:
            with trio.CancelScope(shield=True):
                await candidate.bridge.close()


async def leaders(candidates: list[Candidate]) -> list[Candidate]:
    with trio.fail_after(30):
        while not any(c.sequencer.leading for c in candidates):
            await trio.sleep(0.02)
    return [c for c in candidates if c.sequencer.leading]


async def drained(db: Sql, total: int) -> None:
    with trio.fail_after(30):
        while await db.fetchval("SELECT count(*) FROM mg_sink_events") < total:
            await trio.sleep(0.02)


async def test_one_leader_moves_everything_and_another_takes_over_when_it_dies(
    candidates: list[Candidate], database_url: str
) -> None:
    async with sql(database_url) as db:
        first = await leaders(candidates)
        assert len(first) == 1
        await db.execute(OUTBOX, "before", 1, 500)
        await drained(db, 500)

        # The leader's connection dies (its node crashed, or the network failed) while rows
        # keep arriving: another candidate leads and carries on from the next position.
        writing = trio.Event()

        async def write_more() -> None:
            for chunk in range(10):
                await db.execute(OUTBOX, "during", chunk * 100 + 1, chunk * 100 + 100)
                writing.set()
                await trio.sleep(0.01)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_more)
            await writing.wait()
            pid = await db.fetchval(LEADER_BACKEND)
            await db.execute("SELECT pg_terminate_backend($1)", pid)
        with trio.fail_after(30):
            while first[0].sequencer.leading:  # it stepped down on losing its connection
                await trio.sleep(0.02)
        await db.execute(OUTBOX, "after", 1, 500)
        await drained(db, 2000)
        second = await leaders(candidates)
        rows = await db.fetch(
            "SELECT id, machine_id, event_id FROM mg_sink_events WHERE sink = 'main' ORDER BY id"
        )
        assert await db.fetchval("SELECT count(*) FROM mg_sink_outbox") == 0
    assert len(second) == 1
    assert [r["id"] for r in rows] == list(range(1, 2001))  # no gap, no duplicate
    for machine, count in (("before", 500), ("during", 1000), ("after", 500)):
        ids = [r["event_id"] for r in rows if r["machine_id"] == machine]
        assert ids == list(range(1, count + 1))  # each in its own order
    moved = sum(fact.count for c in candidates for fact in c.facts)
    assert moved == 2000
    assert max(fact.position for c in candidates for fact in c.facts) == 2000
