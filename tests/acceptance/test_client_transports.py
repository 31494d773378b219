"""The blocking client, and the async client on asyncio: the same exchanges over the other
transports, against a live node."""

from __future__ import annotations

import asyncio

import pytest
import trio

from mg.client import (
    AsyncClient,
    Client,
    DeadlineExceeded,
    MachineAlreadyExists,
    MachineFailed,
    MachineNotFound,
    Range,
    RepairFailed,
    Status,
    Tag,
)
from mg.node import Node
from tests.support.processor import Answer, FakeProcessor, Seen, echo


async def scripted(seen: Seen) -> Answer:
    args = seen.body["args"] if seen.body["kind"] != "signal" else seen.body["signal"]["args"]
    if seen.kind == "repair" and args == "refuse":
        return Answer(422, {"error": "repair_failed", "reason": "no"})
    if args == "fail":
        return Answer(500, raw=b"boom", media="text/plain")
    if args == "slow":
        await trio.sleep(3)
    if args == "tag":
        return Answer(body={"response": None, "action": {"tag": "the-tag"}})
    return await echo(seen)


def blocking_life_cycle(url: str) -> list[str]:
    steps: list[str] = []
    with Client(url, encoding="json") as mg:
        mg.start("test", "sync-1", {"n": 1})
        with pytest.raises(MachineAlreadyExists):
            mg.start("test", "sync-1")
        assert mg.call("test", "sync-1", b"\x01") == b"\x01"
        mg.call("test", "sync-1", "tag")
        machine = mg.get("test", Tag("the-tag"), range=Range(limit=1))
        assert [e.data for e in machine.history] == [{"n": 1}]
        steps.append("called")
        with pytest.raises(MachineFailed) as failed:
            mg.call("test", "sync-1", "fail")
        assert "boom" in failed.value.reason
        with pytest.raises(RepairFailed) as refused:
            mg.repair("test", "sync-1", "refuse")
        assert refused.value.reason == "no"
        assert mg.repair("test", "sync-1", "ok") == "ok"
        with pytest.raises(DeadlineExceeded):
            mg.call("test", "sync-1", "slow", timeout=0.2)
        assert mg.get("test", "sync-1").status is Status.SLEEPING
        assert [m.id for m in mg.search("test").machines] == ["sync-1"]
        mg.remove("test", "sync-1")
        with pytest.raises(MachineNotFound):
            mg.get("test", "sync-1")
        steps.append("removed")
    return steps


async def test_the_blocking_client_in_a_thread(node: Node, processor: FakeProcessor) -> None:
    processor.behaviour = scripted
    steps = await trio.to_thread.run_sync(blocking_life_cycle, node.url)
    assert steps == ["called", "removed"]


async def asyncio_life_cycle(url: str) -> Status:
    async with AsyncClient(url) as mg:
        await mg.start("test", "aio-1", "hello")
        assert await mg.call("test", "aio-1", [1, 2]) == [1, 2]
        with pytest.raises(MachineFailed):
            await mg.call("test", "aio-1", "fail")
        await mg.simple_repair("test", "aio-1")
        return (await mg.get("test", "aio-1")).status


async def test_the_async_client_on_asyncio(node: Node, processor: FakeProcessor) -> None:
    processor.behaviour = scripted
    status = await trio.to_thread.run_sync(lambda: asyncio.run(asyncio_life_cycle(node.url)))
    assert status is Status.SLEEPING
