"""Trimming a machine's history (PROTOCOL section 7) through live nodes, a real HTTP processor
and Postgres: the processor's ``trim`` action, ``history_bounds`` everywhere a machine is
shown, ranges on the held span, ``history.max_events``, and the state cache across nodes."""

from __future__ import annotations

from typing import Any

import msgpack
import trio

from mg.client import AsyncClient, Direction, HistoryBounds, Range
from mg.node import Node
from mg.processor import Machine, Processor, Result, serve
from tests.support.api import Api, body
from tests.support.cli import mg_thread
from tests.support.cluster import NodeFactory, api_for
from tests.support.processor import Answer, FakeProcessor, Seen
from tests.support.sql import sql


def args_of(seen: Seen) -> Any:
    return seen.body["signal"]["args"] if seen.body["kind"] == "signal" else seen.body["args"]


async def appending(seen: Seen) -> Answer:
    """Appends the args' ``events`` (a count) and trims before the args' ``trim``, if any."""
    args = args_of(seen) or {}
    bounds = seen.machine["history_bounds"]
    count = args.get("events", 1)
    events = [{"data": bounds["last"] + n} for n in range(1, count + 1)]
    answer: dict[str, Any] = {"response": bounds, "events": events}
    if "trim" in args:
        answer["action"] = {"trim": {"before": args["trim"]}}
    return Answer(body=answer)


def ids(machine: dict[str, Any]) -> list[int]:
    return [e["id"] for e in machine["history"]]


async def test_a_trim_deletes_old_events_in_the_step_and_ids_continue(
    api: Api, processor: FakeProcessor
) -> None:
    processor.behaviour = appending
    await api.start("m", {"events": 5})
    before = body(await api.get("m"))
    assert before["history_bounds"] == {"first": 1, "last": 5}
    response = await api.call("m", {"events": 2, "trim": 4})
    assert response.status_code == 200
    assert body(response)["response"] == {"first": 1, "last": 5}  # what the processor saw
    machine = body(await api.get("m"))
    assert machine["history_bounds"] == {"first": 4, "last": 7}
    assert ids(machine) == [4, 5, 6, 7]
    assert [e["data"] for e in machine["history"]] == [4, 5, 6, 7]
    await api.call("m", {"events": 1})
    assert processor.seen[-1].machine["history_bounds"] == {"first": 4, "last": 7}
    assert [e["id"] for e in processor.seen[-1].machine["history"]] == [4, 5, 6, 7]
    assert ids(body(await api.get("m"))) == [4, 5, 6, 7, 8]
    metrics = (await api.http.get("/metrics")).text
    assert 'mg_events_trimmed_total{ns="test"} 3.0' in metrics


async def test_history_bounds_in_messagepack_answers(node: Node, processor: FakeProcessor) -> None:
    processor.behaviour = appending
    async with api_for(node, msgpack_bodies=True) as api:
        await api.start("m", {"events": 3, "trim": 3})
        response = await api.http.get(
            api.machine_path("m"), headers={"Accept": "application/msgpack"}
        )
        machine = msgpack.unpackb(response.content)
        assert machine["history_bounds"] == {"first": 3, "last": 3}
        assert [e["id"] for e in machine["history"]] == [3]


async def test_trimmed_machines_show_in_their_psql_view(
    api: Api, processor: FakeProcessor, database_url: str
) -> None:
    processor.behaviour = appending
    await api.start("kept", {"events": 3})
    await api.start("m", {"events": 6, "trim": 5})
    async with sql(database_url) as db:
        rows = await db.fetch("SELECT ns, id, first, last, held, trimmed FROM mg_trimmed_machines")
    assert [tuple(r) for r in rows] == [("test", "m", 5, 6, 2, 4)]


