"""Many machines written concurrently through two nodes (one on each Postgres bridge) while a
reader follows the sink: every event exactly once, in per-machine order, at strictly increasing
positions, and a chain that an independent implementation of the formula recomputes."""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
import trio

from mg.node import Node
from tests.support.api import Api
from tests.support.cluster import NodeFactory, api_for
from tests.support.processor import Answer, FakeProcessor, Seen
from tests.support.sql import sql

SINKS = {"sinks": ["main"], "sinks_config": {"main": {"batch_size": 50}}}
MACHINES, CALLS = 40, 8
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def several_events(seen: Seen) -> Answer:
    """1 to 3 events per step, binary data and non-string keys included."""
    n = seen.body["signal"]["args"] if seen.body["kind"] == "signal" else seen.body["args"]
    machine = seen.machine["id"]
    events = [
        {"data": {"m": machine, "n": n, "k": k, 7: bytes([n % 256, k]) * (k + 1)}}
        for k in range(n % 3 + 1)
    ]
    events[0]["format_version"] = n
    return Answer(body={"events": events})


def independent_hash(previous: bytes, found: dict[str, Any]) -> bytes:
    """PROTOCOL section 5 with hashlib, struct and msgpack only."""
    event = found["event"]
    created = datetime.fromisoformat(event["created_at"])
    micros = (created - EPOCH) // timedelta(microseconds=1)
    version = event["format_version"]
    return hashlib.sha256(
        previous
        + struct.pack(">q", found["id"])
        + found["ns"].encode()
        + b"\0"
        + found["machine_id"].encode()
        + b"\0"
        + struct.pack(">qq", event["id"], micros)
        + struct.pack(">i", -1 if version is None else version)
        + msgpack.packb(event["data"])
    ).digest()


async def test_concurrent_writes_through_two_nodes_reach_the_sink_once_each_in_order(
    nodes: NodeFactory, processor: FakeProcessor, database_url: str
) -> None:
    processor.behaviour = several_events
    first: Node = await nodes(**SINKS)
    second: Node = await nodes(**SINKS, database={"pool_size": 16, "bridge": "trio-asyncio"})
    seen: list[dict[str, Any]] = []
    writing_done = trio.Event()
    async with api_for(first) as a, api_for(second) as b:

        async def write(machine: int) -> None:
            client = a if machine % 2 else b
            assert (await client.start(f"m{machine}", 0)).status_code == 201
            for n in range(1, CALLS + 1):
                answer = await client.call(f"m{machine}", n, headers={"x-request-timeout": "60000"})
                assert answer.status_code == 200, answer.text

        async def follow() -> None:
            """Long-polls from either node; MessagePack keeps binary and integer keys exact."""
            turn = 0
            while True:
                client: Api = (a, b)[turn % 2]
                turn += 1
                after = seen[-1]["id"] if seen else 0
                answer = await client.http.get(
                    "/v1/sinks/main/events",
                    params={"after": after, "limit": 37, "wait": 1},
                    headers={"accept": "application/msgpack"},
                )
                assert answer.status_code == 200
                page = msgpack.unpackb(answer.content, strict_map_key=False)["events"]
                for found in page:
                    # Never at or below a position already passed, and no gap.
                    assert found["id"] == after + 1
                    after = found["id"]
                seen.extend(page)
                if not page and writing_done.is_set():
                    return

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow)
                async with trio.open_nursery() as writers:
                    for machine in range(MACHINES):
                        writers.start_soon(write, machine)
                async with sql(database_url) as db:
                    while await db.fetchval("SELECT count(*) FROM mg_sink_outbox"):
                        await trio.sleep(0.05)
                writing_done.set()

    async with sql(database_url) as db:
        stored = await db.fetch(
            "SELECT e.machine_id, m.incarnation, e.event_id FROM mg_events e "
            "JOIN mg_machines m ON m.ns = e.ns AND m.id = e.machine_id"
        )
    expected = {(r["machine_id"], r["incarnation"], r["event_id"]) for r in stored}
    got = [(e["machine_id"], e["incarnation"], e["event"]["id"]) for e in seen]
    assert len(got) == len(set(got)) == len(expected)  # exactly once each
    assert set(got) == expected  # and every event, seen by the reader during the load
    assert [e["id"] for e in seen] == list(range(1, len(seen) + 1))
    for machine in range(MACHINES):
        ids = [e["event"]["id"] for e in seen if e["machine_id"] == f"m{machine}"]
        assert ids == list(range(1, len(ids) + 1))  # per-machine order
    previous = bytes(32)
    for found in seen:
        previous = independent_hash(previous, found)
        assert previous.hex() == found["hash"], found["id"]
    assert any(isinstance(e["event"]["data"].get(7), bytes) for e in seen)
