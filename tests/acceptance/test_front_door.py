"""The HTTP front door against hostile clients: connections that must not hang or pile up,
framing that must not be ambiguous, bodies that must not explode, and every method, path and
header a client may send."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import httpx
import msgpack
import pytest
import trio

from mg.api.bodies import MAX_VALUES
from mg.node import Node, running_node
from mg.settings import from_mapping
from tests.support.api import Api, body
from tests.support.cluster import api_for
from tests.support.logs import captured_logs
from tests.support.processor import Answer, FakeProcessor, Seen, echo

TOKEN = "front-door-token-3c1f9e07aa"


def _address(node: Node) -> tuple[str, int]:
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


class RawConnection:
    """One TCP connection that speaks HTTP/1.1 by hand and reads answers as they come."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.closed = False

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> bool:
        chunk = await self.stream.receive_some(65536)
        if not chunk:
            self.closed = True
            return False
        self.buffer += chunk
        return True

    async def response(self) -> tuple[int, dict[str, str], bytes] | None:
        """The next answer (status, headers, body), or None when the server closed."""
        while b"\r\n\r\n" not in self.buffer:
            if not await self._fill():
                return None
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            if not await self._fill():
                break
        data, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, data

    async def at_end(self) -> bool:
        """Whether the server closed the connection (nothing more comes)."""
        while not self.closed:
            try:
                if not await self._fill():
                    return True
            except trio.BrokenResourceError:
                return True
        return True


@asynccontextmanager
async def raw(node: Node) -> AsyncIterator[RawConnection]:
    host, port = _address(node)
    stream = await trio.open_tcp_stream(host, port)
    try:
        yield RawConnection(stream)
    finally:
        await stream.aclose()


