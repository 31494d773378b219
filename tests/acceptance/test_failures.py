"""Processor failures, transient and permanent, and the repairs."""

from __future__ import annotations

import gzip

import msgpack
import trio

from tests.support.api import Api, body
from tests.support.processor import Answer, FakeProcessor, Seen, echo


def fail_calls_with(status: int, text: bytes = b"boom") -> object:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "call":
            return Answer(status=status, raw=text, media="text/plain")
        return await echo(seen)

    return behaviour


async def test_start_twice_is_refused_even_when_the_machine_failed(
    api: Api, processor: FakeProcessor
) -> None:
    await api.start("m1")
    again = await api.start("m1")
    assert again.status_code == 409
    assert body(again)["error"] == "machine_already_exists"
    processor.behaviour = fail_calls_with(500)  # type: ignore[assignment]
    await api.call("m1")
    assert body(await api.get("m1"))["status"] == "failed"
    still = await api.start("m1")
    assert still.status_code == 409
    assert body(still)["error"] == "machine_already_exists"


async def test_failed_init_stores_nothing(api: Api, processor: FakeProcessor) -> None:
    async def behaviour(seen: Seen) -> Answer:
        return Answer(status=500, raw=b"init exploded", media="text/plain")

    processor.behaviour = behaviour
    failed = await api.start("m1")
    assert failed.status_code == 409
    assert body(failed)["error"] == "machine_failed"
    assert "init exploded" in body(failed)["reason"]
    assert (await api.get("m1")).status_code == 404
    processor.behaviour = echo
    assert (await api.start("m1", "fresh")).status_code == 201


