"""The per-node state cache through live nodes: a node never acts on a state another node has
changed since, whatever changed it (steps, removal and restart, modernize), and its memory
stays within the budget."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from mg.client import AsyncClient, Content, Direction, Event, MachineNotFound, Range
from mg.node import Node
from mg.postgres.state_cache import StateCache
from mg.processor import serve
from tests.support.cluster import NodeFactory
from tests.support.orders import Orders
from tests.support.processor import FakeProcessor

BACKWARD_3 = Range(limit=3, direction=Direction.BACKWARD)


def cache_of(node: Node) -> StateCache:
    cache: StateCache = node.steps.storage.cache  # type: ignore[attr-defined]
    return cache


def history_seen(processor: FakeProcessor) -> list[tuple[int, Any]]:
    """The history the processor was sent with the latest request."""
    return [(e["id"], e["data"]) for e in processor.seen[-1].machine["history"]]


@pytest.fixture
async def two(nodes: NodeFactory) -> AsyncIterator[tuple[Node, AsyncClient, AsyncClient]]:
    a: Node = await nodes()
    b: Node = await nodes()
    async with AsyncClient(a.url) as on_a, AsyncClient(b.url) as on_b:
        yield a, on_a, on_b


async def test_a_node_sees_steps_made_on_another_node_and_the_history_stays_contiguous(
    two: tuple[Node, AsyncClient, AsyncClient], processor: FakeProcessor
) -> None:
    a, on_a, on_b = two
    await on_a.start("test", "m", "s")
    await on_a.call("test", "m", "a1")
    await on_a.call("test", "m", "a2")  # a's copy is used here: it is current
    assert cache_of(a).hits >= 1
    await on_b.call("test", "m", "b1")
    await on_b.call("test", "m", "b2")
    assert await on_a.call("test", "m", "a3", range=BACKWARD_3) == "a3"
    assert history_seen(processor) == [(5, "b2"), (4, "b1"), (3, "a2")]
    assert await on_a.call("test", "m", "a4") == "a4"
    assert history_seen(processor) == list(enumerate(["s", "a1", "a2", "b1", "b2", "a3"], start=1))
    for client in (on_a, on_b):
        machine = await client.get("test", "m")
        assert [e.data for e in machine.history] == ["s", "a1", "a2", "b1", "b2", "a3", "a4"]
    # A read on a from its cache shows b's latest step too.
    await on_b.call("test", "m", "b3")
    latest = await on_a.get("test", "m", range=Range(limit=1, direction=Direction.BACKWARD))
    assert [e.data for e in latest.history] == ["b3"]


async def test_a_machine_removed_and_started_again_elsewhere_is_not_mistaken_for_the_old_one(
    two: tuple[Node, AsyncClient, AsyncClient], processor: FakeProcessor
) -> None:
    a, on_a, on_b = two
    await on_a.start("test", "m", "old-1")
    await on_a.call("test", "m", "old-2")
    assert cache_of(a).get("test", "m") is not None
    # Removed and started again on b, and brought to the same version a holds.
    await on_b.remove("test", "m")
    await on_b.start("test", "m", "new-1")
    await on_b.call("test", "m", "new-2")
    await on_a.call("test", "m", "a")
    assert history_seen(processor) == [(1, "new-1"), (2, "new-2")]
    assert [e.data for e in (await on_a.get("test", "m")).history] == ["new-1", "new-2", "a"]


async def test_removal_and_restart_on_the_same_node_start_from_nothing(
    two: tuple[Node, AsyncClient, AsyncClient], processor: FakeProcessor
) -> None:
    a, on_a, _ = two
    await on_a.start("test", "m", "old")
    await on_a.remove("test", "m")
    assert cache_of(a).get("test", "m") is None
    await on_a.start("test", "m", "new")
    await on_a.call("test", "m", "next")
    assert history_seen(processor) == [(1, "new")]


async def test_a_get_on_another_node_sees_a_removal(
    two: tuple[Node, AsyncClient, AsyncClient],
) -> None:

    _, on_a, on_b = two
    await on_a.start("test", "m", "s")
    await on_a.get("test", "m")
    await on_b.remove("test", "m")
    with pytest.raises(MachineNotFound):
        await on_a.get("test", "m")
    with pytest.raises(MachineNotFound):
        await on_a.call("test", "m", "x")


async def test_the_cache_stays_within_its_budget_and_evicted_machines_still_work(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    budget = 40_000
    node: Node = await nodes(cache={"max_bytes": budget, "events": 5})
    cache = cache_of(node)
    async with AsyncClient(node.url) as mg:
        for number in range(60):
            await mg.start("test", f"m{number}", {"pad": "x" * 200, "n": number})
            await mg.call("test", f"m{number}", number)
            assert cache.bytes <= budget
        assert cache.evictions > 0
        assert 0 < len(cache) < 60
        assert cache.get("test", "m0") is None
        assert await mg.call("test", "m0", "again") == "again"
        assert [e.data for e in (await mg.get("test", "m0")).history][-2:] == [0, "again"]
    assert cache.bytes <= budget


async def test_a_node_without_a_cache_works_the_same(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    node: Node = await nodes(cache={"max_bytes": 0})
    async with AsyncClient(node.url) as mg:
        await mg.start("test", "m", "s")
        await mg.call("test", "m", "c")
        assert history_seen(processor) == [(1, "s")]
        assert len(cache_of(node)) == 0


class Upgrading(Orders):
    def modernize(self, ns: str, machine_id: str, event: Event) -> Content:
        return Content({"upgraded": event.data}, 2)


async def test_modernize_on_another_node_reaches_a_cached_history(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(serve, Upgrading(), "127.0.0.1", 0)
        modernizer = {"url": url + "/modernizer", "current_format_version": 2}
        a: Node = await nodes(modernizer=modernizer)
        b: Node = await nodes(modernizer=modernizer)
        async with AsyncClient(a.url) as on_a, AsyncClient(b.url) as on_b:
            await on_a.start("test", "m", "s")
            await on_a.call("test", "m", "c")
            assert await on_b.modernize("test", "m") == 2
            await on_a.call("test", "m", "after")
            assert history_seen(processor) == [(1, {"upgraded": "s"}), (2, {"upgraded": "c"})]
            history = (await on_a.get("test", "m")).history
            assert [e.data for e in history][:2] == [{"upgraded": "s"}, {"upgraded": "c"}]
        nursery.cancel_scope.cancel()
