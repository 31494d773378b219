"""The Quart application: one catch-all route that reads the request, dispatches it through
``mg.api.routes`` and writes the answer or the error in the negotiated media type."""

from __future__ import annotations

import logging
from typing import Any

import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge
from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed

from mg.api import bodies, errors, requests, routes
from mg.api.admission import Admission, is_long_poll
from mg.api.auth import Authenticator
from mg.api.frontdoor import DISPATCH_PATH, FrontDoor
from mg.api.instrument import HttpMetrics
from mg.api.operator import (
    ALL_METHODS,
    ROUTE_KEY,
    Operator,
    add_operator_routes,
    any_method,
    mark_route,
)
from mg.connections import Connections
from mg.core import log_context as context
from mg.core.trace import TraceContext, continue_or_start
from mg.errors import (
    InvalidRequest,
    MethodNotAllowed,
    MgError,
    PayloadTooLarge,
    RouteNotFound,
    Unavailable,
)
from mg.service.machines import MachineService
from mg.service.sinks import SinkReader
from mg.settings import Auth

log = logging.getLogger("mg.api")

# Bodies larger than this are decoded in a worker thread, so the event loop keeps serving.
_DECODE_IN_THREAD = 64 * 1024


def _respond(
    status: int, body: Any, media: str, request_id: str, headers: dict[str, str]
) -> Response:
    response = Response(
        b"" if status == 204 else bodies.encode(body, media),
        status=status,
        content_type=media,
    )
    response.headers["X-Request-Id"] = request_id
    for name, value in headers.items():
        response.headers[name] = value
    return response


def _error_response(error: MgError, media: str, request_id: str) -> Response:
    return _respond(
        errors.status_of(error),
        errors.error_body(error),
        media,
        request_id,
        errors.error_headers(error),
    )


async def _answer(
    service: MachineService,
    sinks: SinkReader | None,
    max_body_bytes: int,
    route: routes.Route,
    params: dict[str, str],
    trace: TraceContext,
) -> routes.Answer:
    """Read the request's body and query and run its route's handler."""
    try:
        data = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    except RequestEntityTooLarge as error:
        raise PayloadTooLarge(f"the body is larger than {max_body_bytes} bytes") from error
    content_type = request.headers.get("content-type")
    if len(data) > _DECODE_IN_THREAD:
        body = await trio.to_thread.run_sync(bodies.decode, data, content_type)
    else:
        body = bodies.decode(data, content_type)
    query = _single_values(request.args)
    if route.query is not None:
        requests.only_query(query, route.query)
    call = routes.Call(
        service=service,
        params=params,
        query=query,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        trace=trace,
        sinks=sinks,
    )
    return await route.handler(call)


# The type of the ASGI application ``create_app`` makes, for the composition root to name
# without importing Quart itself.
App = QuartTrio


def create_app(
    service: MachineService,
    *,
    max_body_bytes: int,
    sinks: SinkReader | None = None,
    operator: Operator | None = None,
    auth: Auth | None = None,
    max_requests_in_flight: int = 1024,
    max_long_polls: int = 256,
    ready: trio.Event | None = None,
    connections: Connections | None = None,
) -> QuartTrio:
    """A fresh app per node (one app object reused across test sessions breaks)."""
    app = QuartTrio("mg", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    authenticator = Authenticator(auth or Auth())
    admission = Admission(max_requests_in_flight)
    long_polls = Admission(max_long_polls, "sink long-polls")

    async def dispatch(path: str = "") -> Response:
        request_id = requests.request_id(request.headers.get("x-request-id"))
        trace = continue_or_start(request.headers.get("traceparent"))
        with context.bound(trace=trace, request_id=request_id):
            response = await handle(request_id, trace)
            log.debug(
                "%s %s answered %d",
                request.method,
                request.scope.get(ROUTE_KEY, "unmatched"),
                response.status_code,
            )
            return response

    async def handle(request_id: str, trace: TraceContext) -> Response:
        request_type = bodies.media_type(request.headers.get("content-type")) or None
        media = bodies.response_type(request.headers.get("accept"), request_type)
        try:
            segments = routes.split_path(_raw_path())
            route, params = routes.find(request.method, segments)
            mark_route(route.name)
            context.set_machine(params.get("ns"), params.get("id"))
            authorization = request.headers.getlist("authorization")
            if len(authorization) > 1:
                # Which one a proxy in front would have used is anyone's guess.
                raise InvalidRequest("the Authorization header is given more than once")
            authenticator.check(
                authorization[0] if authorization else None,
                ns=params.get("ns"),
                sink=params.get("sink"),
            )
            if ready is not None and not ready.is_set():
                raise Unavailable(
                    "the node is starting: Postgres does not answer yet or the schema is "
                    "being migrated"
                )
            wait = request.args.get("wait")
            with (long_polls if is_long_poll(route.name, wait) else admission).enter():
                answer = await _answer(service, sinks, max_body_bytes, route, params, trace)
            return _respond(answer.status, answer.body, media, request_id, {})
        except MgError as error:
            return _error_response(error, media, request_id)
        except Exception:
            log.exception(
                "unexpected error handling %s %s", request.method, _raw_path().decode("latin-1")
            )
            failure = MgError("internal error; see the node's log for request " + request_id)
            return _respond(500, errors.error_body(failure), media, request_id, {})

    # The front door sends every /v1/ path here; mg routes on the raw path. Paths no other rule
    # takes come here too, for mg's 404.
    app.add_url_rule(DISPATCH_PATH, "dispatch", dispatch, methods=ALL_METHODS)
    app.add_url_rule("/<path:path>", "unrouted", dispatch, methods=ALL_METHODS)
    front_door = FrontDoor(app.asgi_app, connections)
    app.asgi_app = front_door  # type: ignore[method-assign]
    if operator is not None:
        add_operator_routes(app, operator)
        app.asgi_app = HttpMetrics(  # type: ignore[method-assign]
            front_door, operator.metrics, ROUTE_KEY
        )
    any_method(app)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        # Raised by Quart before dispatch (e.g. a declared Content-Length over the limit).
        request_id = requests.request_id(request.headers.get("x-request-id"))
        media = bodies.response_type(request.headers.get("accept"), None)
        return _error_response(_mapped(error, max_body_bytes), media, request_id)

    return app


def _mapped(error: HTTPException, max_body_bytes: int) -> MgError:
    """Quart's and Werkzeug's own answers in mg's terms."""
    if isinstance(error, RequestEntityTooLarge):
        return PayloadTooLarge(f"the body is larger than {max_body_bytes} bytes")
    if isinstance(error, NotFound):
        return RouteNotFound("no such path")
    if isinstance(error, WerkzeugMethodNotAllowed):
        allowed = tuple(sorted(error.valid_methods or ()))
        return MethodNotAllowed(f"{request.method} is not allowed here", allowed)
    return InvalidRequest(error.description or str(error))


def _raw_path() -> bytes:
    raw: bytes | None = request.scope.get("raw_path")
    return raw if raw is not None else request.path.encode()


def _single_values(args: Any) -> dict[str, str]:
    """Query parameters; a parameter given twice is refused rather than guessed at."""
    found: dict[str, str] = {}
    for key in args:
        items = args.getlist(key)
        if len(items) > 1:
            raise InvalidRequest(f"query parameter {key!r} is given more than once")
        found[key] = items[0]
    return found
