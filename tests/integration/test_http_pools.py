"""The processor adapter's HTTP (mg/adapters/http_pools.py) against a scripted server on
loopback: keep-alive, a connection the server closed while idle, the byte limit, content
encodings, the bound on the whole exchange, and what each failure is raised as."""

from __future__ import annotations

import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import trustme

from mg.adapters.http_answers import AnswerTooLarge
from mg.adapters.http_pools import HttpPools

HEADERS = [(b"content-type", b"application/msgpack"), (b"x-mg-namespace", b"test")]
Script = Callable[[trio.abc.Stream, bytes], Awaitable[None]]


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def plain(stream: trio.abc.Stream, request: bytes) -> None:
    await stream.send_all(answer(b"plain", "content-type: text/plain"))


@dataclass
class Server:
    """Answers each request on a connection by ``script``; counts connections."""

    script: Script = plain
    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/processor"

    async def handle(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                while len(buffer) < length:
                    buffer += await stream.receive_some(65536)
                self.requests.append(head + b"\r\n\r\n" + buffer[:length])
                buffer = buffer[length:]
                await self.script(stream, self.requests[-1])
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            await stream.aclose()


@asynccontextmanager
async def serving(server: Server) -> AsyncIterator[Server]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
        server.port = listeners[0].socket.getsockname()[1]
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def pools(url: str, max_connections: int = 1) -> AsyncIterator[HttpPools]:
    opened = HttpPools(url, max_connections)
    try:
        yield opened
    finally:
        await opened.aclose()


async def test_a_call_posts_the_body_and_reads_the_whole_answer() -> None:
    async with serving(Server()) as server, pools(server.url) as http:
        got = await http.send(b"\x81\xa1k\xa1v", HEADERS, 5.0)
        assert (got.status, got.content_type, got.content) == (200, "text/plain", b"plain")
        head, _, body = server.requests[0].partition(b"\r\n\r\n")
        lines = head.decode().lower().split("\r\n")
        assert lines[0] == "post /processor http/1.1"
        assert f"host: 127.0.0.1:{server.port}" in lines
        assert "content-length: 5" in lines
        assert "x-mg-namespace: test" in lines
        assert body == b"\x81\xa1k\xa1v"


async def test_connections_are_kept_alive_between_calls() -> None:
    async with serving(Server()) as server, pools(server.url) as http:
        for _ in range(5):
            assert (await http.send(b"", HEADERS, 5.0)).content == b"plain"
        assert server.connections == 1


async def test_a_connection_the_server_closed_while_idle_fails_no_call() -> None:
    async def answer_and_close(stream: trio.abc.Stream, request: bytes) -> None:
        await plain(stream, request)
        await stream.aclose()

    async with serving(Server(answer_and_close)) as server, pools(server.url) as http:
        for _ in range(3):
            assert (await http.send(b"", HEADERS, 5.0)).content == b"plain"
            await trio.sleep(0.05)  # the close reaches the idle connection
        assert server.connections == 3


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    async def huge(stream: trio.abc.Stream, request: bytes) -> None:
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
        await trio.sleep_forever()

    async with serving(Server(huge)) as server, pools(server.url) as http:
        with trio.fail_after(2), pytest.raises(AnswerTooLarge) as refused:
            await http.send(b"", HEADERS, 30.0, max_bytes=1000)
        assert (refused.value.size, refused.value.limit) == (1_000_000, 1000)


async def test_a_body_over_the_limit_is_refused_and_the_next_call_served() -> None:
    async def chunked(stream: trio.abc.Stream, request: bytes) -> None:
        chunk = b"x" * 600
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
        await stream.send_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + body)

    async with serving(Server(chunked)) as server, pools(server.url) as http:
        with pytest.raises(AnswerTooLarge):
            await http.send(b"", HEADERS, 5.0, max_bytes=1000)
        assert len((await http.send(b"", HEADERS, 5.0, max_bytes=2000)).content) == 1800


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_encoded_answers_are_decoded_within_the_limit(encoding: str) -> None:
    plain_body = b"decoded " * 100
    compress = gzip.compress if encoding == "gzip" else zlib.compress
    packed, bomb = compress(plain_body), compress(b"\0" * 1_000_000)
    bodies = iter([packed, bomb, b"not compressed at all"])

    async def encoded(stream: trio.abc.Stream, request: bytes) -> None:
        await stream.send_all(answer(next(bodies), f"content-encoding: {encoding}"))

    async with serving(Server(encoded)) as server, pools(server.url) as http:
        got = await http.send(b"", HEADERS, 5.0, max_bytes=10_000)
        assert got.content == plain_body
        with pytest.raises(AnswerTooLarge):
            await http.send(b"", HEADERS, 5.0, max_bytes=10_000)
        with pytest.raises(httpx.DecodingError):
            await http.send(b"", HEADERS, 5.0, max_bytes=10_000)
        assert server.connections == 1


async def test_the_whole_exchange_is_bounded_and_the_cut_connection_dropped() -> None:
    async def trickle(stream: trio.abc.Stream, request: bytes) -> None:
        if len(request.partition(b"\r\n\r\n")[2]) == 0:
            await plain(stream, request)
            return
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
        for _ in range(100):
            await stream.send_all(b"x")
            await trio.sleep(0.05)

    async with serving(Server(trickle)) as server, pools(server.url) as http:
        with trio.fail_after(2), pytest.raises(httpx.TimeoutException):
            await http.send(b"slow", HEADERS, 0.4)
        assert (await http.send(b"", HEADERS, 5.0)).content == b"plain"
        assert server.connections == 2


async def test_refused_and_reset_connections_are_transport_errors() -> None:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    async with pools(f"http://127.0.0.1:{port}/") as http:
        with pytest.raises(httpx.ConnectError):
            await http.send(b"", HEADERS, 5.0)

    async def hang_up(stream: trio.abc.Stream, request: bytes) -> None:
        await stream.aclose()

    async with serving(Server(hang_up)) as server, pools(server.url) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.send(b"", HEADERS, 5.0)


async def test_a_request_is_one_write_and_connections_are_shared_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes: list[bytes] = []
    original = trio.SocketStream.send_all

    async def counted(self: trio.SocketStream, data: bytes | bytearray | memoryview) -> None:
        if self.socket.getpeername()[1] == server.port:
            writes.append(bytes(data))
        await original(self, data)

    monkeypatch.setattr(trio.SocketStream, "send_all", counted)
    async with serving(Server()) as server, pools(server.url, 4) as http:
        for _ in range(3):
            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(http.send, b"body", HEADERS, 5.0)
        assert len(writes) == 12
        assert all(write.endswith(b"\r\n\r\nbody") for write in writes)
        assert server.connections == 4


async def test_https_processors_are_verified(tmp_path: Path) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    server = Server()

    async def handle(stream: trio.SocketStream) -> None:
        secure = trio.SSLStream(stream, server_context, server_side=True)
        with suppress(trio.BrokenResourceError):
            await secure.do_handshake()
            await server.handle(secure)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        url = f"https://127.0.0.1:{listeners[0].socket.getsockname()[1]}/processor"
        trusted = HttpPools(url, 1, ssl_context=trusting)
        try:
            for _ in range(2):
                assert (await trusted.send(b"", HEADERS, 5.0)).content == b"plain"
            assert server.connections == 1
        finally:
            await trusted.aclose()
        async with pools(url) as http:  # the default authorities do not know this one
            with pytest.raises(httpx.ConnectError):
                await http.send(b"", HEADERS, 5.0)
        nursery.cancel_scope.cancel()
