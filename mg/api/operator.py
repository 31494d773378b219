"""The operator's endpoints beside the client API: ``/metrics``, ``/health/live``,
``/health/ready`` and ``/openapi.json``. They need no token (probes and scrapers rarely carry
one) and always answer JSON, except ``/metrics`` (Prometheus text)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from quart import Response, request
from quart_trio import QuartTrio

from mg.api import requests
from mg.api.instrument import ROUTE_KEY
from mg.api.openapi import document
from mg.observability.health import Readiness
from mg.observability.metrics import CONTENT_TYPE, Metrics


class Ready(Protocol):
    async def readiness(self) -> Readiness: ...


ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def any_method(app: QuartTrio) -> None:
    """Let every rule take every method (TRACE, FOO...): the handlers answer 405 themselves,
    with ``Allow``. Quart has no way to say so when adding a rule, Werkzeug does (``None``)."""
    for rule in app.url_map.iter_rules():
        rule.methods = None


def mark_route(name: str) -> None:
    """Name the current request's route for the HTTP metrics (bounded label values)."""
    scope: dict[str, Any] = request.scope  # type: ignore[assignment]
    scope[ROUTE_KEY] = name


@dataclass(frozen=True, slots=True)
class Operator:
    metrics: Metrics
    health: Ready
    # The whole node's series when it is made of workers (``mg.workers.exposition``).
    exposition: Callable[[], Awaitable[bytes]] | None = field(default=None)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    response = Response(data, status=status, content_type="application/json")
    response.headers["X-Request-Id"] = requests.request_id(request.headers.get("x-request-id"))
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def add_operator_routes(app: QuartTrio, operator: Operator) -> None:
    openapi = json.dumps(document(), separators=(",", ":")).encode()

    async def metrics() -> Response:
        if operator.exposition is None:
            body = operator.metrics.render()
        else:
            body = await operator.exposition()
        response = Response(body, status=200, content_type=CONTENT_TYPE)
        response.headers["X-Request-Id"] = requests.request_id(None)
        return response

    async def live() -> Response:
        return _json(200, {"status": "live"})

    async def ready() -> Response:
        found = await operator.health.readiness()
        each = {} if found.databases is None else {"databases": dict(found.databases)}
        if found.ready:
            return _json(200, {"status": "ready", "message": found.reason, **each})
        return _json(503, {"error": "unavailable", "message": found.reason, **each})

    async def openapi_document() -> Response:
        return _json(200, openapi)

    def get_only(name: str, handler: Callable[[], Awaitable[Response]]) -> Any:
        async def endpoint() -> Response:
            mark_route(name)
            if request.method not in ("GET", "HEAD"):
                return _json(
                    405,
                    {"error": "method_not_allowed", "message": f"{request.method} is not allowed"},
                    {"Allow": "GET, HEAD"},
                )
            return await handler()

        return endpoint

    for path, name, handler in (
        ("/metrics", "metrics", metrics),
        ("/health/live", "health_live", live),
        ("/health/ready", "health_ready", ready),
        ("/openapi.json", "openapi", openapi_document),
    ):
        app.add_url_rule(path, name, get_only(name, handler), methods=ALL_METHODS)
