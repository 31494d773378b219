"""The Quart application: the operator's routes (``mg.api.operator``), the console's
(``mg.console``), and one catch-all rule for every other path, which ``mg.api.dispatch``
answers (mg's 404 for a path nobody serves). The client API (``/v1/...``) does not pass through
Quart: the front door hands it to ``mg.api.direct``, except under a server that does not report
disconnects as mg's does, when it comes to the catch-all too."""

from __future__ import annotations

import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge
from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed

from mg.api import bodies, requests
from mg.api.admission import Admission
from mg.api.auth import Authenticator
from mg.api.direct import DirectApi
from mg.api.dispatch import Dispatcher, Reply, error_reply
from mg.api.frontdoor import DISPATCH_PATH, FrontDoor
from mg.api.incoming import BodyReader, Incoming, too_large
from mg.api.instrument import ROUTE_KEY, HttpMetrics
from mg.api.operator import ALL_METHODS, Operator, add_operator_routes, any_method
from mg.connections import Connections
from mg.errors import InvalidRequest, MethodNotAllowed, MgError, RouteNotFound
from mg.service.machines import MachineService
from mg.service.sinks import SinkReader
from mg.settings import Auth


def _response(answer: Reply) -> Response:
    response = Response(answer.body, status=answer.status, content_type=answer.media)
    response.headers["X-Request-Id"] = answer.request_id
    for name, value in answer.headers.items():
        response.headers[name] = value
    return response


def _body_reader(max_body_bytes: int) -> BodyReader:
    """The body as Quart reads it (the same limit, timeout and errors as the direct path)."""

    async def read(_: Incoming) -> bytes:
        try:
            return await request.get_data(cache=False, as_text=False, parse_form_data=False)
        except RequestEntityTooLarge as error:
            raise too_large(max_body_bytes) from error

    return read


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
    dispatcher = Dispatcher(
        service,
        sinks=sinks,
        authenticator=Authenticator(auth or Auth()),
        admission=Admission(max_requests_in_flight),
        long_polls=Admission(max_long_polls, "sink long-polls"),
        ready=ready,
    )
    read_body = _body_reader(max_body_bytes)

    async def dispatch(path: str = "") -> Response:
        return _response(await dispatcher.respond(Incoming(request.scope, read_body)))

    # Paths no other rule takes come here, for mg's 404; so do /v1/ paths when the front door
    # cannot serve them directly (it points them at DISPATCH_PATH). mg routes on the raw path.
    app.add_url_rule(DISPATCH_PATH, "dispatch", dispatch, methods=ALL_METHODS)
    app.add_url_rule("/<path:path>", "unrouted", dispatch, methods=ALL_METHODS)
    front_door = FrontDoor(app.asgi_app, connections, DirectApi(dispatcher, max_body_bytes))
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
        return _response(error_reply(_mapped(error, max_body_bytes), media, request_id))

    return app


def _mapped(error: HTTPException, max_body_bytes: int) -> MgError:
    """Quart's and Werkzeug's own answers in mg's terms."""
    if isinstance(error, RequestEntityTooLarge):
        return too_large(max_body_bytes)
    if isinstance(error, NotFound):
        return RouteNotFound("no such path")
    if isinstance(error, WerkzeugMethodNotAllowed):
        allowed = tuple(sorted(error.valid_methods or ()))
        return MethodNotAllowed(f"{request.method} is not allowed here", allowed)
    return InvalidRequest(error.description or str(error))
