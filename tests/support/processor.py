"""A real HTTP processor on loopback for tests: a tiny ASGI app served by hypercorn.

Tests give it a ``behaviour``: an async function from the decoded request to an ``Answer``.
It records every request and notices overlapping steps of one machine.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import msgpack
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from mg.core import values
from mg.core.clock import utc_now


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    media: str = "application/msgpack"
    raw: bytes | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass
class Seen:
    body: dict[str, Any]
    headers: dict[str, str]
    received_at: datetime = field(default_factory=utc_now)

    @property
    def kind(self) -> str:
        if self.body["kind"] == "signal":
            return str(self.body["signal"]["type"])
        return str(self.body["kind"])

    @property
    def machine(self) -> dict[str, Any]:
        return dict(self.body["machine"])


Behaviour = Callable[[Seen], Awaitable[Answer]]


async def echo(seen: Seen) -> Answer:
    """Default behaviour: record ``args`` as one event and answer with them."""
    args = seen.body["signal"]["args"] if seen.body["kind"] == "signal" else seen.body["args"]
    return Answer(body={"response": args, "events": [{"data": args, "format_version": 1}]})


@dataclass
class FakeProcessor:
    behaviour: Behaviour = echo
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    overlaps: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        data = b"".join(chunks)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if headers.get("content-type", "").startswith("application/json"):
            body = values.from_json(json.loads(data))
        else:
            body = msgpack.unpackb(data, raw=False, strict_map_key=False)
        seen = Seen(body, headers)
        self.seen.append(seen)
        key = f"{body['machine']['ns']}/{body['machine']['id']}"
        self.in_flight[key] += 1
        if self.in_flight[key] > 1:
            self.overlaps += 1
        try:
            answer = await self.behaviour(seen)
        finally:
            self.in_flight[key] -= 1
        if answer.raw is not None:
            payload = answer.raw
        elif answer.media == "application/json":
            payload = json.dumps(values.to_json(answer.body)).encode()
        else:
            payload = msgpack.packb(answer.body)
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [(b"content-type", answer.media.encode()), *answer.headers],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def kinds(self) -> list[str]:
        return [seen.kind for seen in self.seen]

    def of_kind(self, kind: str, machine_id: str | None = None) -> list[Seen]:
        return [
            seen
            for seen in self.seen
            if seen.kind == kind and (machine_id is None or seen.machine["id"] == machine_id)
        ]


@asynccontextmanager
async def serving(processor: FakeProcessor) -> AsyncIterator[FakeProcessor]:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.5
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, processor, config, shutdown_trigger=stop.wait))
        processor.url = binds[0] + "/processor"
        try:
            yield processor
        finally:
            stop.set()
