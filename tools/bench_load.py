"""The load generator of ``tools/bench.py steps``: HTTP/1.1 keep-alive requests over raw trio
sockets, closed loop (``c`` workers, each waiting for its answer before the next request) or
open loop (requests at a fixed rate, latency counted from the time each was due, so a stalled
server is not hidden by a stalled generator).

Raw sockets instead of httpx because the generator shares two cores with everything it measures:
a request here costs a few microseconds of Python, an httpx request a few hundred.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import trio

Request = tuple[str, str, bytes]
"""Method, path and body of one request."""


class HttpConnection:
    """One keep-alive connection; answers must carry Content-Length (hypercorn's do)."""

    def __init__(self, stream: trio.SocketStream, host: str) -> None:
        self._stream = stream
        self._host = host.encode()
        self._buffer = bytearray()

    @classmethod
    async def open(cls, url: str) -> HttpConnection:
        parts = urlsplit(url)
        stream = await trio.open_tcp_stream(parts.hostname or "127.0.0.1", parts.port or 80)
        return cls(stream, parts.netloc)

    async def request(self, method: str, path: str, body: bytes, media: bytes) -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\n".encode()
            + b"host: "
            + self._host
            + b"\r\ncontent-type: "
            + media
            + b"\r\naccept: "
            + media
            + b"\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
        )
        await self._stream.send_all(head + body)
        buffer = self._buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            await self._fill()
        header = bytes(buffer[:end]).lower()
        del buffer[: end + 4]
        status = int(header[9:12])
        length = 0
        at = header.find(b"content-length:")
        if at >= 0:
            line_end = header.find(b"\r\n", at)
            length = int(header[at + 15 : line_end if line_end >= 0 else len(header)])
        elif status not in (204, 304):
            raise ConnectionError("an answer without Content-Length")
        while len(buffer) < length:
            await self._fill()
        answer = bytes(buffer[:length])
        del buffer[:length]
        return status, answer

    async def _fill(self) -> None:
        chunk = await self._stream.receive_some(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


@dataclass
class Tally:
    """What one run saw: latencies of answers with the expected status, and the others."""

    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    reconnects: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def at(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

        return {
            "requests": len(ordered),
            "per_s": len(ordered) / self.seconds if self.seconds else 0.0,
            "p50_ms": at(0.50),
            "p99_ms": at(0.99),
            "mean_ms": statistics.fmean(ordered) * 1000 if ordered else 0.0,
            "max_ms": ordered[-1] * 1000 if ordered else 0.0,
            "errors": dict(self.errors),
            "reconnects": self.reconnects,
        }


Progress = Callable[[int, float], None]
"""Called about twice a second with the answers so far and the seconds elapsed."""


async def _report(tally: Tally, began: float, seconds: float, progress: Progress | None) -> None:
    while progress is not None:
        await trio.sleep(0.5)
        progress(len(tally.latencies), min(time.perf_counter() - began, seconds))


async def closed_loop(
    url: str | list[str],
    concurrency: int,
    seconds: float,
    make: Callable[[int, int], Request],
    *,
    expect: int,
    media: bytes = b"application/msgpack",
    progress: Progress | None = None,
    stop_after: int | None = None,
) -> Tally:
    """``concurrency`` workers send ``make(worker, turn)`` for ``seconds`` (or until each has
    sent ``stop_after``); each has its own connection (to ``url``, or to the URLs in turn).
    Requests still in flight at the end are not counted."""
    tally = Tally()
    urls = [url] if isinstance(url, str) else url
    connections = [await HttpConnection.open(urls[n % len(urls)]) for n in range(concurrency)]
    began = time.perf_counter()
    stop_at = began + seconds

    async def worker(number: int) -> None:
        conn = connections[number]
        turn = 0
        while stop_after is None or turn < stop_after:
            method, path, body = make(number, turn)
            turn += 1
            sent = time.perf_counter()
            try:
                status, _ = await conn.request(method, path, body, media)
            except (ConnectionError, trio.BrokenResourceError):
                tally.reconnects += 1  # hypercorn closes a connection after 1,000 requests
                await conn.aclose()
                conn = connections[number] = await HttpConnection.open(urls[number % len(urls)])
                continue
            done = time.perf_counter()
            if done > stop_at:
                return
            if status == expect:
                tally.latencies.append(done - sent)
            else:
                tally.error(str(status))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_report, tally, began, seconds, progress)
        async with trio.open_nursery() as workers:
            for number in range(concurrency):
                workers.start_soon(worker, number)
        nursery.cancel_scope.cancel()
    tally.seconds = min(seconds, time.perf_counter() - began)
    for conn in connections:
        await conn.aclose()
    return tally


async def open_loop(
    url: str | list[str],
    rate: float,
    seconds: float,
    make: Callable[[int, int], Request],
    *,
    expect: int,
    connections: int = 64,
    media: bytes = b"application/msgpack",
    progress: Progress | None = None,
) -> Tally:
    """Requests due every ``1/rate`` seconds, each sent on a free connection (opened on demand,
    at most ``connections``); latency runs from the time a request was due. Requests that
    found no free connection wait for one, and that wait is counted in their latency."""
    tally = Tally()
    urls = [url] if isinstance(url, str) else url
    free: list[HttpConnection] = []
    opened: list[HttpConnection] = []
    slots = trio.Semaphore(connections)
    interval = 1.0 / rate
    count = math.floor(rate * seconds)
    began = time.perf_counter()

    async def one(number: int, due: float) -> None:
        async with slots:
            conn = free.pop() if free else None
            if conn is None:
                conn = await HttpConnection.open(urls[len(opened) % len(urls)])
                opened.append(conn)
            method, path, body = make(number % connections, number)
            status, _ = await conn.request(method, path, body, media)
            free.append(conn)
        if status == expect:
            tally.latencies.append(time.perf_counter() - due)
        else:
            tally.error(str(status))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_report, tally, began, seconds, progress)
        async with trio.open_nursery() as requests:
            for number in range(count):
                due = began + number * interval
                wait = due - time.perf_counter()
                if wait > 0:
                    await trio.sleep(wait)
                requests.start_soon(one, number, due)
        nursery.cancel_scope.cancel()
    tally.seconds = seconds
    for conn in opened:
        await conn.aclose()
    return tally
