"""``mg.client`` against a live node: every operation, and every error a client can provoke."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from typing import TypeVar

import pytest
import trio

from mg.client import (
    AsyncClient,
    Content,
    DeadlineExceeded,
    Direction,
    InvalidArgs,
    InvalidRequest,
    MachineAlreadyExists,
    MachineAlreadyWorking,
    MachineFailed,
    MachineNotFound,
    NamespaceNotFound,
    Overloaded,
    PayloadTooLarge,
    Range,
    RepairFailed,
    RouteNotFound,
    SinkNotFound,
    Status,
    Tag,
    Unavailable,
    UnsupportedMediaType,
)
from mg.client.exchange import Exchange, Options, Request
from mg.core.clock import utc_now
from mg.node import Node
from tests.support.cluster import NodeFactory
from tests.support.processor import Answer, FakeProcessor, Seen, echo

T = TypeVar("T")


def args_of(seen: Seen) -> object:
    return seen.body["signal"]["args"] if seen.body["kind"] == "signal" else seen.body["args"]


class Scripted:
    """A processor whose answer depends on the request's args (the rest is ``echo``)."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.blocked = trio.Event()

    async def __call__(self, seen: Seen) -> Answer:
        args = args_of(seen)
        if seen.kind == "repair" and args == "refuse":
            return Answer(422, {"error": "repair_failed", "reason": {"why": "not today"}})
        if seen.kind == "init" and args == "invalid":
            return Answer(422, {"error": "invalid_args", "reason": "cents is missing"})
        if args == "fail":
            return Answer(500, raw=b"the processor gave up", media="text/plain")
        if args == "busy":
            return Answer(503, raw=b"later", media="text/plain")
        if args == "slow":
            await trio.sleep(3)
        if args == "block":
            self.blocked.set()
            await self.release.wait()
        if isinstance(args, dict) and "tag" in args:
            return Answer(body={"response": "tagged", "action": {"tag": args["tag"]}})
        return await echo(seen)


@pytest.fixture
async def client(node: Node, processor: FakeProcessor) -> AsyncIterator[AsyncClient]:
    processor.behaviour = Scripted()
    async with AsyncClient(node.url) as mg:
        yield mg


async def test_start_call_get_with_ranges(client: AsyncClient, processor: FakeProcessor) -> None:
    assert await client.start("test", "m1", {"n": 1}) is None
    for n in range(2, 6):
        assert await client.call("test", "m1", n) == n
    await client.call("test", "m1", "look", range=Range(limit=2, direction=Direction.BACKWARD))
    assert [e["id"] for e in processor.seen[-1].machine["history"]] == [5, 4]
    machine = await client.get("test", "m1", range=Range(after=2, limit=2))
    assert machine.ns == "test"
    assert machine.id == "m1"
    assert machine.status is Status.SLEEPING
    assert machine.failure_reason is None
    assert [e.id for e in machine.history] == [3, 4]
    assert [e.data for e in machine.history] == [3, 4]
    assert machine.history[0].format_version == 1
    assert machine.history_range == Range(after=2, limit=2)
    assert machine.aux_state is None
    assert machine.timer is None
    assert machine.tags == ()
    whole = await client.get("test", "m1")
    assert [e.id for e in whole.history] == [1, 2, 3, 4, 5, 6]
    assert whole.history[0].created_at <= utc_now()


async def test_a_start_refused_by_init_raises_invalid_args(client: AsyncClient) -> None:
    with pytest.raises(InvalidArgs) as refused:
        await client.start("test", "m1", "invalid")
    assert refused.value.reason == "cents is missing"
    with pytest.raises(MachineNotFound):
        await client.get("test", "m1")


async def test_a_range_takes_its_direction_as_a_string(
    client: AsyncClient, processor: FakeProcessor
) -> None:
    await client.start("test", "m1", 1)
    for n in range(2, 5):
        await client.call("test", "m1", n)
    machine = await client.get("test", "m1", range=Range(limit=2, direction="backward"))
    assert [e.id for e in machine.history] == [4, 3]
    assert machine.history_range.direction is Direction.BACKWARD


async def test_binary_values_round_trip_in_msgpack_and_json(node: Node) -> None:
    value = {"bin": b"\x00\xff", "list": [1, -2.5, None, True, "text"]}
    async with AsyncClient(node.url) as packed, AsyncClient(node.url, encoding="json") as text:
        await packed.start("test", "bin-1", value)
        await text.start("test", "bin-2", value)
        assert await packed.call("test", "bin-2", value) == value
        assert await text.call("test", "bin-1", value) == value
        for mg in (packed, text):
            for machine_id in ("bin-1", "bin-2"):
                assert (await mg.get("test", machine_id)).history[0].data == value


