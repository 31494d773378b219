"""The client API (PROTOCOL section 3) as pure values: each operation is an ``Exchange``, the
request to send and the function that reads its answer.

The async and the sync client are two thin transports over these exchanges, so every rule
(paths, headers, bodies, deadlines, errors, result shapes) is written once, here, and can be
tested without a network.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

from mg.client.answers import (
    Answer,
    decode,
    machine_from,
    search_page_from,
    sink_bounds_from,
    sink_events_from,
    string,
)
from mg.client.errors import UnexpectedAnswer, error_from_answer
from mg.client.results import Address, Machine, SearchPage, SinkBounds, SinkEvent, Tag
from mg.core import values
from mg.core.clock import format_time, utc_now
from mg.core.model import Range, Status
from mg.core.shapes import ShapeError, range_value

T = TypeVar("T")
Encoding = Literal["msgpack", "json"]

MSGPACK = "application/msgpack"
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Request:
    """What a transport sends. ``timeout`` is how long to wait for the whole answer."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class Exchange(Generic[T]):
    request: Request
    read: Callable[[Answer], T]


@dataclass(frozen=True, slots=True)
class Options:
    """Per-request options: a deadline (absolute) or a timeout (seconds, relative), not
    both, and a W3C ``traceparent`` to continue."""

    deadline: datetime | None = None
    timeout: float | None = None
    traceparent: str | None = None

    def __post_init__(self) -> None:
        if self.deadline is not None and self.timeout is not None:
            raise ValueError("give a deadline or a timeout, not both")
        if self.deadline is not None and self.deadline.tzinfo is None:
            raise ValueError("the deadline must be an aware datetime (e.g. in UTC)")
        if self.timeout is not None and self.timeout < 0:
            raise ValueError("the timeout must not be negative")


def segment(text: str) -> str:
    """One path segment: everything percent-encoded, ``/`` included."""
    return quote(text, safe="")


def machine_path(ns: str, machine: Address) -> str:
    if isinstance(machine, Tag):
        return f"/v1/namespaces/{segment(ns)}/tags/{segment(machine.name)}"
    return f"/v1/namespaces/{segment(ns)}/machines/{segment(machine)}"


def range_query(selection: Range | None) -> dict[str, str]:
    if selection is None:
        return {}
    query = {"direction": selection.direction.value}
    if selection.after is not None:
        query["after"] = str(selection.after)
    if selection.limit is not None:
        query["limit"] = str(selection.limit)
    return query


def _nothing(body: Any) -> None:
    return None


