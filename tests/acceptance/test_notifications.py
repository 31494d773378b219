"""Notifications: queued durably, delivered in order, retried, parked while the machine is
failed, dropped with a removed machine."""

from __future__ import annotations

import trio

from mg.client import AsyncClient
from mg.node import Node
from tests.acceptance.test_timers import status_is, wait_for
from tests.support.api import Api, body
from tests.support.cluster import NodeFactory, api_for
from tests.support.logs import captured_logs
from tests.support.processor import Answer, FakeProcessor, Seen, echo
from tests.support.sql import sql


async def notify(api: Api, machine_id: str, args: object, **extra: object) -> str:
    answer = await api.post(api.machine_path(machine_id) + "/notify", {"args": args, **extra})
    assert answer.status_code == 202, answer.text
    found = body(answer)["id"]
    assert isinstance(found, str)
    return found


async def delivered(processor: FakeProcessor, count: int) -> bool:
    return len(processor.of_kind("notification")) >= count


async def test_notifications_are_delivered_in_the_order_queued(
    api: Api, processor: FakeProcessor
) -> None:
    async def slow(seen: Seen) -> Answer:
        if seen.kind == "notification":
            await trio.sleep(0.01)
        return await echo(seen)

    processor.behaviour = slow
    await api.start("m1", "init")
    ids = [await notify(api, "m1", n) for n in range(20)]
    assert len(set(ids)) == 20
    await wait_for(lambda: delivered(processor, 20))
    await wait_for(lambda: _history_length(api, "m1", 21))  # the last step has committed
    args = [s.body["signal"]["args"] for s in processor.of_kind("notification")]
    assert args == list(range(20))

    async def all_committed() -> bool:
        # The processor sees the last notification before its step commits.
        return len(body(await api.get("m1"))["history"]) == 21

    await wait_for(all_committed)
    machine = body(await api.get("m1"))
    assert [e["data"] for e in machine["history"]] == ["init", *range(20)]
    assert processor.overlaps == 0


async def test_notifies_racing_deliveries_are_each_delivered_once_in_order(
    api: Api, processor: FakeProcessor, database_url: str
) -> None:
    """Notifies arrive while the queue's heads are being consumed (the race the queue lock of
    0006_notification_heads.sql closes): none is left waiting behind nothing."""
    await api.start("m1", "init")

    async def sender(name: str) -> None:
        for n in range(15):
            await notify(api, "m1", f"{name}-{n}")

    async with trio.open_nursery() as nursery:
        for name in "abcd":
            nursery.start_soon(sender, name)
    await wait_for(lambda: delivered(processor, 60))
    await wait_for(lambda: _history_length(api, "m1", 61))
    args = [s.body["signal"]["args"] for s in processor.of_kind("notification")]
    assert sorted(args) == sorted(f"{name}-{n}" for name in "abcd" for n in range(15))
    for name in "abcd":
        mine = [a for a in args if a.startswith(f"{name}-")]
        assert mine == [f"{name}-{n}" for n in range(15)]
    async with sql(database_url) as db:
        assert await db.fetchval("SELECT count(*) FROM mg_notifications") == 0


