"""Start, call, get, remove, tags and aux state through the HTTP API, on a real Postgres and a
real HTTP processor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mg.core.clock import parse_time, utc_now
from tests.support.api import Api, body
from tests.support.processor import Answer, FakeProcessor, Seen


async def test_start_then_call_appends_events_and_returns_the_response(
    api: Api, processor: FakeProcessor
) -> None:
    started = await api.start("m1", {"hello": 1})
    assert started.status_code == 201
    assert body(started) == {"ns": "test", "id": "m1"}
    called = await api.call("m1", "second")
    assert called.status_code == 200
    assert body(called) == {"response": "second"}
    machine = body(await api.get("m1"))
    assert machine["status"] == "sleeping"
    assert [e["id"] for e in machine["history"]] == [1, 2]
    assert [e["data"] for e in machine["history"]] == [{"hello": 1}, "second"]
    assert machine["history"][0]["format_version"] == 1
    parse_time(machine["history"][0]["created_at"])
    assert machine["failure"] is None
    assert machine["tags"] == []
    assert processor.kinds() == ["init", "call"]


async def test_the_processor_sees_the_machine_cut_by_the_call_range(
    api: Api, processor: FakeProcessor
) -> None:
    await api.start("m1", 1)
    for n in range(2, 6):
        await api.call("m1", n)
    await api.call("m1", "look", range={"limit": 2, "direction": "backward"})
    seen = processor.seen[-1].machine
    assert [e["id"] for e in seen["history"]] == [5, 4]
    assert seen["history_range"] == {"after": None, "limit": 2, "direction": "backward"}
    assert seen["ns"] == "test"
    assert seen["id"] == "m1"


async def test_aux_state_is_replaced_by_a_step_and_kept_when_absent(
    api: Api, processor: FakeProcessor
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        args = seen.body.get("args") if seen.body["kind"] != "signal" else None
        if args == "keep":
            return Answer(body={})
        return Answer(body={"aux_state": {"data": {"n": len(processor.seen)}, "format_version": 4}})

    processor.behaviour = behaviour
    await api.start("m1")
    await api.call("m1", "set")
    await api.call("m1", "keep")
    machine = body(await api.get("m1"))
    assert machine["aux_state"] == {"data": {"n": 2}, "format_version": 4}
    assert processor.seen[-1].machine["aux_state"] == {"data": {"n": 2}, "format_version": 4}


async def test_a_timer_set_by_a_step_is_stored_and_shown(
    api: Api, processor: FakeProcessor
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "init":
            return Answer(body={"action": {"timer": {"set": {"timeout": 3600}}}})
        if seen.body.get("args") == "unset":
            return Answer(body={"action": {"timer": {"unset": True}}})
        return Answer(body={"response": "kept"})

    processor.behaviour = behaviour
    before = utc_now()
    await api.start("m1")
    after_start = utc_now()
    machine = body(await api.get("m1"))
    assert machine["status"] == "waiting"
    timer = parse_time(machine["timer"])
    assert before + timedelta(hours=1) <= timer <= after_start + timedelta(hours=1)
    await api.call("m1", "no timer action")
    assert body(await api.get("m1"))["timer"] == machine["timer"]
    assert processor.seen[-1].machine["timer"] == machine["timer"]
    await api.call("m1", "unset")
    after = body(await api.get("m1"))
    assert after["status"] == "sleeping"
    assert after["timer"] is None


async def test_remove_deletes_everything_and_a_new_start_begins_at_event_one(api: Api) -> None:
    await api.start("m1", "a")
    await api.call("m1", "b")
    removed = await api.remove("m1")
    assert removed.status_code == 204
    missing = await api.get("m1")
    assert missing.status_code == 404
    assert body(missing)["error"] == "machine_not_found"
    assert (await api.remove("m1")).status_code == 404
    assert (await api.start("m1", "again")).status_code == 201
    machine = body(await api.get("m1"))
    assert [e["id"] for e in machine["history"]] == [1]
    assert machine["history"][0]["data"] == "again"


async def test_a_remove_action_removes_the_machine_after_the_step(
    api: Api, processor: FakeProcessor
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "call":
            return Answer(
                body={"response": "bye", "events": [{"data": "last"}], "action": {"remove": True}}
            )
        return Answer(body={"action": {"tag": "t1"}})

    processor.behaviour = behaviour
    await api.start("m1")
    called = await api.call("m1")
    assert body(called) == {"response": "bye"}
    assert (await api.get("m1")).status_code == 404
    # The tag went with it: another machine may take it.
    assert (await api.start("m2")).status_code == 201
    assert body(await api.get("m2"))["tags"] == ["t1"]


async def test_tags_address_a_machine(api: Api, processor: FakeProcessor) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "init":
            return Answer(body={"action": {"tag": "order-42"}})
        return Answer(body={"response": seen.machine["id"]})

    processor.behaviour = behaviour
    await api.start("machine/with slash")
    by_tag = await api.http.get("/v1/namespaces/test/tags/order-42")
    assert by_tag.status_code == 200
    assert body(by_tag)["id"] == "machine/with slash"
    assert body(by_tag)["tags"] == ["order-42"]
    called = await api.post("/v1/namespaces/test/tags/order-42/call", {"args": None})
    assert body(called) == {"response": "machine/with slash"}
    missing = await api.http.get("/v1/namespaces/test/tags/nobody")
    assert missing.status_code == 404
    assert body(missing)["error"] == "machine_not_found"


async def test_a_tag_held_by_another_machine_fails_the_step(
    api: Api, processor: FakeProcessor
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        wanted: Any = seen.body.get("args") if seen.kind == "call" else seen.body["signal"]["args"]
        return Answer(body={"events": [{"data": "e"}], "action": {"tag": wanted}})

    processor.behaviour = behaviour
    await api.start("holder", "shared")
    # On start: nothing is stored.
    refused = await api.start("other", "shared")
    assert refused.status_code == 409
    assert body(refused)["error"] == "machine_failed"
    assert (await api.get("other")).status_code == 404
    # On a call: the step's effects are dropped and the machine fails with the reason.
    await api.start("third", "own-tag")
    failed = await api.call("third", "shared")
    assert failed.status_code == 409
    assert body(failed)["error"] == "machine_failed"
    machine = body(await api.get("third"))
    assert machine["status"] == "failed"
    assert "shared" in machine["failure"]["reason"]
    assert [e["id"] for e in machine["history"]] == [1]
    assert machine["tags"] == ["own-tag"]
    # Re-tagging a machine with its own tag is not a conflict.
    assert (await api.call("holder", "shared")).status_code == 200