async def test_a_machine_is_addressed_by_its_tag(client: AsyncClient) -> None:
    await client.start("test", "m1")
    assert await client.call("test", "m1", {"tag": "invoice/7"}) == "tagged"
    assert (await client.get("test", Tag("invoice/7"))).id == "m1"
    assert await client.call("test", Tag("invoice/7"), "by tag") == "by tag"
    assert (await client.get("test", "m1")).tags == ("invoice/7",)
    with pytest.raises(MachineNotFound):
        await client.get("test", Tag("nobody"))


async def test_failure_repair_and_simple_repair(client: AsyncClient) -> None:
    await client.start("test", "m1")
    with pytest.raises(MachineFailed) as failed:
        await client.call("test", "m1", "fail")
    assert "the processor gave up" in failed.value.reason
    machine = await client.get("test", "m1")
    assert machine.status is Status.FAILED
    assert machine.failure_reason == failed.value.reason
    with pytest.raises(MachineFailed) as again:
        await client.call("test", "m1", "anything")
    assert again.value.reason == failed.value.reason
    with pytest.raises(RepairFailed) as refused:
        await client.repair("test", "m1", "refuse")
    assert refused.value.reason == {"why": "not today"}
    assert (await client.get("test", "m1")).status is Status.FAILED
    assert await client.repair("test", "m1", "mended") == "mended"
    assert (await client.get("test", "m1")).status is Status.SLEEPING
    with pytest.raises(MachineAlreadyWorking):
        await client.repair("test", "m1", "again")
    with pytest.raises(MachineAlreadyWorking):
        await client.simple_repair("test", "m1")
    with pytest.raises(MachineFailed):
        await client.call("test", "m1", "fail")
    assert await client.simple_repair("test", "m1") is None
    assert (await client.get("test", "m1")).status is Status.SLEEPING


async def test_search_pages_and_remove(client: AsyncClient) -> None:
    for n in range(5):
        await client.start("test", f"m{n}")
    with pytest.raises(MachineFailed):
        await client.call("test", "m3", "fail")
    first = await client.search("test", limit=2)
    assert [m.id for m in first.machines] == ["m0", "m1"]
    assert first.next_cursor is not None
    second = await client.search("test", limit=10, cursor=first.next_cursor)
    assert [m.id for m in second.machines] == ["m2", "m3", "m4"]
    assert second.next_cursor is None
    failed = await client.search("test", status=Status.FAILED)
    assert [(m.id, m.status) for m in failed.machines] == [("m3", Status.FAILED)]
    assert failed.machines[0].updated_at <= utc_now()
    assert failed.machines[0].timer is None
    assert [m.id for m in (await client.search("test", status="failed")).machines] == ["m3"]
    assert await client.remove("test", "m3") is None
    with pytest.raises(MachineNotFound):
        await client.get("test", "m3")
    with pytest.raises(MachineNotFound):
        await client.remove("test", "m3")


async def test_errors_of_starts_unknown_machines_and_namespaces(client: AsyncClient) -> None:
    await client.start("test", "m1")
    with pytest.raises(MachineAlreadyExists):
        await client.start("test", "m1")
    with pytest.raises(MachineFailed) as init_failed:
        await client.start("test", "m2", "fail")
    assert "the processor gave up" in init_failed.value.reason
    for operation in (
        client.get("test", "nope"),
        client.call("test", "nope"),
        client.repair("test", "nope"),
        client.simple_repair("test", "nope"),
        client.remove("test", "nope"),
        client.get("test", "m2"),
    ):
        with pytest.raises(MachineNotFound):
            await operation
    for operation in (
        client.start("nowhere", "m1"),
        client.get("nowhere", "m1"),
        client.search("nowhere"),
    ):
        with pytest.raises(NamespaceNotFound):
            await operation


async def test_invalid_requests(client: AsyncClient) -> None:
    await client.start("test", "m1")
    for operation in (
        client.call("test", "m1", range=Range(limit=-1)),
        client.get("test", "m1", range=Range(limit=-1)),
        client.start("test", "x" * 1025),
        client.search("test", limit=0),
        client.search("test", cursor="not-a-cursor"),
    ):
        with pytest.raises(InvalidRequest):
            await operation


