"""What the API accepts and refuses: ids, bodies, media types, headers."""

from __future__ import annotations

import json

import msgpack
import pytest

from mg.node import Node
from tests.support.api import Api, body, path_id
from tests.support.processor import FakeProcessor


async def test_an_id_of_1024_bytes_is_accepted_and_1025_refused(api: Api) -> None:
    accepted = "é" * 512  # 1024 bytes of UTF-8
    assert (await api.start(accepted)).status_code == 201
    assert body(await api.get(accepted))["id"] == accepted
    refused = await api.start("x" * 1025)
    assert refused.status_code == 400
    assert body(refused)["error"] == "invalid_request"
    assert "1025" in body(refused)["message"]


async def test_ids_with_any_character_round_trip(api: Api) -> None:
    for machine_id in ("a/b", "with space", "?&=#", "%41", "日本"):
        assert (await api.start(machine_id)).status_code == 201, machine_id
        assert body(await api.get(machine_id))["id"] == machine_id


async def test_malformed_json_is_invalid_request(api: Api) -> None:
    answer = await api.http.post(
        api.machine_path("m1") + "/start",
        content=b'{"args": ',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 400
    assert body(answer)["error"] == "invalid_request"


@pytest.mark.parametrize(
    "payload",
    [
        [1, 2],
        {"args": 1, "range": {"limit": "two"}},
        {"args": 1, "range": {"limit": -1}},
        {"args": 1, "range": {"direction": "sideways"}},
        {"args": 1, "range": 5},
        {"args": 1, "rnage": {}},
    ],
)
async def test_wrong_types_are_invalid_request(api: Api, payload: object) -> None:
    await api.start("m1")
    answer = await api.http.post(api.machine_path("m1") + "/call", json=payload)
    assert answer.status_code == 400, answer.text
    assert body(answer)["error"] == "invalid_request"


async def test_a_bad_query_is_invalid_request(api: Api) -> None:
    await api.start("m1")
    for query in ({"limit": "x"}, {"limit": "-1"}, {"direction": "up"}, {"after": "1.5"}):
        answer = await api.get("m1", **query)
        assert answer.status_code == 400, query
        assert body(answer)["error"] == "invalid_request"


async def test_unknown_namespace(api: Api) -> None:
    api_other = Api(str(api.http.base_url), ns="nope")
    try:
        for answer in (
            await api_other.start("m1"),
            await api_other.get("m1"),
            await api_other.search(),
        ):
            assert answer.status_code == 404
            assert body(answer)["error"] == "namespace_not_found"
    finally:
        await api_other.aclose()


async def test_other_media_types_are_415(api: Api) -> None:
    answer = await api.http.post(
        api.machine_path("m1") + "/start",
        content=b"<args/>",
        headers={"content-type": "application/xml"},
    )
    assert answer.status_code == 415
    assert body(answer)["error"] == "unsupported_media_type"


async def test_msgpack_round_trip_with_binary_data(api: Api, processor: FakeProcessor) -> None:
    client = Api(str(api.http.base_url), msgpack_bodies=True)
    try:
        value = {"bin": b"\x00\x01\xff", "nested": [b"", {"k": b"v"}], "n": -5, "f": 1.25}
        started = await client.start("m1", value)
        assert started.headers["content-type"].startswith("application/msgpack")
        answer = await client.call("m1", value)
        assert msgpack.unpackb(answer.content, raw=False) == {"response": value}
        got = await client.http.get(
            api.machine_path("m1"), headers={"accept": "application/msgpack"}
        )
        machine = msgpack.unpackb(got.content, raw=False)
        assert machine["history"][0]["data"] == value
        # The processor received real binary, not base64 text.
        assert processor.seen[-1].body["args"] == value
        # JSON readers see the same value with binary as $base64.
        as_json = (await api.get("m1")).json()
        assert as_json["history"][0]["data"]["bin"] == {"$base64": "AAH/"}
    finally:
        await client.aclose()


async def test_json_base64_means_binary(api: Api, processor: FakeProcessor) -> None:
    await api.http.post(api.machine_path("m1") + "/start", json={"args": {"$base64": "AAH/"}})
    assert processor.seen[-1].body["signal"]["args"] == b"\x00\x01\xff"


async def test_accept_chooses_the_answer_type(api: Api) -> None:
    answer = await api.http.post(
        api.machine_path("m1") + "/start",
        content=json.dumps({"args": 1}),
        headers={"content-type": "application/json", "accept": "application/msgpack"},
    )
    assert answer.headers["content-type"].startswith("application/msgpack")
    assert msgpack.unpackb(answer.content) == {"ns": "test", "id": "m1"}
    error = await api.http.get(api.machine_path("nope"), headers={"accept": "application/msgpack"})
    assert msgpack.unpackb(error.content)["error"] == "machine_not_found"


async def test_every_response_has_a_request_id(api: Api) -> None:
    mine = await api.http.get(api.machine_path("m1"), headers={"x-request-id": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    generated = await api.start("m1")
    assert len(generated.headers["x-request-id"]) >= 16
    unknown = await api.http.get("/no/such/route")
    assert unknown.status_code == 404
    assert unknown.headers["x-request-id"]


async def test_traceparent_is_continued_into_the_processor_call(
    api: Api, processor: FakeProcessor
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    await api.start("m1", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    sent = processor.seen[-1].headers["traceparent"]
    version, sent_trace, span, flags = sent.split("-")
    assert (version, sent_trace, flags) == ("00", trace_id, "01")
    assert span != "00f067aa0ba902b7"  # mg's own span, child of the caller's
    assert processor.seen[-1].headers["x-mg-namespace"] == "test"
    assert processor.seen[-1].headers["x-mg-machine-id"] == "m1"


async def test_deadline_headers(api: Api, processor: FakeProcessor) -> None:
    await api.start("m1", headers={"x-request-deadline": "2099-01-01T03:00:00+03:00"})
    assert processor.seen[-1].headers["x-request-deadline"].startswith("2099-01-01T00:00:00")
    bad = await api.start("m2", headers={"x-request-deadline": "soon"})
    assert bad.status_code == 400
    past = await api.start("m3", headers={"x-request-deadline": "2001-01-01T00:00:00Z"})
    assert past.status_code == 504
    assert body(past)["error"] == "deadline_exceeded"
    assert (await api.get("m3")).status_code == 404
    bad_timeout = await api.start("m4", headers={"x-request-timeout": "1.5"})
    assert bad_timeout.status_code == 400


async def test_a_body_over_the_limit_is_413(nodes: object) -> None:
    node: Node = await nodes(database={"pool_size": 4})  # type: ignore[operator]
    client = Api(node.url)
    try:
        answer = await client.start("m1", "x" * (5 * 1024 * 1024))
        assert answer.status_code == 413
        assert body(answer)["error"] == "payload_too_large"
        assert (await client.get("m1")).status_code == 404
    finally:
        await client.aclose()


async def test_unknown_routes_and_methods(api: Api) -> None:
    assert (await api.http.get("/v2/whatever")).status_code == 404
    wrong = await api.http.put(api.machine_path("m1") + "/call", json={})
    assert wrong.status_code == 405
    assert path_id("a/b") == "a%2Fb"


async def test_strict_queries_and_headers(api: Api) -> None:
    await api.start("m1")
    for query in (
        {"limit": ""},
        {"after": ""},
        {"direction": ""},
        {"limit": "+5"},
        {"limit": "5_0"},
        {"after": "\u0665"},  # ARABIC-INDIC DIGIT FIVE: int() would take it
        {"after": str(2**63)},
        {"limit": "99999999999999999999"},
        {"lmit": "5"},
    ):
        answer = await api.get("m1", **query)
        assert answer.status_code == 400, query
        assert body(answer)["error"] == "invalid_request"
    for query in ({"cursor": ""}, {"status": ""}, {"limit": "0"}, {"page": "2"}):
        assert (await api.search(**query)).status_code == 400, query
    assert (await api.get("m1", after=str(-(2**63)), limit=str(2**63 - 1))).status_code == 200
    for headers in ({"x-request-timeout": ""}, {"x-request-deadline": ""}):
        assert (await api.call("m1", headers=headers)).status_code == 400, headers
    posted = await api.http.post(api.machine_path("m1") + "/call?x=1", json={})
    assert posted.status_code == 400
    for selection in (
        {"after": 2**64},
        {"limit": 2**63},
        {"after": 1, "limt": 2},
        {"direction": None},
    ):
        answer = await api.call("m1", range=selection)
        assert answer.status_code == 400, selection
        assert body(answer)["error"] == "invalid_request"


async def test_both_deadline_headers_are_checked_and_the_earlier_wins(
    api: Api, processor: FakeProcessor
) -> None:
    bad = await api.start(
        "m1", headers={"x-request-deadline": "2099-01-01T00:00:00Z", "x-request-timeout": "soon"}
    )
    assert bad.status_code == 400
    assert (await api.get("m1")).status_code == 404
    await api.start(
        "m2", headers={"x-request-deadline": "2099-01-01T00:00:00Z", "x-request-timeout": "5000"}
    )
    sent = processor.seen[-1].headers["x-request-deadline"]
    assert not sent.startswith("2099")
    superscript_two = "²".encode("latin-1")  # isdigit() says yes; int() says no
    assert (
        await api.start("m3", headers={"x-request-timeout": superscript_two})
    ).status_code == 400
