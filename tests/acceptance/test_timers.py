"""Timers: set by steps, fired by the timer loop on time, once, retried by policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import trio

from mg.core.clock import format_time, parse_time, utc_now
from mg.node import Node
from tests.support.api import Api, body
from tests.support.cluster import NodeFactory, api_for
from tests.support.logs import captured_logs
from tests.support.processor import Answer, FakeProcessor, Seen

FAST_RETRIES = {"type": "intervals", "intervals": ["100ms", "100ms", "100ms"], "max_retries": 3}


def timer_on_init(
    timer: dict[str, Any], events_on_timeout: bool = True
) -> Callable[[Seen], Awaitable[Answer]]:
    """Init sets ``timer``; a timeout records an event; calls record their args."""

    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "init":
            return Answer(body={"events": [{"data": "init"}], "action": {"timer": {"set": timer}}})
        if seen.kind == "timeout":
            return Answer(body={"events": [{"data": "timeout"}] if events_on_timeout else []})
        return Answer(body={"events": [{"data": seen.body.get("args")}]})

    return behaviour


async def wait_for(condition: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        while not await condition():
            await trio.sleep(0.02)


async def status_is(api: Api, machine_id: str, status: str) -> bool:
    return bool(body(await api.get(machine_id))["status"] == status)


async def test_a_timer_fires_after_its_timeout_and_not_before(
    api: Api, processor: FakeProcessor
) -> None:
    processor.behaviour = timer_on_init({"timeout": 1.0})
    await api.start("m1")
    machine = body(await api.get("m1"))
    assert machine["status"] == "waiting"
    set_at = parse_time(machine["history"][0]["created_at"])
    assert parse_time(machine["timer"]) == set_at + timedelta(seconds=1)
    await wait_for(lambda: status_is(api, "m1", "sleeping"))
    [fired] = processor.of_kind("timeout")
    assert fired.received_at >= set_at + timedelta(seconds=1)
    # The processor saw the fired timer already cleared.
    assert fired.machine["timer"] is None
    assert fired.body["signal"] == {"type": "timeout", "args": None}
    machine = body(await api.get("m1"))
    assert [e["data"] for e in machine["history"]] == ["init", "timeout"]
    assert machine["timer"] is None


async def test_timeout_zero_fires_within_a_second(api: Api, processor: FakeProcessor) -> None:
    processor.behaviour = timer_on_init({"timeout": 0})
    before = utc_now()
    await api.start("m1")
    await wait_for(lambda: status_is(api, "m1", "sleeping"), seconds=5)
    [fired] = processor.of_kind("timeout")
    assert fired.received_at - before < timedelta(seconds=1)


async def test_a_deadline_with_an_offset_fires_at_that_instant(
    api: Api, processor: FakeProcessor
) -> None:
    due = utc_now() + timedelta(seconds=1)
    local = due.astimezone(__import__("datetime").timezone(timedelta(hours=3)))
    text = local.isoformat()
    assert text.endswith("+03:00")
    processor.behaviour = timer_on_init({"deadline": text})
    await api.start("m1")
    assert parse_time(body(await api.get("m1"))["timer"]) == due
    await wait_for(lambda: status_is(api, "m1", "sleeping"))
    [fired] = processor.of_kind("timeout")
    assert fired.received_at >= due


async def test_a_deadline_in_the_past_fires_at_once(api: Api, processor: FakeProcessor) -> None:
    processor.behaviour = timer_on_init({"deadline": "2001-01-01T00:00:00Z"})
    await api.start("m1")
    await wait_for(lambda: status_is(api, "m1", "sleeping"), seconds=5)
    assert len(processor.of_kind("timeout")) == 1


async def test_unset_leaves_the_machine_sleeping_and_nothing_fires(
    api: Api, processor: FakeProcessor
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "init":
            return Answer(body={"action": {"timer": {"set": {"timeout": 0.5}}}})
        if seen.kind == "call":
            return Answer(body={"action": {"timer": {"unset": True}}})
        return Answer(body={})

    processor.behaviour = behaviour
    await api.start("m1")
    await api.call("m1")
    machine = body(await api.get("m1"))
    assert machine["status"] == "sleeping"
    assert machine["timer"] is None
    await trio.sleep(1.0)
    assert processor.of_kind("timeout") == []


async def test_a_call_without_a_timer_action_keeps_the_timer_which_then_fires(
    api: Api, processor: FakeProcessor
) -> None:
    processor.behaviour = timer_on_init({"timeout": 0.7})
    await api.start("m1")
    timer = body(await api.get("m1"))["timer"]
    await api.call("m1", "meanwhile")
    assert body(await api.get("m1"))["timer"] == timer
    await wait_for(lambda: status_is(api, "m1", "sleeping"))
    assert len(processor.of_kind("timeout")) == 1


async def test_the_timer_range_cuts_the_history_of_the_timeout_signal(
    api: Api, processor: FakeProcessor
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "init":
            return Answer(body={"events": [{"data": n} for n in range(1, 6)]})
        if seen.kind == "call":
            timer = {"timeout": 0, "range": {"limit": 2, "direction": "backward"}}
            return Answer(body={"events": [{"data": 6}], "action": {"timer": {"set": timer}}})
        return Answer(body={})

    processor.behaviour = behaviour
    await api.start("m1")
    await api.call("m1")
    await wait_for(lambda: status_is(api, "m1", "sleeping"))
    [fired] = processor.of_kind("timeout")
    assert [e["id"] for e in fired.machine["history"]] == [6, 5]
    assert fired.machine["history_range"] == {"after": None, "limit": 2, "direction": "backward"}


async def test_handling_timeout_bounds_the_timeout_step(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    node: Node = await nodes(retries={"timers": FAST_RETRIES})
    processor.behaviour = timer_on_init({"timeout": 0, "handling_timeout": 7})
    async with api_for(node) as api:
        await api.start("m1")
        await wait_for(lambda: status_is(api, "m1", "sleeping"))
    [fired] = processor.of_kind("timeout")
    deadline = parse_time(fired.headers["x-request-deadline"])
    assert timedelta(seconds=6) < deadline - fired.received_at <= timedelta(seconds=7)


async def test_processor_down_while_a_timer_fires_means_retrying_then_success(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    node: Node = await nodes(
        retries={
            "timers": {
                "type": "linear",
                "timeout": "150ms",
                "max_timeout": "300ms",
                "max_retries": "infinity",
            }
        }
    )
    down = True

    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "timeout" and down:
            return Answer(status=503, raw=b"maintenance", media="text/plain")
        return await timer_on_init({"timeout": 0})(seen)

    processor.behaviour = behaviour
    with captured_logs() as lines:
        async with api_for(node) as api:
            await api.start("m1")
            await wait_for(lambda: status_is(api, "m1", "retrying"))
            await wait_for(lambda: _attempts_at_least(processor, 3))
            retried = [line for line in lines() if line["message"] == "step timeout transient"]
    assert retried
    assert "maintenance" in retried[0]["reason"]
    async with api_for(node) as api:
        retrying = body(await api.get("m1"))
        assert retrying["timer"] is not None
        assert retrying["failure"] is None
        retry = retrying["retry"]
        assert retry["subject"] == "timer"
        assert retry["attempt"] >= 1
        assert "maintenance" in retry["last_error"]
        assert parse_time(retry["next_at"]) > parse_time(retrying["history"][-1]["created_at"])
        down = False
        await wait_for(lambda: status_is(api, "m1", "sleeping"))
        machine = body(await api.get("m1"))
    assert [e["data"] for e in machine["history"]] == ["init", "timeout"]
    assert machine["retry"] is None


async def _attempts_at_least(processor: FakeProcessor, count: int) -> bool:
    return len(processor.of_kind("timeout")) >= count


async def test_exhausted_retries_fail_the_machine_and_simple_repair_re_arms_the_timer(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    node: Node = await nodes(retries={"timers": FAST_RETRIES})
    down = True
    # The re-armed timer is past due and fires at once: its step waits here until the test has
    # read the repaired machine (a read needs no lock, so it sees the repair's commit).
    read_after_repair = trio.Event()

    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "timeout" and down:
            return Answer(status=503, raw=b"still down", media="text/plain")
        if seen.kind == "timeout":
            await read_after_repair.wait()
        return await timer_on_init({"timeout": 0})(seen)

    processor.behaviour = behaviour
    async with api_for(node) as api:
        await api.start("m1")
        timer = body(await api.get("m1"))["timer"]
        await wait_for(lambda: status_is(api, "m1", "failed"))
        failed = body(await api.get("m1"))
        assert "exhausted" in failed["failure"]["reason"]
        assert "still down" in failed["failure"]["reason"]
        # One first attempt and three retries.
        assert len(processor.of_kind("timeout")) == 4
        await trio.sleep(0.5)
        assert len(processor.of_kind("timeout")) == 4  # a failed machine's timer does not fire
        down = False
        assert (await api.simple_repair("m1")).status_code == 200
        repaired = body(await api.get("m1"))
        read_after_repair.set()
        assert repaired["timer"] == timer
        await wait_for(lambda: status_is(api, "m1", "sleeping"))
    assert len(processor.of_kind("timeout")) == 5


async def test_a_permanent_failure_on_timeout_fails_the_machine(
    api: Api, processor: FakeProcessor
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "timeout":
            return Answer(status=500, raw=b"timeout handler crashed", media="text/plain")
        return await timer_on_init({"timeout": 0})(seen)

    processor.behaviour = behaviour
    await api.start("m1")
    await wait_for(lambda: status_is(api, "m1", "failed"))
    machine = body(await api.get("m1"))
    assert "timeout handler crashed" in machine["failure"]["reason"]
    assert len(processor.of_kind("timeout")) == 1


async def test_a_replaced_timer_fires_once_at_its_new_time(
    api: Api, processor: FakeProcessor
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "init":
            return Answer(body={"action": {"timer": {"set": {"timeout": 0.3}}}})
        if seen.kind == "call":
            return Answer(body={"action": {"timer": {"set": {"timeout": 0.8}}}})
        return Answer(body={"events": [{"data": "fired"}]})

    processor.behaviour = behaviour
    await api.start("m1")
    await api.call("m1")
    replaced_at = utc_now()
    await wait_for(lambda: status_is(api, "m1", "sleeping"))
    await trio.sleep(0.5)
    [fired] = processor.of_kind("timeout")
    assert fired.received_at >= replaced_at + timedelta(seconds=0.75)


async def test_twenty_timers_on_two_nodes_fire_exactly_once_without_overlap(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "init":
            return Answer(body={"action": {"timer": {"set": {"timeout": 1}}}})
        await trio.sleep(0.05)  # overlapping steps would show if two nodes fired one timer
        return Answer(body={"events": [{"data": "fired"}]})

    processor.behaviour = behaviour
    first: Node = await nodes()
    second: Node = await nodes()
    async with api_for(first) as a, api_for(second) as b:
        for n in range(20):
            await (a if n % 2 else b).start(f"m{n}")

        async def all_fired() -> bool:
            page = body(await a.search(status="sleeping", limit=100))
            return len(page["machines"]) == 20

        await wait_for(all_fired, seconds=15)
        await trio.sleep(1.0)  # anything that would fire twice has had time to
        for n in range(20):
            machine = body(await a.get(f"m{n}"))
            assert [e["data"] for e in machine["history"]] == ["fired"]
    fired = processor.of_kind("timeout")
    assert sorted(s.machine["id"] for s in fired) == sorted(f"m{n}" for n in range(20))
    assert processor.overlaps == 0
    assert first.timer_loop.handled + second.timer_loop.handled >= 20


async def test_the_trace_of_the_step_that_set_a_timer_is_continued_when_it_fires(
    api: Api, processor: FakeProcessor
) -> None:
    processor.behaviour = timer_on_init({"timeout": 0})
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    await api.start("m1", headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"})
    await wait_for(lambda: status_is(api, "m1", "sleeping"))
    [fired] = processor.of_kind("timeout")
    assert fired.headers["traceparent"].split("-")[1] == trace_id
    assert format_time(utc_now())  # keeps the import honest for readers


async def test_a_new_early_timer_wakes_the_loop_without_waiting_for_a_poll(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    # With a one-minute polling interval only the wake-up can make this timer fire in time.
    node: Node = await nodes(timers={"poll_interval": "60s"})
    processor.behaviour = timer_on_init({"timeout": 0.2})
    async with api_for(node) as api:
        await trio.sleep(0.3)  # the loop is now asleep for a minute
        started = utc_now()
        await api.start("m1")
        await wait_for(lambda: status_is(api, "m1", "sleeping"), seconds=5)
    [fired] = processor.of_kind("timeout")
    assert fired.received_at - started < timedelta(seconds=3)