async def test_unsupported_media_type(client: AsyncClient) -> None:
    # The client always sends a type mg speaks; a raw request through its transport shows
    # that the 415 answer maps to its class.
    model = client.exchanges.start("test", "m1", None, Options())
    raw = Request(
        "POST",
        model.request.path,
        headers={"content-type": "application/xml", "accept": "application/json"},
        content=b"<args/>",
    )
    with pytest.raises(UnsupportedMediaType):
        await client.send(Exchange(raw, model.read))


async def test_a_body_over_the_limit(client: AsyncClient) -> None:
    with pytest.raises(PayloadTooLarge):
        await client.start("test", "big", b"x" * (5 * 1024 * 1024))
    with pytest.raises(MachineNotFound):
        await client.get("test", "big")


async def test_deadlines_reach_mg_and_the_processor(
    client: AsyncClient, processor: FakeProcessor
) -> None:
    await client.start("test", "m1", timeout=30)
    with pytest.raises(DeadlineExceeded):
        await client.call("test", "m1", "slow", timeout=0.3)
    deadline = utc_now() + timedelta(hours=1)
    assert await client.call("test", "m1", "on time", deadline=deadline) == "on time"
    sent = processor.seen[-1].headers["x-request-deadline"]
    assert sent.startswith(deadline.strftime("%Y-%m-%dT%H:%M:%S"))
    with pytest.raises(DeadlineExceeded):
        await client.call("test", "m1", "late", deadline=utc_now() - timedelta(seconds=1))
    with pytest.raises(ValueError, match="not both"):
        await client.call("test", "m1", timeout=1, deadline=deadline)


async def test_traceparent_is_continued(client: AsyncClient, processor: FakeProcessor) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    await client.start("test", "m1", traceparent=f"00-{trace_id}-00f067aa0ba902b7-01")
    assert processor.seen[-1].headers["traceparent"].split("-")[1] == trace_id


async def test_unavailable_processor_and_unreachable_mg(client: AsyncClient) -> None:
    await client.start("test", "m1")
    with pytest.raises(Unavailable):
        await client.call("test", "m1", "busy")
    assert len((await client.get("test", "m1")).history) == 1
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with AsyncClient(f"http://127.0.0.1:{port}") as nowhere:
        with pytest.raises(Unavailable, match="unreachable"):
            await nowhere.get("test", "m1")


async def test_overloaded_carries_retry_after(nodes: NodeFactory, processor: FakeProcessor) -> None:
    script = Scripted()
    processor.behaviour = script
    node: Node = await nodes(limits={"max_queue_per_machine": 1})
    async with AsyncClient(node.url) as mg:
        await mg.start("test", "m1")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(mg.call, "test", "m1", "block")
            await script.blocked.wait()
            with pytest.raises(Overloaded) as overloaded:
                await mg.call("test", "m1", "second")
            script.release.set()
        assert overloaded.value.retry_after >= 1


async def test_aux_state_and_content(client: AsyncClient, processor: FakeProcessor) -> None:
    async def with_aux(seen: Seen) -> Answer:
        return Answer(body={"aux_state": {"data": {"k": b"v"}, "format_version": 3}})

    processor.behaviour = with_aux
    await client.start("test", "m1")
    assert (await client.get("test", "m1")).aux_state == Content({"k": b"v"}, 3)


# Sink reads, health and metrics are served by routes that land with the sink and
# observability parts of issue 8. Until a node serves a route, its test skips rather than
# passes; once the route exists the test runs as it is. (pytest-trio drops the skip reason.)


async def served(operation: Awaitable[T], what: str) -> T:
    try:
        return await operation
    except RouteNotFound:
        pytest.skip(f"this node does not serve {what} yet")


async def test_notify_queues_and_answers_an_id(client: AsyncClient) -> None:
    await client.start("test", "m1")
    notification = await served(client.notify("test", "m1", {"ping": 1}), "notify")
    assert isinstance(notification, str)
    assert notification
    assert await client.notify("test", "m1", "by range", range=Range(limit=1))
    with pytest.raises(MachineNotFound):
        await client.notify("test", "nope", "x")


async def test_reading_an_unknown_sink(client: AsyncClient) -> None:
    with pytest.raises(SinkNotFound):
        await served(client.read_sink("no-such-sink", range=Range(limit=1)), "sink reads")


async def test_health_and_metrics(client: AsyncClient) -> None:
    assert await served(client.live(), "/health/live") is True
    assert await client.ready() is True
    assert isinstance(await served(client.metrics(), "/metrics"), str)