async def test_ranges_work_on_the_held_span(api: Api, processor: FakeProcessor) -> None:
    processor.behaviour = appending
    await api.start("m", {"events": 10, "trim": 5})
    assert ids(body(await api.get("m", after=2))) == [5, 6, 7, 8, 9, 10]  # after below first
    assert ids(body(await api.get("m", after=2, limit=2))) == [5, 6]
    assert ids(body(await api.get("m", limit=2))) == [5, 6]
    assert ids(body(await api.get("m", after=7, direction="backward"))) == [6, 5]
    assert ids(body(await api.get("m", after=3, direction="backward"))) == []
    assert ids(body(await api.get("m", limit=2, direction="backward"))) == [10, 9]
    assert ids(body(await api.get("m", after=11, limit=2, direction="backward"))) == [10, 9]


async def test_a_trim_past_the_new_end_fails_the_machine_with_a_reason(
    api: Api, processor: FakeProcessor
) -> None:
    processor.behaviour = appending
    await api.start("m", {"events": 3})
    response = await api.call("m", {"events": 1, "trim": 6})
    assert response.status_code == 409
    assert body(response)["error"] == "machine_failed"
    machine = body(await api.get("m"))
    assert machine["status"] == "failed"
    assert "action.trim.before is 6" in machine["failure"]["reason"]
    # The step was not applied: nothing appended, nothing trimmed.
    assert machine["history_bounds"] == {"first": 1, "last": 3}
    assert ids(machine) == [1, 2, 3]


async def test_bad_trim_values_fail_the_machine(api: Api, processor: FakeProcessor) -> None:
    processor.behaviour = appending
    for n, bad in enumerate([0, -3, 1.5, "2"]):
        await api.start(f"m{n}", {"events": 2})
        assert (await api.call(f"m{n}", {"events": 0, "trim": bad})).status_code == 409
        machine = body(await api.get(f"m{n}"))
        assert machine["status"] == "failed"
        assert "action.trim.before must be a positive integer" in machine["failure"]["reason"]


async def test_a_start_whose_trim_is_out_of_range_stores_nothing(
    api: Api, processor: FakeProcessor
) -> None:
    processor.behaviour = appending
    assert (await api.start("m", {"events": 1, "trim": 3})).status_code == 409
    assert (await api.get("m")).status_code == 404


async def test_trim_of_everything_then_new_events(api: Api, processor: FakeProcessor) -> None:
    processor.behaviour = appending
    await api.start("m", {"events": 3})
    await api.call("m", {"events": 2, "trim": 6})
    machine = body(await api.get("m"))
    assert machine["history_bounds"] == {"first": 6, "last": 5}
    assert machine["history"] == []
    assert body(await api.get("m", direction="backward"))["history"] == []
    await api.call("m", {"events": 2})
    assert processor.seen[-1].machine["history_bounds"] == {"first": 6, "last": 5}
    machine = body(await api.get("m"))
    assert machine["history_bounds"] == {"first": 6, "last": 7}
    assert ids(machine) == [6, 7]


async def test_a_removed_machine_started_again_holds_from_one(
    api: Api, processor: FakeProcessor
) -> None:
    processor.behaviour = appending
    await api.start("m", {"events": 4, "trim": 4})
    assert (await api.remove("m")).status_code == 204
    await api.start("m", {"events": 2})
    assert body(await api.get("m"))["history_bounds"] == {"first": 1, "last": 2}


async def test_a_reader_never_sees_a_step_half_trimmed(
    api: Api, node: Node, processor: FakeProcessor
) -> None:
    """Each step appends one event and keeps the newest three: every read, whenever it lands,
    sees exactly three contiguous events ending at the bounds' last."""
    processor.behaviour = appending
    await api.start("m", {"events": 3})
    done = trio.Event()
    reads = 0

    async def read() -> None:
        nonlocal reads
        async with api_for(node) as reader:
            while not done.is_set():
                machine = body(await reader.get("m"))
                bounds = machine["history_bounds"]
                assert ids(machine) == list(range(bounds["first"], bounds["last"] + 1))
                assert len(machine["history"]) == 3
                reads += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        for step in range(40):
            last = 3 + step + 1
            assert (await api.call("m", {"events": 1, "trim": last - 2})).status_code == 200
        done.set()
    assert reads > 0


