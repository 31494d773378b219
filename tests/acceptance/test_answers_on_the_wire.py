"""The client API's answers on the wire, byte for byte (but the Date header) as they were when
Quart wrote them, now that ``mg.api.direct`` writes them; a client that goes away frees what
its request held; an early answer never waits for a body nobody reads."""

from __future__ import annotations

import re
from contextlib import suppress
from typing import Any

import trio

from mg.node import Node
from tests.support.cluster import api_for

M = "/v1/namespaces/test/machines"
JSON = "Content-Type: application/json\r\n"


def _request(head: str, body: bytes = b"", *, length: bool = True) -> bytes:
    method_and_path, _, rest = head.partition("\r\n")
    lines = f"{method_and_path} HTTP/1.1\r\nHost: mg\r\nX-Request-Id: fixed-id\r\n{rest}"
    if length and body:
        lines += f"Content-Length: {len(body)}\r\n"
    return (lines + "\r\n").encode() + body


def _answer(status: int, body: str, *extra: str, media: str = "application/json") -> bytes:
    data = body.encode("latin-1")
    return _raw(status, len(data), *extra, media=media) + data


def _raw(status: int, length: int, *extra: str, media: str = "application/json") -> bytes:
    head = [
        f"HTTP/1.1 {status} ",
        f"content-type: {media}",
        f"content-length: {length}",
        "x-request-id: fixed-id",
        *extra,
        "date: X",
        "server: hypercorn-h11",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


CHUNKED = "Transfer-Encoding: chunked\r\n"
TOO_LARGE = '{"error":"payload_too_large","message":"the body is larger than 1024 bytes"}'
NOBODY = '{"error":"machine_not_found","message":"machine \'nobody\' does not exist"}'

# (request, answer as Quart wrote it), in order: later ones see what earlier ones did.
EXCHANGES: list[tuple[bytes, bytes]] = [
    (
        _request(f"POST {M}/m1/start\r\n{JSON}", b'{"args": {"a": 1}}'),
        _answer(201, '{"ns":"test","id":"m1"}'),
    ),
    (
        _request(f"POST {M}/m1/start\r\n{JSON}", b'{"args": {"a": 1}}'),
        _answer(
            409, '{"error":"machine_already_exists","message":"machine \'m1\' already exists"}'
        ),
    ),
    (
        _request(f"POST {M}/m1/call\r\n{JSON}", b'{"args": 5, "range": {"limit": 0}}'),
        _answer(200, '{"response":5}'),
    ),
    (
        _request(f"GET {M}/m1?limit=0&after=1\r\n"),
        _answer(
            200,
            '{"ns":"test","id":"m1","status":"sleeping","failure":null,"history":[],'
            '"history_range":{"after":1,"limit":0,"direction":"forward"},'
            '"history_bounds":{"first":1,"last":2},"aux_state":null,"timer":null,"tags":[],'
            '"retry":null}',
        ),
    ),
    (
        _request(f"GET {M}/nobody?after=1&limit=1&limit=2&after=3\r\n"),
        _answer(
            400,
            '{"error":"invalid_request",'
            '"message":"query parameter \'after\' is given more than once"}',
        ),
    ),
    (
        _request(f"GET {M}/nobody?direction=%FF%zz+a;b\r\n"),
        _answer(
            400,
            '{"error":"invalid_request",'
            '"message":"direction must be \\"forward\\" or \\"backward\\""}',
        ),
    ),
    (
        _request(f"PUT {M}/m1\r\n"),
        _answer(
            405,
            '{"error":"method_not_allowed","message":"PUT is not allowed here"}',
            "allow: DELETE, GET",
        ),
    ),
    (_request(f"HEAD {M}/m1\r\n"), _raw(405, 67, "allow: DELETE, GET")),
    (
        _request(f"GET {M}/nobody\r\nAccept: application/msgpack\r\n"),
        _answer(
            404,
            "\x82\xa5error\xb1machine_not_found\xa7message\xbfmachine 'nobody' does not exist",
            media="application/msgpack",
        ),
    ),
    (
        _request(f"GET {M}/nobody\r\nAuthorization: a\r\nAuthorization: b\r\n"),
        _answer(
            400,
            '{"error":"invalid_request",'
            '"message":"the Authorization header is given more than once"}',
        ),
    ),
    (
        _request(f"POST {M}/m3/start\r\n{JSON}", b"x" * 2000),
        _answer(413, TOO_LARGE, "connection: close"),
    ),
    (
        _request(
            f"POST {M}/m4/start\r\n{JSON}{CHUNKED}",
            b'5\r\n{"arg\r\n8\r\ns": 7}  \r\n0\r\n\r\n',
            length=False,
        ),
        _answer(201, '{"ns":"test","id":"m4"}'),
    ),
    (
        _request(
            f"POST {M}/m5/start\r\n{JSON}{CHUNKED}",
            b"7d0\r\n" + b"x" * 2000 + b"\r\n0\r\n\r\n",
            length=False,
        ),
        _answer(413, TOO_LARGE, "connection: close"),
    ),
    (
        _request(f"POST {M}/m2/start\r\nContent-Type: text/plain\r\n", b"hello"),
        _answer(
            415,
            '{"error":"unsupported_media_type","message":"unsupported content type \'text/plain\'; '
            'use application/json or application/msgpack"}',
        ),
    ),
    (_request(f"DELETE {M}/m1\r\n"), _answer(204, "")),
    (
        _request(f"GET {M}/nobody\r\n").replace(b"HTTP/1.1", b"HTTP/1.0"),
        _answer(404, NOBODY).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"),
    ),
    (
        _request(
            f"POST {M}/m8/start\r\n{JSON}Content-Length: 4\r\n{CHUNKED}", b"0\r\n\r\n", length=False
        ),
        _answer(
            400,
            '{"error":"invalid_request","message":"Content-Length and Transfer-Encoding must not '
            'come together"}',
            "connection: close",
        ),
    ),
    # Quart's own (the catch-all rule), for comparison.
    (_request("GET /nope\r\n"), _answer(404, '{"error":"not_found","message":"no such path"}')),
]

_DATE = re.compile(rb"\r\ndate: [^\r]*")


async def _exchange(node: Node, request: bytes) -> bytes:
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    received = b""
    try:
        await stream.send_all(request)
        while b"\r\n\r\n" not in received:
            received += await stream.receive_some(65536)
        head = received.split(b"\r\n\r\n", 1)[0].lower()
        length = int(re.search(rb"content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
        if not request.startswith(b"HEAD "):
            while len(received) < len(head) + 4 + length:
                received += await stream.receive_some(65536)
    finally:
        await stream.aclose()
    return _DATE.sub(b"\r\ndate: X", received)


async def test_answers_are_byte_for_byte_those_quart_gave(nodes: Any) -> None:
    node: Node = await nodes(server={"max_body_bytes": 1024})
    for request, expected in EXCHANGES:
        with trio.fail_after(5):
            assert await _exchange(node, request) == expected, request


async def test_an_answer_without_a_request_id_gets_a_new_one(nodes: Any) -> None:
    node: Node = await nodes()
    for sent in (b"", b"X-Request-Id: not valid\r\n"):
        request = f"GET {M}/nobody HTTP/1.1\r\nHost: mg\r\n".encode() + sent + b"\r\n"
        with trio.fail_after(5):
            received = await _exchange(node, request)
        found = re.sub(rb"x-request-id: [0-9a-f]{32}\r\n", b"x-request-id: fixed-id\r\n", received)
        assert found == _answer(404, NOBODY)


async def test_a_long_poll_whose_client_went_away_frees_its_slot(nodes: Any) -> None:
    node: Node = await nodes(
        limits={"max_long_polls": 1}, sinks=["main"], sinks_config={"main": {}}
    )
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    poll = _request("GET /v1/sinks/main/events?after=0&wait=60\r\n")
    async with api_for(node) as api:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream(host, int(port))
            await stream.send_all(poll)
            await trio.sleep(0.5)  # it waits in the node, holding the one long-poll slot
            refused = await api.http.get("/v1/sinks/main/events?after=0&wait=1")
            assert refused.status_code == 429
            await stream.aclose()  # the client goes away
            await trio.sleep(0.5)
            answered = await api.http.get("/v1/sinks/main/events?after=0&wait=0.2")
            assert answered.status_code == 200, answered.text


async def test_an_early_answer_to_a_streamed_body_closes_and_the_node_serves_on(
    nodes: Any,
) -> None:
    """A 404 comes before a body of two thousand chunks that nobody reads (quart-trio drained
    them, the direct path does not): the answer says ``Connection: close``, the connection
    closes, and the node serves on. (The server's side of it, an unread queue that must never
    block, is tested in process: tests/unit/test_request_queue.py.)"""
    node: Node = await nodes()
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    chunk = b"x" * 1000
    for _ in range(3):
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream(host, int(port))
            try:
                await stream.send_all(_request(f"POST {M}/m/nope\r\n{JSON}{CHUNKED}"))
                with suppress(trio.BrokenResourceError):
                    await stream.send_all((b"3e8\r\n" + chunk + b"\r\n") * 2000)
                received = b""
                while True:
                    try:
                        data = await stream.receive_some(65536)
                    except trio.BrokenResourceError:
                        break
                    if not data:
                        break
                    received += data
            finally:
                await stream.aclose()
            assert received.startswith(b"HTTP/1.1 404 "), received[:200]
            assert b"\r\nconnection: close\r\n" in received.lower()
        async with api_for(node) as api:
            assert (await api.get("still-serving")).status_code == 404
