"""How answers leave the node's HTTP server (mg/http_server.py): a whole answer in one write,
streamed answers chunk by chunk as they come, ``100 Continue`` before the body is sent.

Writes are counted where they reach the socket: ``trio.SocketStream.send_all`` of the server's
side of each connection (its local port is the server's)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
from hypercorn.config import Config

from mg.connections import Connections
from mg.http_server import serve
from mg.node import Node
from tests.acceptance.test_front_door import LIVE, RawConnection, request

Writes = list[bytes]


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], Writes]:
    """``writes(port)``: what the server listening on ``port`` wrote, one item per write."""
    seen: dict[int, Writes] = {}
    original = trio.SocketStream.send_all

    async def counted(self: trio.SocketStream, data: Any) -> None:
        seen.setdefault(self.socket.getsockname()[1], []).append(bytes(data))
        await original(self, data)

    monkeypatch.setattr(trio.SocketStream, "send_all", counted)
    return lambda port: seen.setdefault(port, [])


class StreamingApp:
    """A tiny ASGI app: ``/fixed`` answers whole; ``/stream`` answers in chunks, each after
    the test says ``go``; ``/abandoned`` starts an answer and gives up."""

    def __init__(self) -> None:
        self.go = trio.Semaphore(0)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].removeprefix("lifespan.")
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        while (await receive()).get("more_body"):
            pass
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for chunk in (b"first", b"second"):
                await self.go.acquire()
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        headers = [(b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if scope["path"] == "/fixed":
            await send({"type": "http.response.body", "body": b"fixed", "more_body": False})


@asynccontextmanager
async def served(app: StreamingApp) -> AsyncIterator[int]:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.5
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(
                serve,
                app,
                config,
                Connections(cap=64),
                http2=False,
                max_body_bytes=1024,
                shutdown_trigger=stop.wait,
            )
        )
        try:
            yield int(binds[0].rsplit(":", 1)[1])
        finally:
            stop.set()


@asynccontextmanager
async def connected(port: int) -> AsyncIterator[RawConnection]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        yield RawConnection(stream)
    finally:
        await stream.aclose()


async def test_a_node_writes_each_answer_once(node: Node, writes: Callable[[int], Writes]) -> None:
    port = int(node.url.rsplit(":", 1)[1])
    start = request("POST", "/v1/namespaces/test/machines/once/start", body_length=2) + b"{}"
    with trio.fail_after(10):
        async with connected(port) as connection:
            for sent, status in ((LIVE, 200), (start, 201), (LIVE, 200)):
                writes(port).clear()
                await connection.send(sent)
                answer = await connection.response()
                assert answer is not None
                assert answer[0] == status, answer
                assert len(writes(port)) == 1, writes(port)
                assert writes(port)[0].endswith(answer[2])


async def test_whole_answers_and_error_answers_are_one_write_each(
    writes: Callable[[int], Writes],
) -> None:
    async with served(StreamingApp()) as port:
        with trio.fail_after(10):
            async with connected(port) as connection:
                for method in ("GET", "HEAD"):
                    writes(port).clear()
                    await connection.send(request(method, "/fixed"))
                    answer = await connection.response()
                    assert answer is not None
                    assert answer[0] == 200
                    body = b"fixed" if method == "GET" else b""
                    assert writes(port) == [writes(port)[0]]
                    assert writes(port)[0].endswith(b"\r\n\r\n" + body)
                    if method == "HEAD":
                        connection.buffer = b""  # the head says 5 bytes that do not follow
            async with connected(port) as connection:
                writes(port).clear()
                await connection.send(b"NOT HTTP AT ALL\r\n\r\n")
                answer = await connection.response()
                assert answer is not None
                assert answer[0] == 400
                assert await connection.at_end()
                assert len(writes(port)) == 1, writes(port)


async def test_streamed_answers_leave_chunk_by_chunk(writes: Callable[[int], Writes]) -> None:
    app = StreamingApp()
    async with served(app) as port:
        with trio.fail_after(10):
            async with connected(port) as connection:
                await connection.send(request("GET", "/stream"))
                await trio.sleep(0.1)
                assert writes(port) == []  # the head waits for the first chunk
                received = b""
                for chunk in (b"first", b"second"):
                    app.go.release()
                    while not received.endswith(chunk + b"\r\n"):
                        received += await connection.stream.receive_some(65536)
                assert received.startswith(b"HTTP/1.1 200 ")
                assert b"transfer-encoding: chunked" in received.lower()
                assert len(writes(port)) == 2, writes(port)
                while not received.endswith(b"0\r\n\r\n"):
                    received += await connection.stream.receive_some(65536)
                # The connection is kept for the next request.
                await connection.send(request("GET", "/fixed"))
                answer = await connection.response()
                assert answer is not None
                assert answer[2] == b"fixed"


async def test_an_abandoned_answer_still_sends_its_head(writes: Callable[[int], Writes]) -> None:
    async with served(StreamingApp()) as port:
        with trio.fail_after(10):
            async with connected(port) as connection:
                await connection.send(request("GET", "/abandoned"))
                assert await connection.at_end()
                assert connection.buffer.startswith(b"HTTP/1.1 200 ")


async def test_100_continue_comes_before_the_body_is_sent(
    writes: Callable[[int], Writes],
) -> None:
    async with served(StreamingApp()) as port:
        with trio.fail_after(10):
            async with connected(port) as connection:
                await connection.send(request("POST", "/fixed", {"Expect": "100-continue"}, 4))
                continued = await connection.response()
                assert continued is not None
                assert continued[0] == 100
                await connection.send(b"body")
                answer = await connection.response()
                assert answer is not None
                assert (answer[0], answer[2]) == (200, b"fixed")
                assert len(writes(port)) == 2, writes(port)
