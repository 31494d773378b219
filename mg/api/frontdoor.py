"""The front door: ASGI rules every request passes before Quart sees it.

* The client API (``/v1/...``) is routed by mg, on the raw path, so an id may hold any
  character (a line feed too, which Werkzeug's converters do not match), and every method
  reaches mg's router (405 with ``Allow`` for a method a path does not take, whatever the
  method). Its requests go straight to ``mg.api.direct``, past Quart; under a server that does
  not report disconnects as mg's does (``mg.connections.Disconnect``), to Quart's one dispatch
  rule instead, whatever their path. Other paths are Quart's.
* ``Content-Length`` together with ``Transfer-Encoding`` is refused (400, connection closed): a
  proxy in front may frame the body differently than we do.
* An answer given before the request's body has arrived (404, 405, 401, 403, 413, 429, 503...)
  says ``Connection: close``: the unread rest of the body cannot be told from a next request.
* The last message of a response is sent shielded from cancellation. Quart (and the direct
  path, told by ``Disconnect``) cancels the request's work when hypercorn reports the response
  complete, and hypercorn does its bookkeeping for the connection's next request (the idle
  timer) or closes the connection inside that very call; cancelled there, an idle connection
  would stay open forever.
* The connection a request came on is marked busy while it is handled (``mg.connections``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import trio

from mg.api import bodies, errors, requests
from mg.api.direct import can_serve
from mg.connections import Connections
from mg.errors import InvalidRequest

Scope = Any
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
Asgi = Callable[[Any, Any, Any], Awaitable[None]]

DISPATCH_PATH = "/"
API_PREFIX = "/v1/"
_CLOSE = (b"connection", b"close")


def _body_follows(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            return True
        if lowered == b"content-length" and value.strip().lstrip(b"0") != b"":
            return True
    return False


def _ambiguous_framing(headers: list[tuple[bytes, bytes]]) -> bool:
    names = {name.lower() for name, _ in headers}
    return b"content-length" in names and b"transfer-encoding" in names


def _header(headers: list[tuple[bytes, bytes]], wanted: bytes) -> str | None:
    for name, value in headers:
        if name.lower() == wanted:
            return value.decode("latin-1")
    return None


class FrontDoor:
    def __init__(
        self, app: Asgi, connections: Connections | None, direct: Asgi | None = None
    ) -> None:
        self._app = app
        self._connections = connections
        self._direct = direct

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
        http1 = scope.get("http_version", "1.1") in ("1.0", "1.1")
        if _ambiguous_framing(headers):
            await self._refuse(
                headers,
                send,
                InvalidRequest("Content-Length and Transfer-Encoding must not come together"),
            )
            return
        body_pending = _body_follows(headers)

        async def receiving() -> Any:
            nonlocal body_pending
            message = await receive()
            if message.get("type") == "http.request" and not message.get("more_body", False):
                body_pending = False
            return message

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start" and body_pending and http1:
                found = list(message.get("headers") or [])
                if not any(name.lower() == b"connection" for name, _ in found):
                    message = {**message, "headers": [*found, _CLOSE]}
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                with trio.CancelScope(shield=True):
                    await send(message)
                return
            await send(message)

        app = self._app
        if str(scope.get("path", "")).startswith(API_PREFIX):
            if self._direct is not None and can_serve(scope):
                app = self._direct
            else:
                # In place: the middleware outside reads what the app leaves in this very scope.
                scope["path"] = DISPATCH_PATH
        with self._busy(scope.get("client")):
            await app(scope, receiving, sending)

    @contextmanager
    def _busy(self, client: Any) -> Iterator[None]:
        if self._connections is None or client is None:
            yield
            return
        with self._connections.busy(client):
            yield

    async def _refuse(
        self, headers: list[tuple[bytes, bytes]], send: Send, error: InvalidRequest
    ) -> None:
        media = bodies.response_type(_header(headers, b"accept"), None)
        data = bodies.encode(errors.error_body(error), media)
        request_id = requests.request_id(_header(headers, b"x-request-id"))
        await send(
            {
                "type": "http.response.start",
                "status": errors.status_of(error),
                "headers": [
                    (b"content-type", media.encode()),
                    (b"content-length", str(len(data)).encode()),
                    (b"x-request-id", request_id.encode()),
                    _CLOSE,
                ],
            }
        )
        with trio.CancelScope(shield=True):
            await send({"type": "http.response.body", "body": data, "more_body": False})
