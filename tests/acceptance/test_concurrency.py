"""One step at a time per machine across nodes, and readers that never see half a step."""

from __future__ import annotations

import trio
import trio.lowlevel

from mg.node import Node
from tests.support.api import Api, body
from tests.support.cluster import NodeFactory, api_for
from tests.support.processor import Answer, FakeProcessor, Seen, echo


async def test_two_nodes_and_a_hundred_concurrent_calls_to_one_machine(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    async def slowish(seen: Seen) -> Answer:
        # Give overlapping steps every chance to happen if the locks were wrong.
        await trio.sleep(0.002)
        return await echo(seen)

    processor.behaviour = slowish
    # One node on each Postgres bridge: both must keep the guarantees.
    first: Node = await nodes()
    second: Node = await nodes(database={"pool_size": 16, "bridge": "trio-asyncio"})
    async with api_for(first) as a, api_for(second) as b:
        await a.start("hot", 0)
        statuses: list[int] = []

        async def one_call(client: Api, n: int) -> None:
            answer = await client.call("hot", n, headers={"x-request-timeout": "60000"})
            statuses.append(answer.status_code)

        async with trio.open_nursery() as nursery:
            for n in range(1, 101):
                nursery.start_soon(one_call, a if n % 2 else b, n)
        assert statuses == [200] * 100
        machine = body(await b.get("hot"))
    assert [e["id"] for e in machine["history"]] == list(range(1, 102))
    assert sorted(e["data"] for e in machine["history"][1:]) == list(range(1, 101))
    assert processor.overlaps == 0
    # Each step saw the history the previous one left: the histories grow one by one.
    assert len(processor.seen) == 101


async def test_readers_see_a_thousand_event_step_whole_or_not_at_all(
    api: Api, processor: FakeProcessor
) -> None:
    async def big(seen: Seen) -> Answer:
        await trio.sleep(0.05)
        return Answer(body={"events": [{"data": n} for n in range(1, 1001)]})

    processor.behaviour = big
    reads: list[object] = []
    done = trio.Event()

    async def reader(client: Api) -> None:
        while not done.is_set():
            answer = await client.get("big", limit=5, direction="backward")
            if answer.status_code == 404:
                reads.append(None)
            else:
                reads.append([e["id"] for e in body(answer)["history"]])
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(reader, api)
        await trio.sleep(0.02)
        started = await api.start("big")
        assert started.status_code == 201
        await trio.sleep(0.2)
        done.set()
    assert reads
    assert {repr(r) for r in reads} <= {"None", repr([1000, 999, 998, 997, 996])}
    assert [1000, 999, 998, 997, 996] in reads
