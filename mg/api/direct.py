"""The client API (``/v1/...``) served straight from ASGI, without Quart's request and response
objects, contexts and routing: the front door (``mg.api.frontdoor``) hands these requests here,
and ``mg.api.dispatch`` handles them as it handles those of Quart's catch-all.

What Quart and quart-trio did for these requests is done here the same way:

* the body: a declared ``Content-Length`` over ``max_body_bytes`` is refused before anything is
  read, a body that grows past it as it streams in too (413 either way); the whole body must
  arrive within Quart's ``BODY_TIMEOUT`` (60 s);
* the answer: ``Content-Type``, ``Content-Length`` and ``X-Request-Id`` then mg's own headers,
  in lowercase; its body in one message with more to come, then an empty last one (which the
  front door sends shielded), all within Quart's ``RESPONSE_TIMEOUT`` (60 s);
* a request whose client goes away is cancelled, answer unsent (a long-poll frees its slot at
  once). quart-trio ran a task per request to wait for ``http.disconnect``; here mg's server
  calls back (``mg.connections.Disconnect``), so no task is spawned.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from mg.api.dispatch import Dispatcher
from mg.api.incoming import BodyTimeout, Incoming, declared_length, too_large
from mg.connections import DISCONNECT, Disconnect

Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]

# Quart's defaults (BODY_TIMEOUT, RESPONSE_TIMEOUT), which mg never changed.
BODY_TIMEOUT = 60.0
RESPONSE_TIMEOUT = 60.0
_LAST = {"type": "http.response.body", "body": b"", "more_body": False}


def can_serve(scope: Any) -> bool:
    """Whether the server tells this request's app when its client goes away (mg's does)."""
    return isinstance((scope.get("extensions") or {}).get(DISCONNECT), Disconnect)


class DirectApi:
    """The ASGI application of the client API, for scopes that ``can_serve``."""

    def __init__(self, dispatcher: Dispatcher, max_body_bytes: int) -> None:
        self._dispatcher = dispatcher
        self._max_body_bytes = max_body_bytes

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        disconnect: Disconnect = scope["extensions"][DISCONNECT]
        with trio.CancelScope() as request_scope:
            disconnect.when_set(request_scope.cancel)
            body = _Body(receive, self._max_body_bytes, request_scope)
            answer = await self._dispatcher.respond(Incoming(scope, body.read))
            # Sending is given up after the response timeout, unfinished, as quart-trio's
            # move_on_after did (a deadline on this scope rather than one more scope).
            request_scope.deadline = trio.current_time() + RESPONSE_TIMEOUT
            await send(
                {
                    "type": "http.response.start",
                    "status": answer.status,
                    "headers": answer.asgi_headers(),
                }
            )
            if answer.body:
                await send({"type": "http.response.body", "body": answer.body, "more_body": True})
            await send(_LAST)


class _Body:
    """Reads one request's body from ASGI ``receive``, within the size limit and the timeout."""

    __slots__ = ("_limit", "_receive", "_request_scope")

    def __init__(self, receive: Receive, limit: int, request_scope: trio.CancelScope) -> None:
        self._receive = receive
        self._limit = limit
        self._request_scope = request_scope

    async def read(self, request: Incoming) -> bytes:
        declared = declared_length(request.header("content-length"))
        if declared is not None and declared > self._limit:
            raise too_large(self._limit)
        chunks: list[bytes] = []
        size = 0
        with trio.move_on_after(BODY_TIMEOUT) as timer:
            while True:
                message = await self._receive()
                kind = message["type"]
                if kind == "http.disconnect":
                    # The client went away: cancelled, as quart-trio cancelled the handler.
                    self._request_scope.cancel()
                    await trio.lowlevel.checkpoint()
                if kind != "http.request":
                    continue
                chunk = message.get("body", b"")
                if chunk:
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > self._limit:
                        raise too_large(self._limit)
                if not message.get("more_body", False):
                    break
        if timer.cancelled_caught:
            raise BodyTimeout(f"the body did not arrive within {BODY_TIMEOUT:g} s")
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
