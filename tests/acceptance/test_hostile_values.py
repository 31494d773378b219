"""The one value rule at every edge (HOSTILE probes 11, 12, 50, 51, 56-60, 64): each bad class
of value, from a processor (as a call's, a timer's or a notification's reply) or from a client
(JSON and MessagePack), is refused where it enters, and every reader still answers."""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
import pytest

from mg.node import Node
from tests.acceptance.test_timers import wait_for
from tests.support.api import Api, body
from tests.support.cli import mg_thread
from tests.support.cluster import NodeFactory, api_for
from tests.support.processor import Answer, FakeProcessor, Seen

MSGPACK = "application/msgpack"
JSON = "application/json"
SENTINEL = "\x00bad value here\x00"
MAX_EVENTS = 5
MAX_REPLY_BYTES = 64 * 1024


def _deep_msgpack(depth: int) -> bytes:
    return b"\x91" * depth + b"\xc0"


# A bad value as raw bytes in either encoding (MessagePack cannot hold 2^70 or a lone
# surrogate's str, JSON cannot hold NaN), and the words the failure reason must hold.
BAD_IN_REPLIES: dict[str, tuple[str, bytes, str]] = {
    "NaN": (MSGPACK, msgpack.packb(math.nan), "float NaN is not a contract value"),
    "-Infinity": (MSGPACK, msgpack.packb(-math.inf), "float -Infinity is not a contract value"),
    "1e400": (JSON, b"1e400", "float Infinity is not a contract value"),
    "600 deep": (MSGPACK, _deep_msgpack(600), "nested deeper than 100 levels"),
    "30000 deep JSON": (JSON, b"[" * 30_000 + b"]" * 30_000, "nested deeper than 100"),
    "2^70": (JSON, b"1180591620717411303424", "integer out of the 64-bit range"),
    "lone surrogate": (JSON, b'"\\ud800"', "lone surrogate"),
}


BAD_TIMER_FIELDS = [
    ("nan-timeout", {"timeout": math.nan}, "timeout must be a finite"),
    ("inf-timeout", {"timeout": math.inf}, "timeout must be a finite"),
    ("inf-handling", {"timeout": 0, "handling_timeout": math.inf}, "handling_timeout must be"),
    ("huge-handling", {"timeout": 0, "handling_timeout": 1e300}, "handling_timeout is more"),
    ("year-10000", {"deadline": "10000-01-01T00:00:00Z"}, "not an RFC 3339 timestamp"),
]


def _reply(media: str, bad: bytes, place: str) -> bytes:
    """A reply with the bad value at ``place`` (events, response or aux_state)."""
    shape: dict[str, Any] = {
        "events": {"events": [{"data": "fine"}, {"data": SENTINEL}]},
        "response": {"response": SENTINEL, "events": [{"data": "applied"}]},
        "aux_state": {"aux_state": {"data": SENTINEL}},
    }[place]
    if media == JSON:
        return json.dumps(shape).replace(json.dumps(SENTINEL), bad.decode()).encode()
    return msgpack.packb(shape).replace(msgpack.packb(SENTINEL), bad)


def _plan(source: str) -> list[tuple[str, str, bytes, str]]:
    """(machine id, media, raw reply, expected words) for every bad class and place."""
    places = ["events", "aux_state"] + (["response"] if source == "call" else [])
    plan = [
        (f"{source}-{name}-{place}", media, _reply(media, bad, place), words)
        for name, (media, bad, words) in BAD_IN_REPLIES.items()
        for place in places
    ]
    for name, spec, words in BAD_TIMER_FIELDS:
        reply = msgpack.packb({"action": {"timer": {"set": spec}}})
        plan.append((f"{source}-timer-{name}", MSGPACK, reply, words))
    too_many = json.dumps({"events": [{"data": n} for n in range(MAX_EVENTS + 1)]}).encode()
    too_big = json.dumps({"response": "x" * MAX_REPLY_BYTES}).encode()
    plan.append((f"{source}-events", JSON, too_many, f"the limit is {MAX_EVENTS}"))
    plan.append((f"{source}-bytes", JSON, too_big, "over processor.max_reply_bytes"))
    return plan


async def _start_node(nodes: NodeFactory, encoding: str) -> Node:
    node: Node = await nodes(
        processor={
            "encoding": encoding,
            "max_events": MAX_EVENTS,
            "max_reply_bytes": MAX_REPLY_BYTES,
        },
        sinks=["main"],
        sinks_config={"main": {"poll_interval": "50ms"}},
    )
    return node


async def _readers_answer(node: Node, api: Api, machine_ids: list[str]) -> None:
    """Every reader of machines and of the sink answers, in both encodings, and the CLI."""
    http = api.http
    for machine_id in machine_ids:
        for accept in (JSON, MSGPACK):
            answer = await http.get(api.machine_path(machine_id), headers={"accept": accept})
            assert answer.status_code == 200, (machine_id, accept, answer.text)
    for accept in (JSON, MSGPACK):
        assert (await api.search(limit=1000)).status_code == 200
        answer = await http.get("/v1/sinks/main/events?after=0", headers={"accept": accept})
        assert answer.status_code == 200, answer.text
    tail = await mg_thread("sink", "tail", "main", "--after", "0", "--url", node.url)
    assert tail.code == 0, tail.err
    assert "Traceback" not in tail.err
    tail = await mg_thread("sink", "tail", "main", "--after", "0", "--json", "--url", node.url)
    assert tail.code == 0, tail.err


