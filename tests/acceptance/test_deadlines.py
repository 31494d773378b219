"""Deadlines are deadlines, and fairness (docs/architecture.md, "Deadlines and fairness"): a
processor or modernizer that answers one byte at a time is cut at the step's deadline and its
late answer is never committed; a slow namespace cannot take every step slot of the node; sink
long-polls have a budget of their own.

Timings are asserted with generous bounds only: each trickling answer would take far longer
than any bound here if it were not cut.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import trio

from mg.node import Node
from mg.settings import Settings, from_mapping
from tests.support.api import Api, body
from tests.support.cluster import node_starter
from tests.support.trickle import Request, TrickleProcessor, echo_late, trickling

BYTE_EVERY = 0.3  # an answer of ~80 bytes takes ~24 s: far past every deadline below


def config(url: str, **top: Any) -> Settings:
    """Namespace ``slow`` (1 s deadlines) and namespace ``fast``, on one trickle server; four
    step slots on the node, so two per namespace by default."""
    return from_mapping(
        {
            "database": {"pool_size": 16},
            "limits": {"max_steps_in_flight": 4, **top.pop("limits", {})},
            "sinks": {"main": {}},
            "namespaces": {
                "slow": {
                    "processor": {"url": url},
                    "default_processing_timeout": "1s",
                    "timer_processing_timeout": "1s",
                    "retries": {"timers": {"type": "intervals", "intervals": ["30s"]}},
                    "modernizer": {"url": url, "current_format_version": 2},
                },
                "fast": {"processor": {"url": url}, "default_processing_timeout": "5s"},
            },
            **top,
        },
        environ={},
    )


def trickles_when(args: Any) -> Callable[[Request], float | None]:
    """Trickle every call whose args are ``args``, every timeout and every modernizer call."""

    def trickle(request: Request) -> float | None:
        if "event" in request:  # a modernizer call
            return BYTE_EVERY
        if request.get("kind") == "signal" and request["signal"]["type"] == "timeout":
            return BYTE_EVERY
        if request.get("kind") == "call" and request.get("args") == args:
            return BYTE_EVERY
        return None

    return trickle


def answers(request: Request) -> Any:
    if "event" in request:
        return {"event": {"data": "modern", "format_version": 2}}
    machine = request.get("machine") or {}
    is_init = request.get("kind") == "signal" and request["signal"]["type"] == "init"
    if is_init and str(machine.get("id", "")).startswith("timer"):
        return {"action": {"timer": {"set": {"timeout": 0.2}}}}
    return echo_late(request)


@pytest.fixture
async def processor() -> AsyncIterator[TrickleProcessor]:
    async with trickling(TrickleProcessor(answers, trickles_when("trickle"))) as fake:
        yield fake


NodeStarter = Callable[..., Any]


@pytest.fixture
async def start_node(database_url: str, processor: TrickleProcessor) -> AsyncIterator[NodeStarter]:
    async with node_starter(database_url, lambda **top: config(processor.url, **top)) as start:
        yield start


@pytest.fixture
async def slow(start_node: NodeStarter) -> AsyncIterator[Api]:
    node: Node = await start_node()
    client = Api(node.url, ns="slow")
    yield client
    await client.aclose()


async def timed(call: Any) -> tuple[httpx.Response, float]:
    began = trio.current_time()
    response = await call
    return response, trio.current_time() - began


async def test_a_trickling_answer_is_cut_at_the_deadline_and_not_committed(slow: Api) -> None:
    assert (await slow.start("m1")).status_code == 201
    late, elapsed = await timed(slow.call("m1", "trickle"))
    assert late.status_code == 504
    assert body(late)["error"] == "deadline_exceeded"
    assert 0.8 < elapsed < 4.0  # the deadline is 1 s; the whole answer would take ~24 s
    machine = body(await slow.get("m1"))
    assert machine["history"] == []
    # The connection cut mid-answer is not reused: the machine's next call works.
    answered = await slow.call("m1", "quick")
    assert answered.status_code == 200
    assert body(answered)["response"] == "late"
    assert [e["data"] for e in body(await slow.get("m1"))["history"]] == ["late"]


async def test_a_slow_namespace_leaves_the_others_served(
    slow: Api, processor: TrickleProcessor
) -> None:
    fast = Api(slow.http.base_url.__str__(), ns="fast")
    try:
        for index in range(6):
            assert (await slow.start(f"s{index}")).status_code == 201
        assert (await fast.start("f1")).status_code == 201
        outcomes: list[int] = []

        async def hog(machine_id: str) -> None:
            response = await slow.call(machine_id, "trickle", headers={"x-request-timeout": "4000"})
            outcomes.append(response.status_code)

        async with trio.open_nursery() as nursery:
            for index in range(6):
                nursery.start_soon(hog, f"s{index}")
            await trio.sleep(0.5)  # every slot namespace slow may hold is taken by now
            served, elapsed = await timed(fast.call("f1", "quick"))
            assert served.status_code == 200
            assert elapsed < 2.5  # served at once, not after the hogs' 4 s deadline
        assert outcomes == [504] * 6
    finally:
        await fast.aclose()


async def test_a_trickling_timeout_step_is_not_committed_late(slow: Api) -> None:
    assert (await slow.start("timer1")).status_code == 201
    machine: dict[str, Any] = {}
    with trio.move_on_after(8):
        while True:
            machine = body(await slow.get("timer1"))
            if machine["status"] == "retrying":
                break
            await trio.sleep(0.1)
    assert machine["status"] == "retrying"
    assert machine["history"] == []
    assert machine["timer"] is not None  # kept for the next attempt


async def test_a_trickling_modernizer_is_cut_at_the_deadline(slow: Api) -> None:
    assert (await slow.start("m1")).status_code == 201
    assert (await slow.call("m1", "quick")).status_code == 200
    late, elapsed = await timed(slow.post(slow.machine_path("m1") + "/modernize", {}))
    assert late.status_code == 504
    assert body(late)["error"] == "deadline_exceeded"
    assert 0.8 < elapsed < 4.0
    history = body(await slow.get("m1"))["history"]
    assert [(e["data"], e["format_version"]) for e in history] == [("late", None)]


async def test_long_polls_have_their_own_budget(start_node: NodeStarter) -> None:
    node: Node = await start_node(limits={"max_requests_in_flight": 2, "max_long_polls": 2})
    async with httpx.AsyncClient(base_url=node.url, timeout=30, trust_env=False) as http:
        machines = Api(node.url, ns="fast")
        try:
            assert (await machines.start("f1")).status_code == 201
            polls: list[int] = []

            async def poll() -> None:
                response = await http.get("/v1/sinks/main/events?after=999999&wait=3")
                polls.append(response.status_code)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                nursery.start_soon(poll)
                await trio.sleep(1)  # both wait in the node now
                refused = await http.get("/v1/sinks/main/events?after=999999&wait=3")
                assert refused.status_code == 429
                assert body(refused)["error"] == "overloaded"
                # Steps keep their own budget: a call and a read go through at once.
                called, elapsed = await timed(machines.call("f1", "quick"))
                assert called.status_code == 200
                assert elapsed < 2.5
                assert (await machines.get("f1")).status_code == 200
                assert (await http.get("/v1/sinks/main/events?after=0")).status_code == 200
            assert polls == [200, 200]
        finally:
            await machines.aclose()
