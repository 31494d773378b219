"""The client API's operations: each handler reads its request, calls the machine service and
shapes the answer. Routing is done on the raw path, segment by segment, so a machine id may
hold any character, ``/`` included, when percent-encoded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from mg.api import requests
from mg.core.clock import format_time
from mg.core.deadline import Deadline
from mg.core.model import Machine, Retry, Status
from mg.core.shapes import bounds_value, content_value, event_value, range_value
from mg.core.sink import sink_event_value
from mg.core.trace import TraceContext
from mg.errors import InvalidRequest, MethodNotAllowed, RouteNotFound, SinkNotFound
from mg.service.machines import MachineService, Ref
from mg.service.sinks import SinkReader

DEFAULT_SEARCH_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Call:
    """One client request, as the handlers see it."""

    service: MachineService
    params: Mapping[str, str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    trace: TraceContext
    sinks: SinkReader | None = None

    def ref(self) -> Ref:
        if "tag" in self.params:
            return Ref(tag=requests.machine_id(self.params["tag"], "tag"))
        return Ref(id=requests.machine_id(self.params["id"]))

    def deadline(self) -> Deadline:
        ns = self.params["ns"]
        return requests.deadline(
            self.headers, self.service.namespace(ns).default_processing_timeout
        )


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any = None


Handler = Callable[[Call], Awaitable[Answer]]


def machine_value(machine: Machine) -> dict[str, Any]:
    record = machine.record
    return {
        "ns": record.ns,
        "id": record.id,
        "status": record.status.value,
        "failure": (
            {"reason": record.failure_reason} if record.failure_reason is not None else None
        ),
        "history": [event_value(event) for event in machine.history],
        "history_range": range_value(machine.history_range),
        "history_bounds": bounds_value(machine.history_bounds),
        "aux_state": content_value(record.aux_state),
        "timer": format_time(record.timer.fire_at) if record.timer is not None else None,
        "tags": list(machine.tags),
        "retry": retry_value(record.retry) if record.status is Status.RETRYING else None,
    }


def retry_value(retry: Retry | None) -> dict[str, Any] | None:
    """The contract's ``retry`` member (v1.1): what is retried and why its last attempt failed."""
    if retry is None:
        return None
    return {
        "subject": retry.subject,
        "attempt": retry.attempt,
        "next_at": format_time(retry.next_at),
        "last_error": retry.reason,
    }


async def start(call: Call) -> Answer:
    requests.only_keys(call.body, ("args",))
    ns = call.params["ns"]
    machine_id = requests.machine_id(call.params["id"])
    await call.service.start(ns, machine_id, call.body.get("args"), call.deadline(), call.trace)
    return Answer(201, {"ns": ns, "id": machine_id})


async def call_machine(call: Call) -> Answer:
    requests.only_keys(call.body, ("args", "range"))
    selection = requests.body_range(call.body)
    response = await call.service.call(
        call.params["ns"], call.ref(), call.body.get("args"), selection, call.deadline(), call.trace
    )
    return Answer(200, {"response": response})


async def repair(call: Call) -> Answer:
    requests.only_keys(call.body, ("args", "range"))
    selection = requests.body_range(call.body)
    response = await call.service.repair(
        call.params["ns"], call.ref(), call.body.get("args"), selection, call.deadline(), call.trace
    )
    return Answer(200, {"response": response})


async def simple_repair(call: Call) -> Answer:
    requests.only_keys(call.body, ())
    await call.service.simple_repair(call.params["ns"], call.ref(), call.deadline())
    return Answer(200, {})


async def modernize(call: Call) -> Answer:
    requests.only_keys(call.body, ("range",))
    selection = requests.body_range(call.body)
    count = await call.service.modernize(
        call.params["ns"], call.ref(), selection, call.deadline(), call.trace
    )
    return Answer(200, {"modernized": count})


async def notify(call: Call) -> Answer:
    requests.only_keys(call.body, ("args", "range"))
    selection = requests.body_range(call.body)
    found = await call.service.notify(
        call.params["ns"], call.ref(), call.body.get("args"), selection, call.trace
    )
    return Answer(202, {"id": str(found)})


async def get(call: Call) -> Answer:
    selection = requests.query_range(call.query)
    machine = await call.service.get(call.params["ns"], call.ref(), selection)
    return Answer(200, machine_value(machine))