async def test_init_refusing_its_args_is_422_invalid_args_and_stores_nothing(
    api: Api, processor: FakeProcessor
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "init" and seen.body["signal"]["args"] != "good":
            return Answer(422, {"error": "invalid_args", "reason": {"missing": "cents"}})
        return await echo(seen)

    processor.behaviour = behaviour
    refused = await api.start("m1", "bad")
    assert refused.status_code == 422
    answer = body(refused)
    assert answer["error"] == "invalid_args"
    assert answer["reason"] == {"missing": "cents"}
    assert "nothing was stored" in answer["message"]
    assert (await api.get("m1")).status_code == 404
    assert (await api.start("m1", "good")).status_code == 201


async def test_an_invalid_args_answer_to_a_call_fails_the_machine(
    api: Api, processor: FakeProcessor
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "call":
            return Answer(422, {"error": "invalid_args", "reason": "not here"})
        return await echo(seen)

    processor.behaviour = behaviour
    await api.start("m1")
    failed = await api.call("m1")
    assert body(failed)["error"] == "machine_failed"
    assert body(await api.get("m1"))["status"] == "failed"


async def test_processor_500_during_a_call_fails_the_machine_and_keeps_the_reason(
    api: Api, processor: FakeProcessor
) -> None:
    await api.start("m1", "a")
    processor.behaviour = fail_calls_with(500, b"database of the processor is on fire")  # type: ignore[assignment]
    failed = await api.call("m1")
    assert failed.status_code == 409
    assert body(failed)["error"] == "machine_failed"
    machine = body(await api.get("m1"))
    assert machine["status"] == "failed"
    assert "500" in machine["failure"]["reason"]
    assert "on fire" in machine["failure"]["reason"]
    assert [e["id"] for e in machine["history"]] == [1]
    # A call on a failed machine is refused without calling the processor.
    calls_before = len(processor.seen)
    refused = await api.call("m1")
    assert refused.status_code == 409
    assert body(refused)["error"] == "machine_failed"
    assert len(processor.seen) == calls_before


async def test_an_answer_that_breaks_the_schema_fails_the_machine(
    api: Api, processor: FakeProcessor
) -> None:
    await api.start("m1")

    async def garbage(seen: Seen) -> Answer:
        return Answer(body={"events": "not a list"})

    processor.behaviour = garbage
    assert body(await api.call("m1"))["error"] == "machine_failed"
    machine = body(await api.get("m1"))
    assert machine["status"] == "failed"
    assert "events must be a list" in machine["failure"]["reason"]

    async def not_msgpack(seen: Seen) -> Answer:
        return Answer(raw=b"\xc1\xc1", media="application/msgpack")

    await api.simple_repair("m1")
    processor.behaviour = not_msgpack
    assert body(await api.call("m1"))["error"] == "machine_failed"


async def test_an_answer_that_does_not_decode_by_its_content_encoding_fails_the_machine(
    api: Api, processor: FakeProcessor
) -> None:
    await api.start("m1")
    packed = msgpack.packb({"response": "zipped", "events": [{"data": "zipped"}]})

    async def zipped(seen: Seen) -> Answer:
        return Answer(raw=gzip.compress(packed), headers=[(b"content-encoding", b"gzip")])

    processor.behaviour = zipped
    answer = await api.call("m1")
    assert answer.status_code == 200, answer.text
    assert body(answer)["response"] == "zipped"

    async def broken(seen: Seen) -> Answer:
        return Answer(raw=b"not gzip at all", headers=[(b"content-encoding", b"gzip")])

    processor.behaviour = broken
    assert body(await api.call("m1"))["error"] == "machine_failed"
    machine = body(await api.get("m1"))
    assert machine["status"] == "failed"
    assert "does not decode by its Content-Encoding" in machine["failure"]["reason"]
    assert [event["data"] for event in machine["history"]][-1] == "zipped"


async def assert_unchanged(api: Api, machine_id: str, events: int) -> None:
    machine = body(await api.get(machine_id))
    assert machine["status"] == "sleeping"
    assert len(machine["history"]) == events


async def test_processor_503_is_unavailable_and_changes_nothing(
    api: Api, processor: FakeProcessor
) -> None:
    await api.start("m1")
    processor.behaviour = fail_calls_with(503)  # type: ignore[assignment]
    answer = await api.call("m1")
    assert answer.status_code == 503
    assert body(answer)["error"] == "unavailable"
    await assert_unchanged(api, "m1", 1)


async def test_processor_too_slow_for_the_deadline_changes_nothing(
    api: Api, processor: FakeProcessor
) -> None:
    await api.start("m1")

    async def slow(seen: Seen) -> Answer:
        await trio.sleep(2)
        return await echo(seen)

    processor.behaviour = slow
    answer = await api.call("m1", headers={"X-Request-Timeout": "300"})
    assert answer.status_code == 504
    assert body(answer)["error"] == "deadline_exceeded"
    await trio.sleep(2)  # let the slow answer arrive: it must not be applied late
    await assert_unchanged(api, "m1", 1)
    sent = processor.seen[-1].headers["x-request-deadline"]
    assert sent.endswith("Z")


async def test_processor_unreachable_is_unavailable(
    nodes: object, processor: FakeProcessor
) -> None:
    # A port nothing listens on: bind one and close it again.
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    node = await nodes(processor={"url": f"http://127.0.0.1:{port}/processor"})  # type: ignore[operator]
    client = Api(node.url)
    try:
        answer = await client.start("m1")
        assert answer.status_code == 503
        assert body(answer)["error"] == "unavailable"
        assert (await client.get("m1")).status_code == 404
    finally:
        await client.aclose()


async def test_repair_only_on_failed_machines_and_repair_failed_keeps_it_failed(
    api: Api, processor: FakeProcessor
) -> None:
    await api.start("m1")
    not_failed = await api.repair("m1")
    assert not_failed.status_code == 409
    assert body(not_failed)["error"] == "machine_already_working"
    assert body(await api.simple_repair("m1"))["error"] == "machine_already_working"

    processor.behaviour = fail_calls_with(500)  # type: ignore[assignment]
    await api.call("m1")

    async def refuse(seen: Seen) -> Answer:
        return Answer(status=422, body={"error": "repair_failed", "reason": {"why": b"\x01"}})

    processor.behaviour = refuse
    refused = await api.repair("m1", "please")
    assert refused.status_code == 422
    assert body(refused)["error"] == "repair_failed"
    assert body(refused)["reason"] == {"why": b"\x01"}
    assert body(await api.get("m1"))["status"] == "failed"

    async def accept(seen: Seen) -> Answer:
        assert seen.kind == "repair"
        return Answer(body={"response": "fixed", "events": [{"data": "repaired"}]})

    processor.behaviour = accept
    repaired = await api.repair("m1", "please")
    assert repaired.status_code == 200
    assert body(repaired) == {"response": "fixed"}
    machine = body(await api.get("m1"))
    assert machine["status"] == "sleeping"
    assert machine["failure"] is None
    assert machine["history"][-1]["data"] == "repaired"


async def test_simple_repair_restores_waiting_with_its_timer(
    api: Api, processor: FakeProcessor
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "init":
            return Answer(body={"action": {"timer": {"set": {"timeout": 3600}}}})
        return Answer(status=500, raw=b"no", media="text/plain")

    processor.behaviour = behaviour
    await api.start("m1")
    waiting = body(await api.get("m1"))
    await api.call("m1")
    assert body(await api.get("m1"))["status"] == "failed"
    answer = await api.simple_repair("m1")
    assert answer.status_code == 200
    assert body(answer) == {}
    machine = body(await api.get("m1"))
    assert machine["status"] == "waiting"
    assert machine["timer"] == waiting["timer"]
    assert machine["failure"] is None