@pytest.mark.parametrize("source", ["call", "timer", "notification"])
async def test_bad_values_from_a_processor_fail_the_machine_and_readers_still_answer(
    nodes: NodeFactory, processor: FakeProcessor, source: str
) -> None:
    plan = _plan(source)
    replies = {machine_id: (media, raw) for machine_id, media, raw, _ in plan}

    async def behaviour(seen: Seen) -> Answer:
        machine_id = seen.machine["id"]
        if seen.kind == "init":
            timer = {"timer": {"set": {"timeout": 0}}} if source == "timer" else {}
            return Answer(body={"events": [{"data": "init"}], "action": timer})
        media, raw = replies[machine_id]
        return Answer(raw=raw, media=media)

    processor.behaviour = behaviour
    node = await _start_node(nodes, "msgpack")
    async with api_for(node) as api:
        for machine_id, _, _, words in plan:
            assert (await api.start(machine_id)).status_code == 201
            if source == "call":
                answer = await api.call(machine_id, {})
                assert answer.status_code == 409, (machine_id, answer.text)
                assert words in body(answer)["reason"], (machine_id, body(answer))
            elif source == "notification":
                notified = await api.post(api.machine_path(machine_id) + "/notify", {})
                assert notified.status_code == 202

        async def all_failed() -> bool:
            page = body(await api.search(status="failed", limit=1000))
            return len(page["machines"]) == len(plan)

        await wait_for(all_failed, seconds=20)
        for machine_id, _, _, words in plan:
            machine = body(await api.get(machine_id))
            assert machine["status"] == "failed"
            assert words in machine["failure"]["reason"], (machine_id, machine["failure"])
            # Nothing of the refused step was stored (not the "applied" event either).
            assert [event["data"] for event in machine["history"]] == ["init"], machine_id
        await _readers_answer(node, api, [machine_id for machine_id, *_ in plan])


# Bodies a client may not send, as raw bytes: (media, body).
BAD_BODIES: dict[str, tuple[str, bytes]] = {
    "JSON 1e400": (JSON, b'{"args": {"v": 1e400}}'),
    "JSON -1e400": (JSON, b'{"args": [-1e400]}'),
    "JSON lone surrogate": (JSON, b'{"args": "\\ud800"}'),
    "JSON lone surrogate key": (JSON, b'{"args": {"\\udfff": 1}}'),
    "JSON NaN": (JSON, b'{"args": NaN}'),
    "JSON 2^64": (JSON, b'{"args": 18446744073709551616}'),
    "JSON 101 deep": (JSON, b'{"args": ' + b"[" * 101 + b"]" * 101 + b"}"),
    "MessagePack NaN": (MSGPACK, msgpack.packb({"args": math.nan})),
    "MessagePack Infinity": (MSGPACK, msgpack.packb({"args": {"v": math.inf}})),
    "MessagePack 101 deep": (MSGPACK, b"\x81\xa4args" + _deep_msgpack(100)),
    "MessagePack surrogate": (MSGPACK, b"\x81\xa4args\xa3\xed\xa0\x80"),
}


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_bad_values_from_a_client_are_400_and_nothing_reaches_the_processor(
    nodes: NodeFactory, processor: FakeProcessor, encoding: str
) -> None:
    node = await _start_node(nodes, encoding)
    async with api_for(node) as api:
        assert (await api.start("m")).status_code == 201
        seen = len(processor.seen)
        for name, (media, data) in BAD_BODIES.items():
            for path in (
                api.machine_path(f"new-{len(name)}") + "/start",
                api.machine_path("m") + "/call",
                api.machine_path("m") + "/notify",
            ):
                answer = await api.http.post(path, content=data, headers={"content-type": media})
                assert answer.status_code == 400, (name, path, answer.text)
                assert body(answer)["error"] == "invalid_request"
                assert "Traceback" not in answer.text
        assert len(processor.seen) == seen
        # The queue is not blocked: a good notification is delivered.
        assert (
            await api.post(api.machine_path("m") + "/notify", {"args": {"ok": 1}})
        ).status_code == 202

        async def delivered() -> bool:
            return len(processor.of_kind("notification", "m")) == 1

        await wait_for(delivered)
        await _readers_answer(node, api, ["m"])


async def test_a_repair_refusal_with_a_bad_reason_fails_the_repair_not_the_node(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "init":
            return Answer(body={})
        if seen.kind == "call":
            return Answer(status=500, body="broken", media=JSON)
        return Answer(status=422, body={"error": "repair_failed", "reason": math.nan})

    processor.behaviour = behaviour
    node = await _start_node(nodes, "msgpack")
    async with api_for(node) as api:
        assert (await api.start("m")).status_code == 201
        assert (await api.call("m")).status_code == 409
        answer = await api.repair("m")
        assert answer.status_code == 409, answer.text
        assert "reason: float NaN is not a contract value" in body(answer)["reason"]
        await _readers_answer(node, api, ["m"])
