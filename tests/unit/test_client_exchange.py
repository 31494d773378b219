"""The client's requests and answer reading, without a network."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import msgpack
import pytest

from mg.client import (
    ConnectionLost,
    DeadlineExceeded,
    Direction,
    Event,
    InternalError,
    MachineFailed,
    Overloaded,
    Range,
    SinkEvent,
    Tag,
    Unavailable,
    UnexpectedAnswer,
)
from mg.client.answers import Answer
from mg.client.errors import ERROR_CLASSES, error_from_transport
from mg.client.exchange import Exchanges, Options
from mg.errors import MgError

AT = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def packed(status: int, body: object, **headers: str) -> Answer:
    return Answer(status, {"content-type": "application/msgpack", **headers}, msgpack.packb(body))


def test_paths_encode_ids_and_tags_as_one_segment() -> None:
    exchanges = Exchanges()
    call = exchanges.call("ns one", "a/b?c", None, None, Options()).request
    assert call.path == "/v1/namespaces/ns%20one/machines/a%2Fb%3Fc/call"
    by_tag = exchanges.get("ns", Tag("t/1"), None, Options()).request
    assert by_tag.path == "/v1/namespaces/ns/tags/t%2F1"
    assert exchanges.remove("ns", "m", Options()).request.method == "DELETE"


def test_bodies_are_msgpack_by_default_and_json_on_request() -> None:
    selection = Range(after=3, limit=2, direction=Direction.BACKWARD)
    request = Exchanges().call("ns", "m", b"\x00", selection, Options()).request
    assert request.headers["content-type"] == "application/msgpack"
    assert request.headers["accept"] == "application/msgpack"
    assert request.content is not None
    assert msgpack.unpackb(request.content) == {
        "args": b"\x00",
        "range": {"after": 3, "limit": 2, "direction": "backward"},
    }
    as_json = Exchanges(encoding="json").modernize("ns", "m", None, Options()).request
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.content is not None
    assert json.loads(as_json.content) == {}


def test_get_sends_the_range_as_query() -> None:
    request = Exchanges().get("ns", "m", Range(after=5, limit=0), Options()).request
    assert request.params == {"after": "5", "limit": "0", "direction": "forward"}
    assert Exchanges().get("ns", "m", None, Options()).request.params == {}


def test_a_timeout_is_sent_in_milliseconds_and_bounds_the_wait() -> None:
    request = Exchanges(grace=2).call("ns", "m", None, None, Options(timeout=1.5)).request
    assert request.headers["x-request-timeout"] == "1500"
    assert request.timeout == 3.5
    default = Exchanges(default_timeout=10).get("ns", "m", None, Options()).request
    assert default.headers["x-request-timeout"] == "10000"
    unbounded = Exchanges(http_timeout=99).get("ns", "m", None, Options()).request
    assert "x-request-timeout" not in unbounded.headers
    assert unbounded.timeout == 99


def test_a_deadline_is_sent_in_rfc3339() -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    request = Exchanges(grace=1).start("ns", "m", None, Options(deadline=deadline)).request
    assert request.headers["x-request-deadline"].endswith("Z")
    assert 29 < request.timeout <= 31
    with pytest.raises(ValueError, match="aware"):
        Options(deadline=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="not both"):
        Options(deadline=deadline, timeout=1)


def test_traceparent_is_passed_on() -> None:
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    request = Exchanges().notify("ns", "m", 1, None, Options(traceparent=trace)).request
    assert request.headers["traceparent"] == trace


def test_a_token_is_sent_as_a_bearer_header_on_every_request() -> None:
    exchanges = Exchanges(token="s3cret")
    for exchange in (
        exchanges.get("ns", "m", None, Options()),
        exchanges.health("ready", Options()),
        exchanges.metrics(Options()),
    ):
        assert exchange.request.headers["authorization"] == "Bearer s3cret"
    assert "authorization" not in Exchanges().get("ns", "m", None, Options()).request.headers


def test_a_long_poll_waits_longer_than_its_wait() -> None:
    exchange = Exchanges(grace=1).read_sink("main", Range(after=9), 20, Options(timeout=1))
    assert exchange.request.params == {"after": "9", "direction": "forward", "wait": "20"}
    assert exchange.request.timeout == 22
    assert exchange.request.path == "/v1/sinks/main/events"
    event = {"id": 2, "created_at": "2026-03-04T05:06:07.890123Z", "format_version": None}
    body = {"events": [{"id": 10, "ns": "a", "machine_id": "m", "hash": "ab" * 32,
                        "event": {**event, "data": b"\x01"}}]}  # fmt: skip
    assert exchange.read(packed(200, body)) == (
        SinkEvent(10, "a", "m", Event(2, AT, None, b"\x01"), "ab" * 32),
    )


def test_every_contract_code_maps_to_one_class() -> None:
    codes = {
        "invalid_request", "namespace_not_found", "machine_not_found", "sink_not_found",
        "machine_already_exists", "machine_already_working", "machine_failed",
        "payload_too_large", "unsupported_media_type", "repair_failed", "overloaded",
        "unavailable", "deadline_exceeded",
    }  # fmt: skip
    assert codes <= set(ERROR_CLASSES)
    for code, cls in ERROR_CLASSES.items():
        assert cls.code == code
        assert issubclass(cls, MgError)


def test_error_bodies_become_their_exceptions_with_details() -> None:
    read = Exchanges().call("ns", "m", None, None, Options()).read
    with pytest.raises(MachineFailed) as failed:
        read(packed(409, {"error": "machine_failed", "message": "it broke", "reason": "x"}))
    assert failed.value.reason == "x"
    assert failed.value.message == "it broke"
    with pytest.raises(Overloaded) as overloaded:
        read(packed(429, {"error": "overloaded", "message": "queue"}, **{"retry-after": "7"}))
    assert overloaded.value.retry_after == 7
    with pytest.raises(InternalError):
        read(packed(500, {"error": "internal_error", "message": "see the log"}))


def test_answers_that_are_not_mg_s() -> None:
    read = Exchanges().get("ns", "m", None, Options()).read
    html = {"content-type": "text/html"}
    with pytest.raises(Unavailable):
        read(Answer(502, html, b"<h1>Bad gateway</h1>"))
    with pytest.raises(DeadlineExceeded):
        read(Answer(504, html, b""))
    with pytest.raises(UnexpectedAnswer) as unknown:
        read(packed(418, {"error": "teapot", "message": "short and stout"}))
    assert unknown.value.details == {"status": 418, "error": "teapot"}
    with pytest.raises(UnexpectedAnswer):
        read(packed(200, {"ns": "ns", "id": "m", "status": "dancing", "history": []}))
    with pytest.raises(UnexpectedAnswer):
        read(Answer(200, html, b"<p>hello</p>"))


def test_health_is_a_boolean() -> None:
    ready = Exchanges().health("ready", Options())
    assert ready.request.path == "/health/ready"
    assert ready.read(Answer(200, {}, b"")) is True
    assert ready.read(Answer(503, {}, b"")) is False
    with pytest.raises(UnexpectedAnswer):
        ready.read(Answer(418, {}, b""))


def test_transport_failures() -> None:
    request = httpx.Request("GET", "http://mg")
    assert type(error_from_transport(httpx.ConnectError("no", request=request))) is Unavailable
    assert type(error_from_transport(httpx.ReadTimeout("slow", request=request))) is (
        DeadlineExceeded
    )
    lost = error_from_transport(httpx.RemoteProtocolError("gone", request=request))
    assert isinstance(lost, ConnectionLost)
    assert isinstance(lost, DeadlineExceeded)