class Exchanges:
    """Builds the exchange of every operation.

    ``default_timeout`` is sent with requests that give neither a deadline nor a timeout
    (``None`` leaves mg's namespace default). A transport waits for an answer until the
    request's deadline plus ``grace`` (so mg's own ``deadline_exceeded`` arrives first), or
    ``http_timeout`` when the request has no deadline. ``token`` is sent with every request
    as ``Authorization: Bearer <token>`` (for a node with ``[auth]`` enabled).
    """

    def __init__(
        self,
        *,
        encoding: Encoding = "msgpack",
        default_timeout: float | None = None,
        http_timeout: float = 120.0,
        grace: float = 5.0,
        token: str | None = None,
    ) -> None:
        if encoding not in ("msgpack", "json"):
            raise ValueError('encoding must be "msgpack" or "json"')
        self.encoding = encoding
        self.media = MSGPACK if encoding == "msgpack" else JSON
        self.default_timeout = default_timeout
        self.http_timeout = http_timeout
        self.grace = grace
        self.token = token

    # --- shared parts ----------------------------------------------------------------------

    def encode(self, body: Mapping[str, Any]) -> bytes:
        if self.encoding == "msgpack":
            return values.pack(dict(body))
        return json.dumps(values.to_json(dict(body)), separators=(",", ":")).encode()

    def _headers(self, options: Options, with_body: bool) -> tuple[dict[str, str], float]:
        """Headers of a request and how long its transport waits for the answer."""
        headers = {"accept": self.media}
        if with_body:
            headers["content-type"] = self.media
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        if options.traceparent:
            headers["traceparent"] = options.traceparent
        timeout = options.timeout
        if options.deadline is None and timeout is None:
            timeout = self.default_timeout
        if options.deadline is not None:
            headers["x-request-deadline"] = format_time(options.deadline)
            left = max(0.0, (options.deadline - utc_now()).total_seconds())
            return headers, left + self.grace
        if timeout is not None:
            headers["x-request-timeout"] = str(math.ceil(timeout * 1000))
            return headers, timeout + self.grace
        return headers, self.http_timeout

    def _exchange(
        self,
        method: str,
        path: str,
        options: Options,
        expected: int,
        convert: Callable[[Any], T],
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        extra_wait: float = 0.0,
    ) -> Exchange[T]:
        headers, wait = self._headers(options, body is not None)
        request = Request(
            method=method,
            path=path,
            params=dict(params or {}),
            headers=headers,
            content=self.encode(body) if body is not None else None,
            timeout=wait + extra_wait,
        )

        def read(answer: Answer) -> T:
            found = decode(answer)
            if answer.status != expected:
                raise error_from_answer(answer.status, answer.headers, found)
            try:
                return convert(found)
            except (ShapeError, ValueError, KeyError, TypeError, AttributeError) as error:
                raise UnexpectedAnswer(
                    f"mg's answer to {method} {path} breaks the contract: {error!r}",
                    status=answer.status,
                ) from error

        return Exchange(request, read)

    @staticmethod
    def _with_range(body: dict[str, Any], selection: Range | None) -> dict[str, Any]:
        if selection is not None:
            body["range"] = range_value(selection)
        return body

    # --- operations ------------------------------------------------------------------------

    def start(self, ns: str, machine_id: str, args: Any, options: Options) -> Exchange[None]:
        path = machine_path(ns, machine_id) + "/start"
        return self._exchange("POST", path, options, 201, _nothing, body={"args": args})

    def call(
        self, ns: str, machine: Address, args: Any, selection: Range | None, options: Options
    ) -> Exchange[Any]:
        body = self._with_range({"args": args}, selection)
        path = machine_path(ns, machine) + "/call"
        return self._exchange("POST", path, options, 200, lambda b: b["response"], body=body)

    def repair(
        self, ns: str, machine: Address, args: Any, selection: Range | None, options: Options
    ) -> Exchange[Any]:
        body = self._with_range({"args": args}, selection)
        path = machine_path(ns, machine) + "/repair"
        return self._exchange("POST", path, options, 200, lambda b: b["response"], body=body)

    def simple_repair(self, ns: str, machine: Address, options: Options) -> Exchange[None]:
        path = machine_path(ns, machine) + "/simple-repair"
        return self._exchange("POST", path, options, 200, _nothing, body={})

    def notify(
        self, ns: str, machine: Address, args: Any, selection: Range | None, options: Options
    ) -> Exchange[str]:
        body = self._with_range({"args": args}, selection)
        path = machine_path(ns, machine) + "/notify"
        return self._exchange(
            "POST", path, options, 202, lambda b: string(b["id"], "id"), body=body
        )

    def get(
        self, ns: str, machine: Address, selection: Range | None, options: Options
    ) -> Exchange[Machine]:
        path = machine_path(ns, machine)
        return self._exchange(
            "GET", path, options, 200, machine_from, params=range_query(selection)
        )

    def remove(self, ns: str, machine_id: str, options: Options) -> Exchange[None]:
        return self._exchange("DELETE", machine_path(ns, machine_id), options, 204, _nothing)

    def modernize(
        self, ns: str, machine: Address, selection: Range | None, options: Options
    ) -> Exchange[int]:
        body = self._with_range({}, selection)
        path = machine_path(ns, machine) + "/modernize"
        return self._exchange("POST", path, options, 200, lambda b: int(b["modernized"]), body=body)

    def search(
        self,
        ns: str,
        status: Status | str | None,
        limit: int | None,
        cursor: str | None,
        options: Options,
    ) -> Exchange[SearchPage]:
        params: dict[str, str] = {}
        if status is not None:
            params["status"] = Status(status).value
        if limit is not None:
            params["limit"] = str(limit)
        if cursor is not None:
            params["cursor"] = cursor
        path = f"/v1/namespaces/{segment(ns)}/machines"
        return self._exchange("GET", path, options, 200, search_page_from, params=params)

    def read_sink(
        self, sink: str, selection: Range | None, wait: float | None, options: Options
    ) -> Exchange[tuple[SinkEvent, ...]]:
        params = range_query(selection)
        if wait is not None:
            if wait < 0:
                raise ValueError("wait must not be negative")
            params["wait"] = f"{wait:g}"
        path = f"/v1/sinks/{segment(sink)}/events"
        # A long poll may hold the answer for the whole wait: the transport waits that longer.
        return self._exchange(
            "GET", path, options, 200, sink_events_from, params=params, extra_wait=wait or 0.0
        )

    def sink_bounds(self, sink: str, options: Options) -> Exchange[SinkBounds]:
        path = f"/v1/sinks/{segment(sink)}"
        return self._exchange("GET", path, options, 200, sink_bounds_from)

    def health(self, which: Literal["live", "ready"], options: Options) -> Exchange[bool]:
        """``True`` on ``200``, ``False`` on ``503``; anything else is an error."""
        headers, wait = self._headers(options, False)

        def read(answer: Answer) -> bool:
            if answer.status in (200, 503):
                return answer.status == 200
            raise error_from_answer(answer.status, answer.headers, decode(answer))

        return Exchange(Request("GET", f"/health/{which}", headers=headers, timeout=wait), read)

    def metrics(self, options: Options) -> Exchange[str]:
        headers, wait = self._headers(options, False)
        headers["accept"] = "text/plain"

        def read(answer: Answer) -> str:
            if answer.status != 200:
                raise error_from_answer(answer.status, answer.headers, decode(answer))
            return answer.content.decode("utf-8", errors="replace")

        return Exchange(Request("GET", "/metrics", headers=headers, timeout=wait), read)
