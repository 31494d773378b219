"""``mg.processor`` driven through its ASGI app directly (no sockets): every signal and kind,
the failure answers, upcasting and the modernizer endpoint. The replies are read back with mg's
own parser of processor answers, so both sides of the protocol agree."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import msgpack
import pytest

from mg.core.model import Content, Event, Range
from mg.core.processor_wire import Reply, TimerSpec, Unset, parse_reply
from mg.processor import (
    InvalidArgs,
    Processor,
    ProcessorApp,
    Result,
    SetTimer,
    UpcastError,
    upcaster,
)
from mg.processor.wire import reply_value
from tests.support.orders import REMINDER, Orders

JSON = "application/json"
CREATED_AT = "2026-05-06T07:08:09.000001Z"


def event(event_id: int, data: Any, version: int | None) -> dict[str, Any]:
    return {"id": event_id, "created_at": CREATED_AT, "format_version": version, "data": data}


def machine(history: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "ns": "orders",
        "id": "order-1",
        "history": history or [],
        "history_range": {"after": None, "limit": None, "direction": "forward"},
        "aux_state": None,
        "timer": None,
        "tags": [],
        **extra,
    }


def signal(kind: str, args: Any = None, **machine_fields: Any) -> dict[str, Any]:
    return {
        "kind": "signal",
        "signal": {"type": kind, "args": args},
        "machine": machine(**machine_fields),
    }


def request(kind: str, args: Any, **machine_fields: Any) -> dict[str, Any]:
    return {"kind": kind, "args": args, "machine": machine(**machine_fields)}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=ProcessorApp(Orders()))
    async with httpx.AsyncClient(transport=transport, base_url="http://processor") as client:
        yield client


async def post(http: httpx.AsyncClient, body: Any, path: str = "/processor") -> httpx.Response:
    return await http.post(
        path, content=msgpack.packb(body), headers={"content-type": "application/msgpack"}
    )


async def reply(http: httpx.AsyncClient, body: Any) -> Reply:
    answer = await post(http, body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/msgpack"
    return parse_reply(msgpack.unpackb(answer.content, raw=False))


async def test_init_stamps_events_with_the_format_version(http: httpx.AsyncClient) -> None:
    got = await reply(http, signal("init", {"cents": 500}))
    assert got.events == (Content({"kind": "created", "cents": 500}, 2),)
    assert got.aux_state == Content({"paid": 0}, 2)
    assert got.timer == TimerSpec(
        timeout=REMINDER, deadline=None, range=Range(), handling_timeout=None
    )
    assert got.response is None
    assert got.tag is None
    assert not got.remove


async def test_a_call_sees_v1_history_upcast_and_its_aux_state(http: httpx.AsyncClient) -> None:
    history = [
        event(1, {"kind": "created", "amount": 5.25}, 1),
        event(2, {"kind": "paid", "cents": 25}, 2),
    ]
    assert (await reply(http, request("call", "total", history=history))).response == 550
    paid = await reply(
        http, request("call", {"pay": 100}, aux_state={"data": {"paid": 25}, "format_version": 2})
    )
    assert paid.response == 125
    assert paid.aux_state == Content({"paid": 125}, 2)
    assert paid.timer is None  # no timer action keeps the timer


async def test_timer_tag_and_remove_actions(http: httpx.AsyncClient) -> None:
    assert (await reply(http, request("call", "quiet"))).timer is Unset.TIMER
    tagged = await reply(http, request("call", {"tag": "invoice-7"}))
    assert (tagged.response, tagged.tag) == ("tagged", "invoice-7")
    closed = await reply(http, request("call", "close"))
    assert closed.remove
    assert closed.events == (Content({"kind": "closed"}, 2),)


async def test_the_timeout_signal(http: httpx.AsyncClient) -> None:
    fired = await reply(http, signal("timeout", timer="2026-05-06T08:00:00Z"))
    assert fired.events == (Content({"kind": "reminded"}, 2),)
    assert isinstance(fired.timer, TimerSpec)
    assert fired.timer.timeout == REMINDER


async def test_the_notification_signal(http: httpx.AsyncClient) -> None:
    notified = await reply(http, signal("notification", {"note": b"\x01"}))
    assert notified.events == (Content({"kind": "notified", "note": {"note": b"\x01"}}, 2),)


async def test_a_handler_exception_is_a_permanent_failure_with_a_reason(
    http: httpx.AsyncClient,
) -> None:
    answer = await post(http, request("call", "boom"))
    assert answer.status_code == 500
    assert answer.text == "ValueError: the ledger is on fire"


async def test_repair_refused_is_422_repair_failed_and_repair_may_succeed(
    http: httpx.AsyncClient,
) -> None:
    refused = await post(http, request("repair", "not yet"))
    assert refused.status_code == 422
    assert msgpack.unpackb(refused.content) == {
        "error": "repair_failed",
        "reason": {"why": "the ledger is still on fire"},
    }
    assert (await reply(http, request("repair", "go"))).response == "repaired"


async def test_transient_is_503(http: httpx.AsyncClient) -> None:
    answer = await post(http, request("call", "busy"))
    assert answer.status_code == 503
    assert "the ledger is down" in answer.text


async def test_json_in_json_out_with_binary(http: httpx.AsyncClient) -> None:
    body = signal("notification", {"$base64": "AAE="})
    answer = await http.post("/processor", json=body)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["events"][0]["data"]["note"] == {"$base64": "AAE="}
    asked = await http.post("/processor", json=body, headers={"accept": "application/msgpack"})
    assert msgpack.unpackb(asked.content)["events"][0]["data"]["note"] == b"\x00\x01"


async def test_requests_mg_could_not_have_sent(http: httpx.AsyncClient) -> None:
    xml = await http.post("/processor", content=b"<x/>", headers={"content-type": "text/xml"})
    assert xml.status_code == 415
    broken = await http.post("/processor", content=b"{", headers={"content-type": JSON})
    assert broken.status_code == 400
    assert (await post(http, {"kind": "dance", "machine": machine()})).status_code == 400
    assert (await post(http, {"kind": "call", "args": 1})).status_code == 400
    assert (await http.get("/processor")).status_code == 405


async def test_the_modernizer_endpoint_upcasts_one_event(http: httpx.AsyncClient) -> None:
    old = event(3, {"kind": "created", "amount": 1.5}, 1)
    answer = await post(http, {"ns": "orders", "id": "order-1", "event": old}, "/modernizer")
    assert answer.status_code == 200
    assert msgpack.unpackb(answer.content) == {
        "event": {"data": {"kind": "created", "cents": 150}, "format_version": 2}
    }
    current = event(4, {"kind": "paid", "cents": 1}, 2)
    same = await post(http, {"ns": "orders", "id": "o", "event": current}, "/modernizer")
    assert msgpack.unpackb(same.content)["event"] == {"data": current["data"], "format_version": 2}
    newer = await post(http, {"ns": "orders", "id": "o", "event": event(5, {}, 3)}, "/modernizer")
    assert newer.status_code == 500
    assert "newer than this processor's 2" in newer.text
    # Unversioned events count as version 0, and Orders has no upcaster from 0.
    bare = await post(http, {"ns": "orders", "id": "o", "event": event(6, {}, None)}, "/modernizer")
    assert bare.status_code == 500
    assert "no upcaster from format version 0" in bare.text


async def test_a_handler_must_return_a_result() -> None:
    class Sloppy(Processor):
        def call(self, args: Any, machine: Any) -> Any:
            return {"response": 1}

    transport = httpx.ASGITransport(app=ProcessorApp(Sloppy()))
    async with httpx.AsyncClient(transport=transport, base_url="http://p") as http:
        answer = await post(http, request("call", 1))
        assert answer.status_code == 500
        assert "not a Result" in answer.text
        # The defaults: init does nothing, repair is refused, calls are not handled.
        assert (await post(http, signal("init"))).status_code == 200
        assert (await post(http, request("repair", None))).status_code == 422


async def test_init_raising_invalid_args_is_422_invalid_args_with_the_reason() -> None:
    class Strict(Processor):
        def init(self, args: Any, machine: Any) -> Result:
            if not isinstance(args, dict) or "cents" not in args:
                raise InvalidArgs({"missing": "cents"})
            return Result(events=[args])

        def call(self, args: Any, machine: Any) -> Result:
            raise InvalidArgs("only init may refuse its arguments")

    transport = httpx.ASGITransport(app=ProcessorApp(Strict()))
    async with httpx.AsyncClient(transport=transport, base_url="http://p") as http:
        refused = await post(http, signal("init", {"item": "book"}))
        assert refused.status_code == 422
        assert msgpack.unpackb(refused.content) == {
            "error": "invalid_args",
            "reason": {"missing": "cents"},
        }
        assert (await post(http, signal("init", {"cents": 5}))).status_code == 200
        elsewhere = await post(http, request("call", None))
        assert elsewhere.status_code == 500
        assert elsewhere.text.startswith("InvalidArgs outside init: ")


async def test_a_result_holding_a_datetime_names_where_it_is() -> None:
    class Careless(Processor):
        def init(self, args: Any, machine: Any) -> Result:
            return Result(events=[{"at": datetime(2026, 1, 2, tzinfo=UTC)}])

    transport = httpx.ASGITransport(app=ProcessorApp(Careless()))
    async with httpx.AsyncClient(transport=transport, base_url="http://p") as http:
        answer = await post(http, signal("init"))
    assert answer.status_code == 500
    assert "Careless.init returned events[0].data.at: a datetime.datetime" in answer.text
    assert "RFC 3339" in answer.text


def test_upcasters_chain_and_subclasses_may_replace_them() -> None:
    class Base(Processor):
        format_version = 3
        unversioned = 1

        @upcaster(from_version=1)
        def one(self, data: Any) -> Any:
            return [*data, "1->2"]

        @upcaster(from_version=2)
        def two(self, data: Any) -> Any:
            return [*data, "2->3"]

    class Child(Base):
        @upcaster(from_version=2)
        def other_two(self, data: Any) -> Any:
            return [*data, "2->3 (child)"]

    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert Base().upcast(Event(1, at, None, [])) == Event(1, at, 3, ["1->2", "2->3"])
    assert Child().upcast(Event(1, at, 2, [])) == Event(1, at, 3, ["2->3 (child)"])
    assert Child().upcast(Event(1, at, 3, ["x"])) == Event(1, at, 3, ["x"])
    with pytest.raises(UpcastError):
        Child().upcast(Event(1, at, 0, []))
    with pytest.raises(TypeError, match="two upcasters"):

        class Twice(Processor):
            @upcaster(from_version=1)
            def a(self, data: Any) -> Any:
                return data

            @upcaster(from_version=1)
            def b(self, data: Any) -> Any:
                return data


def test_set_timer_wants_one_of_timeout_and_deadline() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SetTimer()
    with pytest.raises(ValueError, match="exactly one"):
        SetTimer(timeout=1, deadline=datetime.now(UTC))
    with pytest.raises(ValueError, match="aware"):
        SetTimer(deadline=datetime(2030, 1, 1))
    at = datetime(2030, 1, 1, tzinfo=UTC)
    spec = SetTimer(deadline=at, range=Range(limit=3), handling_timeout=9)
    written = reply_value(Result(timer=spec), None)
    assert written["action"]["timer"]["set"] == {
        "deadline": "2030-01-01T00:00:00.000000Z",
        "range": {"after": None, "limit": 3, "direction": "forward"},
        "handling_timeout": 9,
    }
    parsed = parse_reply(json.loads(json.dumps(written)))
    assert parsed.timer == TimerSpec(None, at, Range(limit=3), 9.0)
    assert parsed.aux_state is None  # KEEP writes no aux_state
