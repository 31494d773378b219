"""Handling one client request, the same whichever way it came in (``mg.api.direct`` or Quart's
catch-all in ``mg.api.app``): request id and trace, media negotiation, routing on the raw path,
the Authorization rules and the token check, readiness, admission, the body, the route's handler,
and every error in the one table. The answer is a ``Reply`` for the driver to send."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from mg.api import bodies, errors, incoming, requests, routes
from mg.api.admission import Admission, is_long_poll
from mg.api.auth import Authenticator
from mg.api.incoming import Incoming
from mg.api.instrument import ROUTE_KEY
from mg.core import log_context as context
from mg.core.trace import TraceContext, continue_or_start
from mg.errors import InvalidRequest, MgError, Unavailable
from mg.service.machines import MachineService
from mg.service.sinks import SinkReader

log = logging.getLogger("mg.api")

# Bodies larger than this are decoded in a worker thread, so the event loop keeps serving.
_DECODE_IN_THREAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer: its body encoded already, and the headers mg adds besides ``Content-Type``,
    ``Content-Length`` and ``X-Request-Id`` (``Allow``, ``Retry-After``...)."""

    status: int
    body: bytes
    media: str
    request_id: str
    headers: dict[str, str]

    def asgi_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers as Quart sent them: these names in this order, in lowercase."""
        return [
            (b"content-type", self.media.encode()),
            (b"content-length", str(len(self.body)).encode()),
            (b"x-request-id", self.request_id.encode()),
            *((name.lower().encode(), value.encode()) for name, value in self.headers.items()),
        ]


def reply(status: int, body: object, media: str, request_id: str, headers: dict[str, str]) -> Reply:
    data = b"" if status == 204 else bodies.encode(body, media)
    return Reply(status, data, media, request_id, headers)


def error_reply(error: MgError, media: str, request_id: str) -> Reply:
    return reply(
        errors.status_of(error),
        errors.error_body(error),
        media,
        request_id,
        errors.error_headers(error),
    )


class Dispatcher:
    """The client API's requests, from an ``Incoming`` to a ``Reply``."""

    def __init__(
        self,
        service: MachineService,
        *,
        sinks: SinkReader | None,
        authenticator: Authenticator,
        admission: Admission,
        long_polls: Admission,
        ready: trio.Event | None,
    ) -> None:
        self._service = service
        self._sinks = sinks
        self._authenticator = authenticator
        self._admission = admission
        self._long_polls = long_polls
        self._ready = ready

    async def respond(self, request: Incoming) -> Reply:
        request_id = requests.request_id(request.header("x-request-id"))
        trace = continue_or_start(request.header("traceparent"))
        with context.bound(trace=trace, request_id=request_id):
            answer = await self._handle(request, request_id, trace)
            log.debug(
                "%s %s answered %d",
                request.method,
                request.scope.get(ROUTE_KEY, "unmatched"),
                answer.status,
            )
            return answer

    async def _handle(self, request: Incoming, request_id: str, trace: TraceContext) -> Reply:
        request_type = bodies.media_type(request.header("content-type")) or None
        media = bodies.response_type(request.header("accept"), request_type)
        try:
            segments = routes.split_path(request.raw_path)
            route, params = routes.find(request.method, segments)
            # For the HTTP metrics (mg.api.instrument), which read it from the same scope.
            request.scope[ROUTE_KEY] = route.name
            context.set_machine(params.get("ns"), params.get("id"))
            authorization = request.header_values("authorization")
            if len(authorization) > 1:
                # Which one a proxy in front would have used is anyone's guess.
                raise InvalidRequest("the Authorization header is given more than once")
            self._authenticator.check(
                authorization[0] if authorization else None,
                ns=params.get("ns"),
                sink=params.get("sink"),
            )
            if self._ready is not None and not self._ready.is_set():
                raise Unavailable(
                    "the node is starting: Postgres does not answer yet or the schema is "
                    "being migrated"
                )
            wait = request.argument("wait")
            budget = self._long_polls if is_long_poll(route.name, wait) else self._admission
            with budget.enter():
                answer = await self._answer(request, route, params, trace)
            return reply(answer.status, answer.body, media, request_id, {})
        except MgError as error:
            return error_reply(error, media, request_id)
        except Exception:
            log.exception(
                "unexpected error handling %s %s",
                request.method,
                request.raw_path.decode("latin-1"),
            )
            failure = MgError("internal error; see the node's log for request " + request_id)
            return reply(500, errors.error_body(failure), media, request_id, {})

    async def _answer(
        self,
        request: Incoming,
        route: routes.Route,
        params: dict[str, str],
        trace: TraceContext,
    ) -> routes.Answer:
        """Read the request's body and query and run its route's handler."""
        data = await request.body()
        content_type = request.header("content-type")
        if len(data) > _DECODE_IN_THREAD:
            body = await trio.to_thread.run_sync(bodies.decode, data, content_type)
        else:
            body = bodies.decode(data, content_type)
        query = incoming.single_values(request.query_pairs())
        if route.query is not None:
            requests.only_query(query, route.query)
        call = routes.Call(
            service=self._service,
            params=params,
            query=query,
            headers=request.header_map(),
            body=body,
            trace=trace,
            sinks=self._sinks,
        )
        return await route.handler(call)
