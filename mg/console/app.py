"""Mounting the console on the node's Quart app: its routes under ``/ui/``, its templates
(Jinja2, autoescaped: every template is ``.html``) and its static files, all in the package."""

from __future__ import annotations

from pathlib import Path

from quart import Response, request, send_from_directory
from quart_trio import QuartTrio

from mg.api.operator import ALL_METHODS
from mg.console import actions, pages, render
from mg.console.web import Console, Handler, View, page, redirect
from mg.errors import MethodNotAllowed, RouteNotFound

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_FILES = frozenset(path.name for path in STATIC.iterdir() if path.is_file())


async def _static(view: View, name: str) -> Response:
    if name not in STATIC_FILES:
        raise RouteNotFound(f"no static file {name!r}")
    response = await send_from_directory(STATIC, name)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


async def _not_found(view: View, rest: str = "") -> Response:
    raise RouteNotFound("the console has no such page")


async def _home(view: View) -> Response:
    return redirect("/ui/")


def _only(methods: tuple[str, ...], handler: Handler) -> Handler:
    async def checked(view: View, **params: str) -> Response:
        if request.method not in methods:
            raise MethodNotAllowed(f"{request.method} is not allowed here", methods)
        return await handler(view, **params)

    return checked


def add_console(app: QuartTrio, console: Console) -> None:
    """Every console route; Werkzeug prefers these paths to the API's catch-all, having more
    fixed parts."""
    app.template_folder = str(TEMPLATES)
    env = app.jinja_env
    env.filters["json"] = render.as_json
    env.filters["utc"] = render.utc
    env.filters["ago"] = render.ago
    env.filters["status_class"] = render.status_class
    env.globals["machine_path"] = render.machine_path
    env.globals["search_path"] = render.search_path
    env.globals["segment"] = render.segment

    def rule(
        path: str,
        name: str,
        handler: Handler,
        methods: tuple[str, ...],
        *,
        login: bool = True,
        waits: bool = False,
    ) -> None:
        endpoint = page(console, name, _only(methods, handler), login=login, waits=waits)
        app.add_url_rule(path, f"console_{name}", endpoint, methods=ALL_METHODS)

    get, post = ("GET", "HEAD"), ("POST",)
    rule("/ui", "home", _home, get, login=False)
    rule("/ui/", "overview", pages.overview, get)
    rule("/ui/login", "login", pages.login, ("GET", "HEAD", "POST"), login=False)
    rule("/ui/logout", "logout", pages.logout, post, login=False)
    rule("/ui/static/<name>", "static", _static, get, login=False)
    rule("/ui/namespaces/<ns>/machines", "search", pages.search, get)
    rule("/ui/namespaces/<ns>/machines/<path:machine_id>", "machine", pages.machine, get)
    rule("/ui/namespaces/<ns>/actions/<action>", "action", actions.act, post)
    rule("/ui/namespaces/<ns>/bulk-simple-repair", "bulk", actions.bulk_simple_repair, post)
    rule("/ui/sinks/<name>", "sink", pages.sink, get)
    rule("/ui/sinks/<name>/events", "sink_events", pages.sink_events, get, waits=True)
    rule("/ui/<path:rest>", "not_found", _not_found, ("GET", "HEAD", "POST"), login=False)
