"""A raw HTTP/1.1 processor on loopback that can answer one byte at a time (HOSTILE.md's
``rp.py``, in trio): what httpx's per-read timeout never notices.

``answer`` turns a decoded request (MessagePack or JSON) into the reply body; ``trickle`` says,
per request, how many seconds to sleep after each byte of the answer (headers included), or
None to send it whole. Connections are kept alive, as a real processor's would be.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import msgpack
import trio

from mg.core import values

Request = dict[str, Any]


def echo_late(request: Request) -> Any:
    """``init`` answers nothing; anything else writes one event ``"late"`` and answers it."""
    if request.get("kind") == "signal" and request["signal"]["type"] == "init":
        return {}
    return {"response": "late", "events": [{"data": "late"}]}


@dataclass
class TrickleProcessor:
    answer: Callable[[Request], Any] = echo_late
    trickle: Callable[[Request], float | None] = lambda request: None
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    # Answers cut short because mg closed the connection.
    abandoned: int = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                fields = head.decode("latin-1").lower().split("\r\n")[1:]
                headers = dict(line.split(":", 1) for line in fields if ":" in line)
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                raw, buffer = buffer[:length], buffer[length:]
                is_json = "json" in headers.get("content-type", "")
                request = (
                    values.from_json(json.loads(raw))
                    if is_json
                    else msgpack.unpackb(raw, raw=False, strict_map_key=False)
                )
                self.requests.append(request)
                reply = self.answer(request)
                body = (
                    json.dumps(values.to_json(reply)).encode() if is_json else msgpack.packb(reply)
                )
                media = "application/json" if is_json else "application/msgpack"
                data = (
                    f"HTTP/1.1 200 OK\r\ncontent-type: {media}\r\n"
                    f"content-length: {len(body)}\r\n\r\n"
                ).encode() + body
                delay = self.trickle(request)
                if delay is None:
                    await stream.send_all(data)
                    continue
                for index in range(len(data)):
                    await stream.send_all(data[index : index + 1])
                    await trio.sleep(delay)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.abandoned += 1


@asynccontextmanager
async def trickling(processor: TrickleProcessor) -> AsyncIterator[TrickleProcessor]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, processor.handle, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        processor.url = f"http://127.0.0.1:{port}/processor"
        try:
            yield processor
        finally:
            nursery.cancel_scope.cancel()
