"""A processor written with ``mg.processor``, served over real HTTP by hypercorn, driven
through an mg node with ``mg.client``: init, calls, failure, repair, tags, removal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import trio

from mg.client import (
    AsyncClient,
    Content,
    MachineFailed,
    MachineNotFound,
    RepairFailed,
    Status,
    Tag,
    Unavailable,
)
from mg.core.clock import utc_now
from mg.node import Node
from mg.processor import serve
from tests.support.cluster import NodeFactory
from tests.support.orders import REMINDER, Orders


@pytest.fixture
async def orders_url() -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(serve, Orders(), "127.0.0.1", 0)
        yield url
        nursery.cancel_scope.cancel()


@pytest.fixture
async def mg(nodes: NodeFactory, orders_url: str) -> AsyncIterator[AsyncClient]:
    node: Node = await nodes(processor={"url": orders_url + "/processor"})
    async with AsyncClient(node.url) as client:
        yield client


def kinds(history: tuple[object, ...]) -> list[str]:
    return [event.data["kind"] for event in history]  # type: ignore[attr-defined]


async def test_an_order_from_start_to_removal(mg: AsyncClient) -> None:
    before = utc_now()
    await mg.start("test", "order-1", {"cents": 500})
    machine = await mg.get("test", "order-1")
    assert machine.status is Status.WAITING
    assert machine.timer is not None
    assert machine.timer >= before + timedelta(seconds=REMINDER)
    assert machine.aux_state == Content({"paid": 0}, 2)
    assert [(e.data, e.format_version) for e in machine.history] == [
        ({"kind": "created", "cents": 500}, 2)
    ]

    assert await mg.call("test", "order-1", {"pay": 200}) == 200
    assert await mg.call("test", "order-1", {"pay": 50}) == 250
    assert await mg.call("test", "order-1", "total") == 750
    assert (await mg.get("test", "order-1")).aux_state == Content({"paid": 250}, 2)

    assert await mg.call("test", "order-1", {"tag": "invoice-7"}) == "tagged"
    assert (await mg.get("test", Tag("invoice-7"))).id == "order-1"

    # A handler that raises fails the machine, with the exception as the reason.
    with pytest.raises(MachineFailed) as failed:
        await mg.call("test", Tag("invoice-7"), "boom")
    assert "ValueError: the ledger is on fire" in failed.value.reason
    machine = await mg.get("test", "order-1")
    assert machine.status is Status.FAILED
    assert machine.failure_reason is not None
    assert "the ledger is on fire" in machine.failure_reason

    with pytest.raises(RepairFailed) as refused:
        await mg.repair("test", "order-1", "not yet")
    assert refused.value.reason == {"why": "the ledger is still on fire"}
    assert (await mg.get("test", "order-1")).status is Status.FAILED

    assert await mg.repair("test", "order-1", "go") == "repaired"
    machine = await mg.get("test", "order-1")
    assert machine.status is Status.WAITING  # the repair kept the timer
    assert kinds(machine.history) == ["created", "paid", "paid", "repaired"]

    # Transient: nothing is applied and the machine keeps working.
    with pytest.raises(Unavailable):
        await mg.call("test", "order-1", "busy")
    assert len((await mg.get("test", "order-1")).history) == 4

    assert await mg.call("test", "order-1", "quiet") is None
    assert (await mg.get("test", "order-1")).status is Status.SLEEPING

    assert await mg.call("test", "order-1", "close") == "closed"
    with pytest.raises(MachineNotFound):
        await mg.get("test", "order-1")
    with pytest.raises(MachineNotFound):
        await mg.get("test", Tag("invoice-7"))


async def test_a_failing_init_stores_nothing(mg: AsyncClient) -> None:
    with pytest.raises(MachineFailed) as failed:
        await mg.start("test", "order-2", "not a dict")
    assert "TypeError" in failed.value.reason
    with pytest.raises(MachineNotFound):
        await mg.get("test", "order-2")


async def test_the_processor_speaks_json_too(nodes: NodeFactory, orders_url: str) -> None:
    node: Node = await nodes(processor={"url": orders_url + "/processor", "encoding": "json"})
    async with AsyncClient(node.url) as mg:
        await mg.start("test", "order-3", {"cents": 1})
        assert await mg.call("test", "order-3", {"pay": 1}) == 1
        assert await mg.call("test", "order-3", "total") == 2


async def test_timers_and_notifications_reach_the_handlers(mg: AsyncClient) -> None:
    await mg.start("test", "order-4", {"cents": 1})
    await mg.call("test", "order-4", "remind soon")
    await mg.notify("test", "order-4", "hello")
    with trio.fail_after(20):
        while True:
            history = (await mg.get("test", "order-4")).history
            if {"reminded", "notified"} <= set(kinds(history)):
                break
            await trio.sleep(0.05)
    machine = await mg.get("test", "order-4")
    # The timeout handler set the next reminder.
    assert machine.status is Status.WAITING
    assert [e.data for e in machine.history if e.data["kind"] == "notified"] == [
        {"kind": "notified", "note": "hello"}
    ]