def request(
    method: str, path: str, headers: dict[str, str] | None = None, body_length: int = 0
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: mg"]
    if body_length:
        lines += ["Content-Type: application/json", f"Content-Length: {body_length}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


LIVE = request("GET", "/health/live")


async def _early_answer_then_follow_up(
    node: Node, head: bytes, body_bytes: bytes, expected: int
) -> None:
    """The answer comes before the body; the body and a next request follow on the same
    connection. Either the next request is answered, or the first answer said
    ``Connection: close`` and the server closed: the client never waits in vain."""
    for _ in range(3):  # the hang was a race; a few rounds make sure of it
        await _one_early_answer(node, head, body_bytes, expected)


async def _one_early_answer(node: Node, head: bytes, body_bytes: bytes, expected: int) -> None:
    with trio.fail_after(5):
        async with raw(node) as connection:
            await connection.send(head)
            await trio.sleep(0.05)
            with suppress(trio.BrokenResourceError):
                await connection.send(body_bytes + LIVE)
            first = await connection.response()
            assert first is not None
            assert first[0] == expected, first
            if first[1].get("connection") == "close":
                assert await connection.at_end()
            else:
                second = await connection.response()
                assert second is not None
                assert second[0] == 200, second


async def test_early_answers_never_hang_a_keep_alive_connection(
    nodes: Any, processor: FakeProcessor
) -> None:
    node: Node = await nodes(limits={"max_requests_in_flight": 1}, server={"max_body_bytes": 1024})
    payload = b'{"args": {}}'
    n = len(payload)
    await _early_answer_then_follow_up(
        node, request("POST", "/v1/namespaces/test/machines/m/nope", body_length=n), payload, 404
    )
    await _early_answer_then_follow_up(
        node, request("PUT", "/v1/namespaces/test/machines/m", body_length=n), payload, 405
    )
    await _early_answer_then_follow_up(
        node, request("POST", "/v1/namespaces/test/machines/m/start", body_length=2000), b"", 413
    )

    async def slow(seen: Seen) -> Answer:
        await trio.sleep(4)
        return await echo(seen)

    processor.behaviour = slow
    async with api_for(node) as api, trio.open_nursery() as nursery:
        # A slow start holds the one request slot: the next request is 429 before its body.
        nursery.start_soon(api.start, "slow")
        await trio.sleep(0.5)
        start = request("POST", "/v1/namespaces/test/machines/m/start", body_length=n)
        await _early_answer_then_follow_up(node, start, payload, 429)
        nursery.cancel_scope.cancel()


async def test_early_401_never_hangs_a_keep_alive_connection(
    database_url: str, processor: FakeProcessor
) -> None:
    settings = from_mapping(
        {
            "namespaces": {"test": {"processor": {"url": processor.url}}},
            "auth": {"enabled": True, "tokens": {"t": {"token": TOKEN, "namespaces": ["test"]}}},
        },
        environ={},
    )
    payload = b'{"args": {}}'
    async with running_node(settings, database_url, port=0) as node:
        head = request("POST", "/v1/namespaces/test/machines/m/start", body_length=len(payload))
        await _early_answer_then_follow_up(node, head, payload, 401)


async def test_idle_keep_alive_connections_are_closed(nodes: Any) -> None:
    node: Node = await nodes(server={"keep_alive_timeout": "1s"})
    for path in ("/health/live", "/v1/namespaces/test/machines/nobody"):
        with trio.fail_after(5):
            async with raw(node) as connection:
                await connection.send(request("GET", path))
                assert await connection.response() is not None
                assert await connection.at_end()


async def test_the_keep_alive_timeout_counts_idle_time_only(nodes: Any) -> None:
    # One timer per connection, moved by each request (mg.http_server._IdleTimer): a request
    # longer than the timeout is not cut, requests closer together than it keep the connection,
    # and once idle it is closed.
    node: Node = await nodes(
        server={"keep_alive_timeout": "1s"}, sinks=["main"], sinks_config={"main": {}}
    )
    with trio.fail_after(15):
        async with raw(node) as connection:
            began = trio.current_time()
            await connection.send(request("GET", "/v1/sinks/main/events?after=0&wait=2"))
            answer = await connection.response()
            assert answer is not None
            assert answer[0] == 200
            assert trio.current_time() - began >= 1.9  # the long poll waited out its 2 s
            for _ in range(5):  # 2 s of requests 0.4 s apart: never idle for 1 s
                await trio.sleep(0.4)
                await connection.send(LIVE)
                answer = await connection.response()
                assert answer is not None
                assert answer[0] == 200
            idle_from = trio.current_time()
            assert await connection.at_end()
            assert 0.9 <= trio.current_time() - idle_from < 3


async def test_the_connection_cap_keeps_health_live_answering(nodes: Any) -> None:
    node: Node = await nodes(server={"max_connections": 20})
    host, port = _address(node)
    idle: list[RawConnection] = []
    try:
        with trio.fail_after(20):
            for _ in range(40):
                connection = RawConnection(await trio.open_tcp_stream(host, port))
                idle.append(connection)
                await connection.send(LIVE)
                answer = await connection.response()
                assert answer is not None
                assert answer[0] == 200
            async with httpx.AsyncClient(base_url=node.url, trust_env=False) as http:
                assert (await http.get("/health/live")).status_code == 200
            # The oldest idle connections made room; the newest are still served.
            assert await idle[0].at_end()
            await idle[-1].send(LIVE)
            answer = await idle[-1].response()
            assert answer is not None
            assert answer[0] == 200
    finally:
        for connection in idle:
            await connection.stream.aclose()


async def test_a_body_of_millions_of_empty_maps_is_refused(api: Api) -> None:
    count = 4 * 2**20 - 16
    bomb = b"\x81\xa4args\xdd" + count.to_bytes(4, "big") + b"\x80" * count
    nested = msgpack.packb({"args": [[{}] * 1000] * (MAX_VALUES // 1000 + 1)})
    json_bomb = b'{"args": [' + b",".join([b"{}"] * (MAX_VALUES + 1)) + b"]}"
    for data, media in ((bomb, "msgpack"), (nested, "msgpack"), (json_bomb, "json")):
        with trio.fail_after(10):
            answer = await api.http.post(
                api.machine_path("bomb") + "/start",
                content=data,
                headers={"content-type": f"application/{media}"},
            )
        assert answer.status_code == 400, answer.text
        assert body(answer)["message"] == f"the body holds more than {MAX_VALUES} values"
    # Many values inside strings are just a string.
    text = "," * (MAX_VALUES + 10)
    assert (await api.start("commas", {"csv": text})).status_code == 201


async def test_content_length_with_transfer_encoding_is_refused(api: Api, node: Node) -> None:
    smuggled = (
        b"POST /v1/namespaces/test/machines/smug/start HTTP/1.1\r\nHost: mg\r\n"
        b"Content-Type: application/json\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    with trio.fail_after(5):
        async with raw(node) as connection:
            await connection.send(smuggled)
            answer = await connection.response()
            assert answer is not None
            status, headers, data = answer
            assert status == 400
            assert headers["connection"] == "close"
            assert json.loads(data)["error"] == "invalid_request"
            assert await connection.at_end()
    assert (await api.get("smug")).status_code == 404


async def test_http2_cleartext_is_not_offered(node: Node) -> None:
    with trio.fail_after(5):
        async with raw(node) as connection:
            await connection.send(
                request("GET", "/health/live", {"Connection": "Upgrade, HTTP2-Settings"})[:-2]
                + b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
            )
            answer = await connection.response()
            assert answer is not None
            assert answer[0] == 200
        async with raw(node) as connection:
            await connection.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            first = await connection.stream.receive_some(9)
            assert first.startswith(b"HTTP/1.1 ")


async def test_ids_with_a_line_feed_round_trip(api: Api) -> None:
    for machine_id in ("a\nb", "ab\n", "\r\n\t\x0b", "\n"):
        assert (await api.start(machine_id)).status_code == 201, repr(machine_id)
        found = await api.get(machine_id)
        assert found.status_code == 200, found.text
        assert body(found)["id"] == machine_id
    by_tag = await api.http.get("/v1/namespaces/test/tags/a%0Ab")
    assert by_tag.status_code == 404
    assert body(by_tag)["error"] == "machine_not_found"
    elsewhere = await api.http.get("/no%0Asuch/path")
    assert elsewhere.status_code == 404
    assert body(elsewhere)["error"] == "not_found"


async def test_a_cursor_of_nul_bytes_is_refused(api: Api) -> None:
    for cursor in ("AAAA", base64.urlsafe_b64encode(b"a\x00b").decode()):
        answer = await api.search(cursor=cursor)
        assert answer.status_code == 400, answer.text
        assert body(answer)["message"] == "cursor is not one this service issued"


async def test_two_authorization_headers_are_refused(api: Api) -> None:
    answer = await api.http.get(
        api.machine_path("m1"),
        headers=[("authorization", "Bearer one"), ("authorization", "Bearer two")],
    )
    assert answer.status_code == 400
    assert "Authorization" in body(answer)["message"]


@pytest.mark.parametrize("method", ["TRACE", "FOO", "PATCH", "CONNECTX"])
async def test_methods_a_path_does_not_take_are_405_with_allow(api: Api, method: str) -> None:
    answer = await api.http.request(method, api.machine_path("m1"))
    assert answer.status_code == 405, answer.text
    assert body(answer)["error"] == "method_not_allowed"
    assert answer.headers["allow"] == "DELETE, GET"
    health = await api.http.request(method, "/health/live")
    assert health.status_code == 405
    assert health.headers["allow"] == "GET, HEAD"


async def test_expect_continue_with_a_body_over_the_limit_is_413_uninvited(node: Node) -> None:
    head = request(
        "POST",
        "/v1/namespaces/test/machines/big/start",
        {"Expect": "100-continue"},
        body_length=99_999_999,
    )
    with captured_logs(logging.WARNING) as lines:
        for _ in range(5):
            with trio.fail_after(5):
                async with raw(node) as connection:
                    await connection.send(head)
                    answer = await connection.response()
                    assert answer is not None
                    assert answer[0] == 413
                    assert answer[1]["connection"] == "close"
                    assert await connection.at_end()
    assert not [line for line in lines() if "ASGI" in str(line.get("message"))]


async def test_400_messages_speak_the_contract_not_python(api: Api) -> None:
    for data in (b'{"args": ' + b"9" * 5000 + b"}", b"[" * 100_000 + b"]" * 100_000):
        answer = await api.http.post(
            api.machine_path("m1") + "/start",
            content=data,
            headers={"content-type": "application/json"},
        )
        assert answer.status_code == 400
        message = body(answer)["message"]
        assert "sys." not in message, message
        assert "recursion" not in message, message