async def test_max_events_caps_a_busy_machine_and_a_config_change_applies_on_the_next_step(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    processor.behaviour = appending
    capped: Node = await nodes(history={"max_events": 5})
    async with api_for(capped) as api:
        await api.start("m", {"events": 8})
        assert body(await api.get("m"))["history_bounds"] == {"first": 4, "last": 8}

        async def caller(n: int) -> None:
            for _ in range(10):
                assert (await api.call("m", {"events": 2})).status_code == 200

        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(caller, n)
        machine = body(await api.get("m"))
        assert machine["history_bounds"] == {"first": 84, "last": 88}
        assert ids(machine) == [84, 85, 86, 87, 88]
    # Another node configured with a smaller cap trims on its next step of the machine.
    smaller: Node = await nodes(history={"max_events": 2})
    async with api_for(smaller) as api:
        assert body(await api.get("m"))["history_bounds"] == {"first": 84, "last": 88}
        await api.call("m", {"events": 1})
        assert ids(body(await api.get("m"))) == [88, 89]


async def test_a_node_that_cached_a_machine_sees_a_trim_made_on_another_node(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    processor.behaviour = appending
    a: Node = await nodes()
    b: Node = await nodes(history={"max_events": 2})
    async with api_for(a) as on_a, api_for(b) as on_b:
        await on_a.start("m", {"events": 4})
        await on_a.call("m", {"events": 1})
        assert ids(body(await on_a.get("m"))) == [1, 2, 3, 4, 5]  # a caches all five
        await on_b.call("m", {"events": 1})  # b keeps the newest two
        assert ids(body(await on_a.get("m"))) == [5, 6]
        assert body(await on_a.get("m"))["history_bounds"] == {"first": 5, "last": 6}
        await on_a.call("m", {"events": 1})
        assert processor.seen[-1].machine["history_bounds"] == {"first": 5, "last": 6}
        assert [e["id"] for e in processor.seen[-1].machine["history"]] == [5, 6]
        # And the other way round: a trims by the processor's action, b's copy follows.
        await on_a.call("m", {"events": 0, "trim": 7})
        assert ids(body(await on_b.get("m"))) == [7]
        await on_b.call("m", {"events": 1})
        assert [e["id"] for e in processor.seen[-1].machine["history"]] == [7]


class Snapshotting(Processor):
    """Keeps a running total in aux_state and trims the history behind it."""

    def init(self, args: Any, machine: Machine) -> Result:
        return Result(events=[args], aux_state={"total": args})

    def call(self, args: Any, machine: Machine) -> Result:
        assert machine.history_bounds is not None
        total = machine.aux_state.data["total"] if machine.aux_state else 0
        last = machine.history_bounds.last
        return Result(
            response=(machine.history_bounds.first, last),
            events=[args],
            aux_state={"total": total + args},
            trim_before=last + 1,  # keep only this step's event
        )


async def test_the_processor_framework_and_the_client_show_bounds_and_trim(
    nodes: NodeFactory,
) -> None:
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(serve, Snapshotting(), "127.0.0.1", 0)
        node: Node = await nodes(processor={"url": url})
        async with AsyncClient(node.url) as mg:
            await mg.start("test", "m", 1)
            assert await mg.call("test", "m", 2) == [1, 1]
            assert await mg.call("test", "m", 3) == [2, 2]
            machine = await mg.get("test", "m")
            assert machine.history_bounds == HistoryBounds(3, 3)
            assert [e.data for e in machine.history] == [3]
            assert machine.aux_state is not None
            assert machine.aux_state.data == {"total": 6}
            backward = Range(after=1, direction=Direction.BACKWARD)
            assert (await mg.get("test", "m", range=backward)).history == ()
        nursery.cancel_scope.cancel()


async def test_mg_machines_get_shows_what_is_held(node: Node, processor: FakeProcessor) -> None:
    processor.behaviour = appending
    async with api_for(node) as api:
        await api.start("m", {"events": 6, "trim": 4})
    common = ["--url", node.url, "--ns", "test"]
    shown = await mg_thread("machines", "get", "m", *common)
    assert shown.code == 0
    assert "events 4..6, 1..3 trimmed" in shown.out
    document = (await mg_thread("machines", "get", "m", "--json", *common)).json()
    assert document["history_bounds"] == {"first": 4, "last": 6}
