"""Sinks over HTTP: what a reader gets, range reads, long-polls, and what removal leaves."""

from __future__ import annotations

from typing import Any

import httpx
import trio

from mg.node import Node
from tests.support.api import Api, body
from tests.support.cluster import NodeFactory, api_for

SINKS = {"sinks": ["main"], "sinks_config": {"main": {}}}


async def sink_read(client: Api, sink: str = "main", **query: Any) -> httpx.Response:
    return await client.http.get(f"/v1/sinks/{sink}/events", params=query)


async def sink_events(client: Api, sink: str = "main", **query: Any) -> list[dict[str, Any]]:
    answer = await sink_read(client, sink, **query)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = body(answer)["events"]
    return found


async def wait_for(client: Api, count: int, sink: str = "main") -> list[dict[str, Any]]:
    """All events of the sink once it holds ``count`` (long-polling for the rest)."""
    seen: list[dict[str, Any]] = []
    with trio.fail_after(30):
        while len(seen) < count:
            after = seen[-1]["id"] if seen else 0
            seen += await sink_events(client, sink, after=after, wait=5)
    return seen


async def test_events_reach_the_sink_in_order_with_positions_and_hashes(
    nodes: NodeFactory,
) -> None:
    node: Node = await nodes(**SINKS)
    async with api_for(node) as api:
        assert (await api.start("m1", {"n": 1})).status_code == 201
        assert (await api.call("m1", b"\x00\xffbinary")).status_code == 200
        events = await wait_for(api, 2)
    assert [e["id"] for e in events] == [1, 2]
    assert [(e["ns"], e["machine_id"], e["event"]["id"]) for e in events] == [
        ("test", "m1", 1),
        ("test", "m1", 2),
    ]
    assert events[0]["event"]["data"] == {"n": 1}
    assert events[1]["event"]["data"] == b"\x00\xffbinary"
    assert events[0]["event"]["format_version"] == 1
    assert all(len(e["hash"]) == 64 for e in events)
    assert events[0]["incarnation"] == events[1]["incarnation"]


async def test_reads_use_range_semantics_on_positions(nodes: NodeFactory) -> None:
    node: Node = await nodes(sinks=["main"], sinks_config={"main": {"read_limit": 5}})
    async with api_for(node) as api:
        await api.start("m", 0)
        for n in range(1, 8):
            await api.call("m", n)
        await wait_for(api, 8)

        async def ids(**query: Any) -> list[int]:
            return [e["id"] for e in await sink_events(api, **query)]

        assert await ids(limit=2) == [1, 2]
        assert await ids(limit=2, direction="backward") == [8, 7]
        assert await ids(after=5, limit=5) == [6, 7, 8]
        assert await ids(after=6) == [7, 8]
        assert await ids(after=5, limit=3, direction="backward") == [4, 3, 2]
        assert await ids(after=11, limit=2, direction="backward") == [8, 7]
        assert await ids(after=11, limit=1) == []
        assert await ids(limit=0, wait=30) == []  # nothing could ever qualify: no wait
        assert await ids() == [1, 2, 3, 4, 5]  # cut to read_limit
        assert await ids(limit=100, direction="backward") == [8, 7, 6, 5, 4]


async def test_bad_reads_of_a_configured_sink_are_invalid_requests(nodes: NodeFactory) -> None:
    node: Node = await nodes(**SINKS)
    async with api_for(node) as api:
        for query in ({"limit": -1}, {"after": "x"}, {"wait": "-1"}, {"wait": "inf"}):
            answer = await sink_read(api, **query)
            assert answer.status_code == 400, query
            assert body(answer)["error"] == "invalid_request"


async def test_an_unknown_sink_is_sink_not_found(nodes: NodeFactory) -> None:
    node: Node = await nodes(**SINKS)
    async with api_for(node) as api:
        answer = await sink_read(api, "nope", wait=10)
    assert answer.status_code == 404
    assert body(answer)["error"] == "sink_not_found"


async def test_a_long_poll_returns_as_soon_as_an_event_arrives_on_either_node(
    nodes: NodeFactory,
) -> None:
    first: Node = await nodes(**SINKS)
    second: Node = await nodes(**SINKS)
    async with api_for(first) as a, api_for(second) as b:
        got: dict[str, list[dict[str, Any]]] = {}

        async def poll(name: str, client: Api) -> None:
            got[name] = await sink_events(client, after=0, wait=60)

        # Well inside the 60 s wait: only a reader woken by the new event returns in time.
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll, "first", a)
                nursery.start_soon(poll, "second", b)
                await trio.sleep(0.5)  # both are waiting now
                assert got == {}
                await a.start("wake", "up")
    for events in got.values():
        assert [(e["machine_id"], e["event"]["data"]) for e in events] == [("wake", "up")]


async def test_a_long_poll_ends_empty_when_its_wait_ends(nodes: NodeFactory) -> None:
    node: Node = await nodes(**SINKS)
    async with api_for(node) as api:
        assert await sink_events(api, after=0, wait=0.3) == []
        # Backward with after: nothing new could ever qualify, so it answers at once.
        with trio.fail_after(30):
            assert await sink_events(api, after=1, direction="backward", wait=3600) == []


async def test_a_stopping_node_answers_its_waiting_long_polls(nodes: NodeFactory) -> None:
    node: Node = await nodes(**SINKS)
    async with api_for(node) as api:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                answers: list[int] = []

                async def poll() -> None:
                    answers.append((await sink_read(api, after=0, wait=60)).status_code)

                nursery.start_soon(poll)
                await trio.sleep(0.3)
                node.stop()
    assert answers == [200]


async def test_removing_a_machine_leaves_its_events_and_a_new_one_of_that_id_is_not_a_duplicate(
    nodes: NodeFactory,
) -> None:
    node: Node = await nodes(**SINKS)
    async with api_for(node) as api:
        await api.start("again", "first life")
        await api.call("again", "more")
        assert (await api.remove("again")).status_code == 204
        await api.start("again", "second life")
        events = await wait_for(api, 3)
        assert len(await sink_events(api, after=3, wait=0.3)) == 0
    assert [(e["event"]["id"], e["event"]["data"]) for e in events] == [
        (1, "first life"),
        (2, "more"),
        (1, "second life"),
    ]
    assert events[0]["incarnation"] == events[1]["incarnation"] != events[2]["incarnation"]


async def test_a_namespace_feeds_each_of_its_sinks(nodes: NodeFactory) -> None:
    node: Node = await nodes(sinks=["main", "audit"], sinks_config={"main": {}, "audit": {}})
    async with api_for(node) as api:
        await api.start("m", 1)
        await api.call("m", 2)
        main = await wait_for(api, 2, "main")
        audit = await wait_for(api, 2, "audit")
    assert [e["id"] for e in audit] == [1, 2]  # each sink has its own positions
    assert [e["event"] for e in main] == [e["event"] for e in audit]
    # The sink's name is not hashed: two sinks with the same events have the same chain.
    assert [e["hash"] for e in main] == [e["hash"] for e in audit]
