"""HTTP metrics as ASGI middleware around the Quart app, so every answer is counted, those
Quart gives before any handler runs (a declared body over the limit) included."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

from mg.observability.metrics import Metrics

# Loosely typed on purpose: Quart's ASGI types are TypedDict unions that a pass-through
# middleware has no use for.
Scope = Any
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
Asgi = Callable[[Any, Any, Any], Awaitable[None]]

ROUTE_KEY = "mg.route"
"""Where the route's name is left in the ASGI scope, for the HTTP metrics."""

# Methods outside this set are counted as "other": a client cannot mint label values.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    def __init__(self, app: Asgi, metrics: Metrics, route_key: str) -> None:
        self._app = app
        self._metrics = metrics
        self._route_key = route_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        began = trio.current_time()
        status = 0

        async def sending(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            method = scope.get("method", "")
            self._metrics.observe_http(
                str(scope.get(self._route_key, "unmatched")),
                method if method in KNOWN_METHODS else "other",
                status,
                trio.current_time() - began,
            )
