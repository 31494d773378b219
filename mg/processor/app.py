"""A ``Processor`` as a plain ASGI application, so any ASGI server can run it (hypercorn with
trio or asyncio, uvicorn); it awaits nothing but ASGI's own ``receive`` and ``send``.

One app serves both of mg's callers: a ``POST`` whose path ends in ``/modernizer`` is a
modernizer call (PROTOCOL section 4, Modernizer); any other ``POST`` path is a processor call.
Bodies are MessagePack or JSON by ``Content-Type``; the answer takes the type in ``Accept``,
else the request's. How handler outcomes map to answers:

- a ``Result``: ``200`` with the reply;
- ``InvalidArgs`` from ``init``: ``422 {"error": "invalid_args", "reason": ...}`` (mg stores
  nothing and answers the client the same);
- ``RepairRefused`` from ``repair``: ``422 {"error": "repair_failed", "reason": ...}``;
- ``Transient``: ``503`` (mg applies nothing and may retry);
- any other exception: ``500`` with ``Type: message`` as plain text, which mg keeps as the
  failed machine's ``failure.reason`` (the traceback goes to the ``mg.processor`` log);
- a body mg could not have sent: ``400``; neither JSON nor MessagePack: ``415``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mg.core import values
from mg.core.clock import parse_time
from mg.core.processor_wire import Kind
from mg.core.shapes import ShapeError, content_value
from mg.processor.base import Processor
from mg.processor.results import InvalidArgs, RepairRefused, Transient
from mg.processor.wire import parse_modernize_request, parse_request, reply_value

log = logging.getLogger("mg.processor")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

JSON = "application/json"
MSGPACK = "application/msgpack"
TEXT = "text/plain; charset=utf-8"
_MSGPACK_TYPES = (MSGPACK, "application/x-msgpack", "application/vnd.msgpack")


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    content: bytes
    media: str


def _text(status: int, message: str) -> Reply:
    return Reply(status, message.encode("utf-8"), TEXT)


def media_of(header: str | None) -> str | None:
    """MSGPACK or JSON for a Content-Type or Accept value, else None."""
    for part in (header or "").split(","):
        media = part.split(";")[0].strip().lower()
        if media in _MSGPACK_TYPES:
            return MSGPACK
        if media == JSON or (media.startswith("application/") and media.endswith("+json")):
            return JSON
    return None


def decode(data: bytes, media: str) -> Any:
    if media == MSGPACK:
        return values.unpack(data)
    return values.from_json(json.loads(data))


def encode(body: Any, media: str) -> bytes:
    if media == MSGPACK:
        return values.pack(body)
    return json.dumps(values.to_json(body), separators=(",", ":")).encode("utf-8")


def unencodable(value: Any, path: str = "") -> str | None:
    """Where in ``value`` something MessagePack cannot carry sits, as ``path: type``; ``None``
    when the whole value is fine."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = unencodable(item, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if unencodable(key) is not None:
                return f"{path or 'a map'} with a key of type {type(key).__name__}"
            found = unencodable(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
        return None
    return f"{path or 'the reply'}: a {type(value).__module__}.{type(value).__qualname__}"


def _deadline(header: str | None) -> datetime | None:
    try:
        return parse_time(header.strip()) if header else None
    except ValueError:
        return None


class ProcessorApp:
    """The ASGI app of one ``Processor`` instance."""

    def __init__(self, processor: Processor, *, max_body_bytes: int = 64 * 1024 * 1024) -> None:
        self.processor = processor
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        reply = await self._answer(scope, receive)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(b"content-type", reply.media.encode("ascii"))],
            }
        )
        await send({"type": "http.response.body", "body": reply.content})

    async def _answer(self, scope: Scope, receive: Receive) -> Reply:
        if scope["method"] != "POST":
            return _text(405, "mg calls processors with POST")
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        request_media = media_of(headers.get("content-type"))
        if request_media is None:
            return _text(415, "the body must be application/json or application/msgpack")
        media = media_of(headers.get("accept")) or request_media
        data = await _read_body(receive, self.max_body_bytes)
        if data is None:
            return _text(413, f"the body is larger than {self.max_body_bytes} bytes")
        try:
            value = decode(data, request_media)
        except (ValueError, RecursionError) as error:
            return _text(400, f"malformed body: {error}")
        if str(scope.get("path", "")).rstrip("/").endswith("/modernizer"):
            return self._modernize(value, media)
        return await self._process(value, headers, media)

    async def _process(self, value: Any, headers: dict[str, str], media: str) -> Reply:
        try:
            request = parse_request(
                value,
                deadline=_deadline(headers.get("x-request-deadline")),
                traceparent=headers.get("traceparent"),
            )
        except ShapeError as error:
            return _text(400, f"not a processor request: {error}")
        try:
            result = await self.processor.handle(request)
            body = reply_value(result, self.processor.format_version)
            try:
                content = encode(body, media)
            except (TypeError, ValueError) as error:
                # Walked only on failure: say where the odd value is, not just its type.
                where = unencodable(body)
                if where is None:
                    raise
                name = f"{type(self.processor).__name__}.{request.kind.value}"
                raise TypeError(
                    f"{name} returned {where}, which is not a value: values are what MessagePack "
                    "and JSON carry (None, bool, int, float, str, bytes, lists, maps); write "
                    "times as RFC 3339 strings"
                ) from error
            return Reply(200, content, media)
        except RepairRefused as refusal:
            if request.kind is Kind.REPAIR:
                refused = {"error": "repair_failed", "reason": refusal.reason}
                return Reply(422, encode(refused, media), media)
            return self._failure(request.kind.value, refusal, "RepairRefused outside repair: ")
        except InvalidArgs as refusal:
            if request.kind is Kind.INIT:
                log.info("init refused its arguments: %r", refusal.reason)
                refused = {"error": "invalid_args", "reason": refusal.reason}
                return Reply(422, encode(refused, media), media)
            return self._failure(request.kind.value, refusal, "InvalidArgs outside init: ")
        except Transient as error:
            return _text(503, f"{type(error).__name__}: {error}")
        except Exception as error:
            return self._failure(request.kind.value, error)

    def _modernize(self, value: Any, media: str) -> Reply:
        try:
            ns, machine_id, event = parse_modernize_request(value)
        except ShapeError as error:
            return _text(400, f"not a modernizer request: {error}")
        try:
            content = self.processor.modernize(ns, machine_id, event)
            return Reply(200, encode({"event": content_value(content)}, media), media)
        except Transient as error:
            return _text(503, f"{type(error).__name__}: {error}")
        except Exception as error:
            return self._failure("modernize", error)

    def _failure(self, what: str, error: Exception, prefix: str = "") -> Reply:
        log.error("%s raised in %s", type(error).__name__, what, exc_info=error)
        return _text(500, f"{prefix}{type(error).__name__}: {error}")


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