async def remove(call: Call) -> Answer:
    machine_id = requests.machine_id(call.params["id"])
    await call.service.remove(call.params["ns"], machine_id, call.deadline())
    return Answer(204)


async def search(call: Call) -> Answer:
    page = await call.service.search(
        call.params["ns"],
        requests.query_status(call.query),
        requests.query_limit(call.query, DEFAULT_SEARCH_LIMIT),
        requests.query_cursor(call.query),
    )
    return Answer(
        200,
        {
            "machines": [
                {
                    "id": row.id,
                    "status": row.status.value,
                    "timer": format_time(row.timer) if row.timer is not None else None,
                    "updated_at": format_time(row.updated_at),
                }
                for row in page.machines
            ],
            "next_cursor": page.next_cursor,
        },
    )


async def sink_events(call: Call) -> Answer:
    name = call.params["sink"]
    if call.sinks is None:
        raise SinkNotFound(f"sink {name!r} is not configured")
    selection = requests.query_range(call.query)
    found = await call.sinks.read(name, selection, requests.query_wait(call.query))
    return Answer(200, {"events": [sink_event_value(event) for event in found]})


async def sink_bounds(call: Call) -> Answer:
    name = call.params["sink"]
    if call.sinks is None:
        raise SinkNotFound(f"sink {name!r} is not configured")
    bounds = await call.sinks.bounds(name)
    return Answer(
        200,
        {"sink": name, "first": bounds.first, "last": bounds.last, "anchor": bounds.anchor.hex()},
    )


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: tuple[str, ...]
    handler: Handler
    name: str
    # The query parameters it takes; others are refused (None: not checked).
    query: tuple[str, ...] | None = None

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.pattern):
            return None
        params: dict[str, str] = {}
        for want, got in zip(self.pattern, segments, strict=True):
            if want.startswith("{"):
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


def _routes() -> list[Route]:
    table: list[Route] = [
        Route(
            "POST", ("v1", "namespaces", "{ns}", "machines", "{id}", "start"), start, "start", ()
        ),
        Route("DELETE", ("v1", "namespaces", "{ns}", "machines", "{id}"), remove, "remove", ()),
        Route(
            "GET",
            ("v1", "namespaces", "{ns}", "machines"),
            search,
            "search",
            ("status", "limit", "cursor"),
        ),
        Route(
            "GET",
            ("v1", "sinks", "{sink}", "events"),
            sink_events,
            "sink_events",
            ("after", "limit", "direction", "wait"),
        ),
        Route("GET", ("v1", "sinks", "{sink}"), sink_bounds, "sink", ()),
    ]
    # Every machine path but start and DELETE also works as /tags/{tag}.
    for base, key in (("machines", "{id}"), ("tags", "{tag}")):
        prefix = ("v1", "namespaces", "{ns}", base, key)
        table += [
            Route("GET", prefix, get, "get", ("after", "limit", "direction")),
            Route("POST", (*prefix, "call"), call_machine, "call", ()),
            Route("POST", (*prefix, "repair"), repair, "repair", ()),
            Route("POST", (*prefix, "simple-repair"), simple_repair, "simple_repair", ()),
            Route("POST", (*prefix, "modernize"), modernize, "modernize", ()),
            Route("POST", (*prefix, "notify"), notify, "notify", ()),
        ]
    return table


ROUTES = _routes()


def split_path(raw_path: bytes) -> list[str]:
    """Path segments, each percent-decoded on its own (so ``%2F`` stays inside a segment)."""
    try:
        text = raw_path.decode("ascii")
    except UnicodeDecodeError as error:
        raise InvalidRequest("the path must be ASCII (percent-encode other characters)") from error
    parts = text.strip("/").split("/")
    try:
        return [unquote(part, encoding="utf-8", errors="strict") for part in parts]
    except UnicodeDecodeError as error:
        raise InvalidRequest("a path segment is not valid UTF-8 once decoded") from error


def find(method: str, segments: list[str]) -> tuple[Route, dict[str, str]]:
    """The route for a request and its path parameters."""
    allowed: list[str] = []
    for route in ROUTES:
        params = route.match(segments)
        if params is None:
            continue
        if route.method == method:
            return route, params
        allowed.append(route.method)
    if allowed:
        raise MethodNotAllowed(f"{method} is not allowed here", tuple(allowed))
    raise RouteNotFound("no such path")
