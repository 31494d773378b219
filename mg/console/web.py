"""What every console page shares: the parts it reads (``Console``), the gate every request
passes (readiness, the token cookie, CSRF on POSTs), errors shown in words with the API's
status codes, and the headers of every answer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import trio
from quart import Response, render_template, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from mg.api import errors, requests
from mg.api.admission import Admission
from mg.api.auth import Authenticator
from mg.api.operator import mark_route
from mg.console.reads import ConsoleReads
from mg.console.security import (
    COOKIE_PATH,
    CSRF_COOKIE,
    CSRF_FIELD,
    SECURITY_HEADERS,
    TOKEN_COOKIE,
    bearer,
    check_csrf,
    new_csrf_token,
)
from mg.core import log_context as context
from mg.core.clock import utc_now
from mg.core.trace import TraceContext, continue_or_start
from mg.errors import MgError, PayloadTooLarge, Unauthorized, Unavailable
from mg.service.machines import MachineService
from mg.service.sink_verify import ChainSource
from mg.service.sinks import SinkReader

log = logging.getLogger("mg.console")


@dataclass(frozen=True, slots=True)
class Console:
    """The console's view of a node: the same service and sink reader as the API."""

    service: MachineService
    sinks: SinkReader
    chain: ChainSource
    reads: ConsoleReads
    authenticator: Authenticator
    namespaces: tuple[str, ...]
    sink_names: tuple[str, ...]
    ready: trio.Event | None = None
    # Bounds like the API's (limits.max_requests_in_flight, limits.max_long_polls), for the
    # console's requests: past them, 429 in words.
    admission: Admission = field(default_factory=lambda: Admission(1024))
    long_polls: Admission = field(default_factory=lambda: Admission(256, "sink long-polls"))


@dataclass(slots=True)
class View:
    """One console request as a page handler sees it."""

    console: Console
    token: str | None
    csrf: str
    trace: TraceContext
    now: datetime
    form: MultiDict[str, str] = field(default_factory=MultiDict)

    def check(self, *, ns: str | None = None, sink: str | None = None) -> None:
        """The API's check for this namespace or sink (``Forbidden`` when not allowed)."""
        self.console.authenticator.check(bearer(self.token), ns=ns, sink=sink)

    async def render(self, template: str, http_status: int = 200, **values: Any) -> Response:
        text = await render_template(
            template,
            csrf=self.csrf,
            csrf_field=CSRF_FIELD,
            now=self.now,
            auth_on=self.console.authenticator.enabled,
            **values,
        )
        return Response(text, status=http_status, content_type="text/html; charset=utf-8")


Handler = Callable[..., Awaitable[Response]]


def redirect(location: str) -> Response:
    """303: after a POST the browser GETs the page (so a reload never repeats an action)."""
    response = Response("", status=303)
    response.headers["Location"] = location
    return response


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a console path only, never another site."""
    if target and target.startswith("/ui/") and not target.startswith("//"):
        return target
    return "/ui/"


def page(
    console: Console, name: str, handler: Handler, *, login: bool = True, waits: bool = False
) -> Handler:
    """Wrap a page or action: the route's name for the metrics, the log context, the gate and
    the error page. ``login=False`` for the login page itself; ``waits`` for the long-polled
    live feed, admitted in the long-polls' budget."""

    async def endpoint(**params: Any) -> Response:
        mark_route(f"console_{name}")
        request_id = requests.request_id(request.headers.get("x-request-id"))
        trace = continue_or_start(request.headers.get("traceparent"))
        cookie_csrf = request.cookies.get(CSRF_COOKIE)
        view = View(
            console,
            request.cookies.get(TOKEN_COOKIE) or None,
            cookie_csrf or new_csrf_token(),
            trace,
            utc_now(),
        )
        with context.bound(trace=trace, request_id=request_id):
            admission = console.long_polls if waits else console.admission
            response = await _answer(
                console, view, handler, params, cookie_csrf, login=login, admission=admission
            )
            log.debug("%s console_%s answered %d", request.method, name, response.status_code)
        response.headers["X-Request-Id"] = request_id
        for header, value in SECURITY_HEADERS.items():
            response.headers[header] = value
        response.headers.setdefault("Cache-Control", "no-store")
        if cookie_csrf != view.csrf:
            response.set_cookie(
                CSRF_COOKIE,
                view.csrf,
                httponly=True,
                samesite="Strict",
                secure=request.scheme == "https",
                path=COOKIE_PATH,
            )
        return response

    return endpoint


async def _answer(
    console: Console,
    view: View,
    handler: Handler,
    params: dict[str, Any],
    cookie_csrf: str | None,
    *,
    login: bool,
    admission: Admission,
) -> Response:
    try:
        if request.method == "POST":
            try:
                view.form = await request.form
            except RequestEntityTooLarge as error:
                raise PayloadTooLarge("the form is larger than this node takes") from error
            check_csrf(cookie_csrf, view.form.get(CSRF_FIELD))
        if login and console.authenticator.enabled:
            try:
                view.check()
            except Unauthorized:
                if request.method == "GET":
                    return redirect("/ui/login?next=" + quote(request.full_path.rstrip("?")))
                raise
        if console.ready is not None and not console.ready.is_set():
            raise Unavailable(
                "the node is starting: Postgres does not answer yet or the schema is being migrated"
            )
        with admission.enter():
            return await handler(view, **params)
    except MgError as error:
        return await error_page(view, error)
    except Exception:
        log.exception("unexpected error in the console: %s %s", request.method, request.path)
        failure = MgError("internal error; see the node's log")
        return await error_page(view, failure)


async def error_page(view: View, error: MgError, status: int | None = None) -> Response:
    """An error in words, with the status the API gives for it (the one error table)."""
    code = status or errors.status_of(error)
    response = await view.render("error.html", code, error=error, status=code)
    for name, value in errors.error_headers(error).items():
        if name != "Connection":
            response.headers[name] = value
    return response
