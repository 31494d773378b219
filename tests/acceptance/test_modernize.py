"""Modernize through a live node: stored events upgraded in place by a modernizer written with
``mg.processor`` (a processor class serving as its own modernizer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from mg.client import (
    AsyncClient,
    Content,
    Event,
    InvalidRequest,
    MachineNotFound,
    ModernizerFailed,
    Range,
    Tag,
    Unavailable,
)
from mg.node import Node
from mg.processor import serve
from tests.support.cluster import NodeFactory
from tests.support.orders import Orders
from tests.support.processor import Answer, FakeProcessor, Seen


class Picky(Orders):
    """Orders' upcasting, except for two kinds of event that test mg's side."""

    def modernize(self, ns: str, machine_id: str, event: Event) -> Content:
        if event.data.get("kind") == "keep":
            return Content(event.data, event.format_version)
        if event.data.get("kind") == "lower":
            return Content(event.data, 0)
        return super().modernize(ns, machine_id, event)


async def writes_what_it_is_told(seen: Seen) -> Answer:
    """The processor of record: each request's args are the events to store, verbatim."""
    args = seen.body["signal"]["args"] if seen.body["kind"] == "signal" else seen.body["args"]
    events = [{"data": data, "format_version": version} for data, version in args]
    return Answer(body={"events": events, "response": len(events)})


@pytest.fixture
async def modernizer_url() -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(serve, Picky(), "127.0.0.1", 0)
        yield url + "/modernizer"
        nursery.cancel_scope.cancel()


@pytest.fixture
async def mg(
    nodes: NodeFactory, processor: FakeProcessor, modernizer_url: str
) -> AsyncIterator[AsyncClient]:
    processor.behaviour = writes_what_it_is_told
    node: Node = await nodes(modernizer={"url": modernizer_url, "current_format_version": 2})
    async with AsyncClient(node.url) as client:
        yield client


def created(amount: float) -> dict[str, Any]:
    return {"kind": "created", "amount": amount}


async def test_v1_events_become_v2_in_place(mg: AsyncClient) -> None:
    await mg.start("test", "m1", [(created(1.5), 1)])
    await mg.call(
        "test", "m1", [({"kind": "paid", "amount": 2}, 1), ({"kind": "paid", "cents": 7}, 2)]
    )
    before = (await mg.get("test", "m1")).history
    assert await mg.modernize("test", "m1") == 2
    after = (await mg.get("test", "m1")).history
    assert [(e.id, e.created_at) for e in after] == [(e.id, e.created_at) for e in before]
    assert [(e.data, e.format_version) for e in after] == [
        ({"kind": "created", "cents": 150}, 2),
        ({"kind": "paid", "cents": 200}, 2),
        ({"kind": "paid", "cents": 7}, 2),
    ]
    assert after[2] == before[2]
    # Everything is current now: nothing more to do.
    assert await mg.modernize("test", "m1") == 0


async def test_only_changed_events_count(mg: AsyncClient) -> None:
    await mg.start("test", "m1", [({"kind": "keep"}, 1), (created(1), 1), ({"kind": "keep"}, None)])
    assert await mg.modernize("test", "m1") == 1
    history = (await mg.get("test", "m1")).history
    assert [(e.data, e.format_version) for e in history] == [
        ({"kind": "keep"}, 1),
        ({"kind": "created", "cents": 100}, 2),
        ({"kind": "keep"}, None),
    ]


async def test_a_range_limits_what_is_modernized(mg: AsyncClient) -> None:
    await mg.start("test", "m1", [(created(1), 1), (created(2), 1), (created(3), 1)])
    assert await mg.modernize("test", "m1", range=Range(after=1, limit=1)) == 1
    versions = [e.format_version for e in (await mg.get("test", "m1")).history]
    assert versions == [1, 2, 1]


async def test_a_lower_version_is_refused_and_nothing_changes(mg: AsyncClient) -> None:
    await mg.start("test", "m1", [(created(1), 1), ({"kind": "lower"}, 1)])
    before = (await mg.get("test", "m1")).history
    with pytest.raises(ModernizerFailed, match="lower than the stored 1"):
        await mg.modernize("test", "m1")
    assert (await mg.get("test", "m1")).history == before


async def test_a_machine_is_modernized_by_tag_and_must_exist(
    mg: AsyncClient, processor: FakeProcessor
) -> None:
    async def tagging(seen: Seen) -> Answer:
        return Answer(body={"events": [{"data": created(4), "format_version": 1}],
                            "action": {"tag": "t-1"}})  # fmt: skip

    processor.behaviour = tagging
    await mg.start("test", "m1")
    assert await mg.modernize("test", Tag("t-1")) == 1
    with pytest.raises(MachineNotFound):
        await mg.modernize("test", "nope")
    with pytest.raises(MachineNotFound):
        await mg.modernize("test", Tag("nope"))


async def test_a_namespace_without_a_modernizer(nodes: NodeFactory) -> None:
    node: Node = await nodes()
    async with AsyncClient(node.url) as mg:
        await mg.start("test", "m1")
        with pytest.raises(InvalidRequest, match="no modernizer"):
            await mg.modernize("test", "m1")


async def test_an_unreachable_modernizer_is_unavailable(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    processor.behaviour = writes_what_it_is_told
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/modernizer"
    node: Node = await nodes(modernizer={"url": url, "current_format_version": 2})
    async with AsyncClient(node.url) as mg:
        await mg.start("test", "m1", [(created(1), 1)])
        with pytest.raises(Unavailable, match="unreachable"):
            await mg.modernize("test", "m1")
        assert (await mg.get("test", "m1")).history[0].format_version == 1