async def test_notify_returns_at_once_even_while_the_machine_is_busy(
    api: Api, processor: FakeProcessor
) -> None:
    release = trio.Event()

    async def blocking(seen: Seen) -> Answer:
        if seen.kind == "call":
            await release.wait()
        return await echo(seen)

    processor.behaviour = blocking
    await api.start("m1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(api.call, "m1", "long call")
        await trio.sleep(0.1)
        with trio.fail_after(2):
            await notify(api, "m1", "while busy")
        release.set()
    await wait_for(lambda: delivered(processor, 1))


async def test_notify_on_a_missing_machine_is_machine_not_found(api: Api) -> None:
    answer = await api.post(api.machine_path("ghost") + "/notify", {"args": 1})
    assert answer.status_code == 404
    assert body(answer)["error"] == "machine_not_found"


async def test_a_notification_range_cuts_the_history_it_carries(
    api: Api, processor: FakeProcessor
) -> None:
    await api.start("m1", "a")
    for n in range(3):
        await api.call("m1", n)
    await notify(api, "m1", "x", range={"limit": 1, "direction": "backward"})
    await wait_for(lambda: delivered(processor, 1))
    [seen] = processor.of_kind("notification")
    assert [e["id"] for e in seen.machine["history"]] == [4]


async def test_transient_failures_are_retried_with_the_machine_retrying(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    node: Node = await nodes(
        retries={"notifications": {"type": "linear", "timeout": "100ms", "max_retries": "infinity"}}
    )
    down = True

    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "notification" and down:
            return Answer(status=503, raw=b"later", media="text/plain")
        return await echo(seen)

    processor.behaviour = behaviour
    async with api_for(node) as api:
        with captured_logs() as lines:
            await api.start("m1")
            await notify(api, "m1", "first")
            await notify(api, "m1", "second")
            await wait_for(lambda: status_is(api, "m1", "retrying"))
            await wait_for(lambda: delivered(processor, 3))
        logged = [line for line in lines() if line["message"] == "step notification transient"]
        assert "later" in logged[0]["reason"]
        async with api_for(node, msgpack_bodies=True) as packed:
            retry = body(await packed.get("m1"))["retry"]
        assert retry["subject"] == "notification"
        assert retry["attempt"] >= 1
        assert "later" in retry["last_error"]
        async with AsyncClient(node.url) as client:
            seen = (await client.get("test", "m1")).retry
        assert seen is not None
        assert seen.subject == "notification"
        assert "later" in seen.last_error
        # Only the head of the queue is tried while it fails.
        assert {s.body["signal"]["args"] for s in processor.of_kind("notification")} == {"first"}
        down = False
        await wait_for(lambda: status_is(api, "m1", "sleeping"))
        await wait_for(lambda: _history_length(api, "m1", 3))
        machine = body(await api.get("m1"))
    assert [e["data"] for e in machine["history"]][1:] == ["first", "second"]


async def _history_length(api: Api, machine_id: str, length: int) -> bool:
    return len(body(await api.get(machine_id))["history"]) >= length


async def test_a_notification_to_a_failed_machine_is_delivered_after_simple_repair(
    api: Api, processor: FakeProcessor
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "call":
            return Answer(status=500, raw=b"broken", media="text/plain")
        return await echo(seen)

    processor.behaviour = behaviour
    await api.start("m1", "init")
    await api.call("m1")
    assert body(await api.get("m1"))["status"] == "failed"
    await notify(api, "m1", "after repair")
    await trio.sleep(0.5)
    assert processor.of_kind("notification") == []
    await api.simple_repair("m1")
    await wait_for(lambda: delivered(processor, 1))
    await wait_for(lambda: _history_length(api, "m1", 2))
    machine = body(await api.get("m1"))
    assert [e["data"] for e in machine["history"]] == ["init", "after repair"]


async def test_a_notification_that_fails_the_machine_stays_queued_until_repair(
    api: Api, processor: FakeProcessor
) -> None:
    broken = True

    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "notification" and broken:
            return Answer(status=500, raw=b"cannot handle", media="text/plain")
        if seen.kind == "repair":
            return Answer(body={"response": "ok"})
        return await echo(seen)

    processor.behaviour = behaviour
    await api.start("m1", "init")
    await notify(api, "m1", "payload")
    await wait_for(lambda: status_is(api, "m1", "failed"))
    assert "cannot handle" in body(await api.get("m1"))["failure"]["reason"]
    broken = False
    assert (await api.repair("m1")).status_code == 200
    await wait_for(lambda: delivered(processor, 2))
    await wait_for(lambda: _history_length(api, "m1", 2))
    machine = body(await api.get("m1"))
    assert machine["status"] == "sleeping"
    assert [e["data"] for e in machine["history"]] == ["init", "payload"]


async def test_a_removed_machines_notifications_are_dropped(
    api: Api, processor: FakeProcessor, database_url: str
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "call":
            return Answer(status=500, raw=b"x", media="text/plain")
        return await echo(seen)

    processor.behaviour = behaviour
    await api.start("m1")
    await api.call("m1")  # failed: notifications wait
    await notify(api, "m1", "never")
    assert (await api.remove("m1")).status_code == 204
    processor.behaviour = echo
    await api.start("m1", "reborn")
    await trio.sleep(0.5)
    assert processor.of_kind("notification") == []
    async with sql(database_url) as db:
        assert await db.fetchval("SELECT count(*) FROM mg_notifications") == 0
