"""The client API served straight from ASGI (``mg.api.direct``) answers exactly as through
Quart's catch-all rule, in process: the same requests go through the app once with mg's
server's ``Disconnect`` in the scope (the direct path) and once without (the front door then
hands them to Quart), and the ASGI messages sent back must be the same. A stub service stands
in for the machines; a client that goes away cancels the request."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import unquote

import msgpack
import pytest
import trio

from mg.api.app import create_app
from mg.connections import DISCONNECT, Disconnect
from mg.errors import MachineAlreadyExists, MachineNotFound, NamespaceNotFound
from mg.settings import Auth, Token
from tests.support.logs import captured_logs

LIMIT = 1024
M = "/v1/namespaces/test/machines"
JSON = (b"content-type", b"application/json")


class StubService:
    """The few operations the requests below reach; ``slow`` calls wait until cancelled."""

    def namespace(self, ns: str) -> Any:
        if ns != "test":
            raise NamespaceNotFound(f"namespace {ns!r} is not configured")
        return SimpleNamespace(default_processing_timeout=10.0)

    async def start(self, ns: str, machine_id: str, args: Any, deadline: Any, trace: Any) -> None:
        self.namespace(ns)
        if machine_id == "taken":
            raise MachineAlreadyExists(f"machine {machine_id!r} already exists")
        if machine_id == "broken":
            raise RuntimeError("a bug")

    async def call(self, ns: str, ref: Any, args: Any, *rest: Any) -> Any:
        if args == "slow":
            await trio.sleep_forever()
        return args

    async def get(self, ns: str, ref: Any, selection: Any) -> Any:
        self.namespace(ns)
        raise MachineNotFound(f"machine {ref.id!r} does not exist ({selection})")

    async def remove(self, ns: str, machine_id: str, deadline: Any) -> None:
        self.namespace(ns)


@dataclass
class Request:
    method: str
    target: str
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: tuple[bytes, ...] = ()


def _cases() -> list[Request]:
    def post(
        target: str, *body: bytes, headers: tuple[tuple[bytes, bytes], ...] = (JSON,)
    ) -> Request:
        length = sum(map(len, body))
        return Request("POST", target, (*headers, (b"content-length", str(length).encode())), body)

    args = b'{"args": {"a": [1, 2.5, "x"]}}'
    return [
        post(M + "/m1/start", args),
        post(M + "/taken/start", args),
        post(M + "/broken/start", args),
        post(M + "/m1/call", b'{"args": 5', b', "range": {"limit": 0}}'),
        post(
            M + "/m1/call",
            msgpack.packb({"args": b"\x00\xff"}),
            headers=((b"content-type", b"application/msgpack"),),
        ),
        post(M + "/m1/call", b'{"args": "' + b"x" * (70 * 1024) + b'"}'),
        post(M + "/m1/start", b"x" * (LIMIT + 1)),
        post(M + "/m1/start", b"x" * 600, b"y" * 600),
        Request("POST", M + "/m1/start", (JSON, (b"content-length", b"99999"))),
        Request(
            "POST",
            M + "/m1/start",
            (JSON, (b"transfer-encoding", b"chunked")),
            (b"x" * 700, b"x" * 700),
        ),
        post(M + "/m1/start", b'{"args": '),
        post(M + "/m1/start", b"[1]"),
        post(M + "/m1/start", b'{"nope": 1}'),
        post(M + "/m1/start", b"hello", headers=((b"content-type", b"text/plain"),)),
        post(M + "/m1/start", b"hello", headers=()),
        post(
            M + "/m1/call",
            b'{"args": 1}',
            headers=(JSON, (b"x-request-timeout", b"abc"), (b"x-request-timeout", b"100")),
        ),
        post(
            M + "/m1/call",
            b'{"args": 1}',
            headers=(JSON, (b"x-request-timeout", b"100"), (b"x-request-timeout", b"abc")),
        ),
        post(M + "/m1/call", b'{"args": 1}', headers=(JSON, (b"X-Request-Deadline", b""))),
        Request("GET", M + "/m1?limit=0&after=1"),
        Request("GET", M + "/m1?limit=1&limit=2"),
        Request("GET", M + "/m1?after=1&limit=1&limit=2&after=3"),
        Request("GET", M + "/m1?nope=1"),
        Request("GET", M + "/m1?direction=%FF%zz+a;b"),
        Request("GET", M + "/m1?limit=&after"),
        Request("GET", M + "/m1?direction=back%77ard&limit=+3"),
        Request("GET", M + "/a%2Fb%0Ac"),
        Request("GET", M + "/%FF"),
        Request("GET", M + "?limit=0"),
        Request("GET", "/v1/namespaces/nope/machines/x"),
        Request("GET", "/v1/sinks/main/events?wait=1&after=0"),
        Request("GET", "/v1/sinks/main/events?wait=nope"),
        Request("GET", "/v1/sinks/main"),
        Request("GET", "/v1/"),
        Request("GET", "/v1/nothing/here"),
        Request("PUT", M + "/m1"),
        Request("HEAD", M + "/m1"),
        Request("OPTIONS", M + "/m1"),
        Request("FOO", M + "/m1"),
        Request("get", M + "/m1"),
        Request("DELETE", M + "/m1"),
        Request("GET", M + "/m1", ((b"accept", b"application/msgpack"),)),
        Request("GET", M + "/m1", ((b"authorization", b"a"), (b"Authorization", b"b"))),
        Request("GET", M + "/m1", ((b"x-request-id", b"bad id"),)),
        Request(
            "GET",
            M + "/m1",
            ((b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),),
        ),
    ]


async def _exchange(app: Any, request: Request, *, direct: bool) -> list[dict[str, Any]]:
    path, _, query = request.target.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.1"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"mg"), (b"x-request-id", b"fixed-id"), *request.headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8022),
        "extensions": {DISCONNECT: Disconnect()} if direct else {},
    }
    messages = [
        {"type": "http.request", "body": chunk, "more_body": n + 1 < len(request.body)}
        for n, chunk in enumerate(request.body)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    with trio.fail_after(5):
        await app(scope, receive, send)
    # hypercorn drops body messages that carry nothing and more to come (Quart sends one).
    return [m for m in sent if m.get("body", b"x") != b"" or not m.get("more_body", False)]


def _node_app(auth: Auth | None = None) -> Any:
    service = cast(Any, StubService())
    return create_app(service, max_body_bytes=LIMIT, auth=auth, max_long_polls=1)


def _text(messages: list[dict[str, Any]]) -> str:
    start = messages[0]
    lines = [str(start["status"])] + [f"{n.decode()}: {v.decode()}" for n, v in start["headers"]]
    return (
        "\n".join(lines)
        + "\n\n"
        + b"".join(m.get("body", b"") for m in messages[1:]).decode("latin-1")
    )


@pytest.mark.parametrize("request_", _cases(), ids=lambda r: f"{r.method} {r.target[:60]}")
async def test_the_direct_path_answers_as_quart_did(request_: Request) -> None:
    app = _node_app()
    with captured_logs(logging.ERROR) as lines:
        through_quart = await _exchange(app, request_, direct=False)
        quart_errors = [line.get("message") for line in lines()]
    with captured_logs(logging.ERROR) as lines:
        direct = await _exchange(app, request_, direct=True)
        direct_errors = [line.get("message") for line in lines()]
    if b"bad id" in dict(request_.headers).get(b"x-request-id", b""):
        # A fresh request id each time: compare the rest.
        for messages in (through_quart, direct):
            start = messages[0]
            start["headers"] = [
                (n, b"new" if n == b"x-request-id" else v) for n, v in start["headers"]
            ]
    assert _text(direct) == _text(through_quart)
    assert direct == through_quart
    assert direct_errors == quart_errors


async def test_an_unexpected_error_is_500_and_logged_on_both_paths() -> None:
    app = _node_app()
    request = _cases()[2]
    for direct in (False, True):
        with captured_logs(logging.ERROR) as lines:
            messages = await _exchange(app, request, direct=direct)
        assert messages[0]["status"] == 500
        assert json.loads(messages[1]["body"])["error"] == "internal_error"
        assert [line.get("message") for line in lines()] == [
            f"unexpected error handling POST {M}/broken/start"
        ]


async def test_tokens_are_checked_the_same_way_on_both_paths() -> None:
    token = Token(name="ops", digest=b"\x00" * 32, namespaces=("test",), sinks=())
    app = _node_app(Auth(enabled=True, tokens=(token,)))
    for request in (
        Request("GET", M + "/m1"),
        Request("GET", M + "/m1", ((b"authorization", b"Bearer nope"),)),
    ):
        assert await _exchange(app, request, direct=True) == await _exchange(
            app, request, direct=False
        )
        assert (await _exchange(app, request, direct=True))[0]["status"] == 401


async def test_a_request_whose_client_goes_away_is_cancelled_unanswered() -> None:
    app = _node_app()
    disconnect = Disconnect()
    body = [{"type": "http.request", "body": b'{"args": "slow"}', "more_body": False}]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        if body:
            return body.pop(0)
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": M + "/m1/call",
        "raw_path": (M + "/m1/call").encode(),
        "query_string": b"",
        "headers": [JSON, (b"content-length", b"16")],
        "client": ("127.0.0.1", 40001),
        "extensions": {DISCONNECT: disconnect},
    }
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app, scope, receive, send)
            await trio.sleep(0.1)
            assert not sent  # the call waits
            disconnect.set()
    assert sent == []


async def _read_body_then(
    app: Any, first: list[dict[str, Any]], then: Callable[[Disconnect], Awaitable[None]]
) -> list[Any]:
    disconnect = Disconnect()
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        if first:
            return first.pop(0)
        await then(disconnect)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": M + "/m1/start",
        "raw_path": (M + "/m1/start").encode(),
        "query_string": b"",
        "headers": [JSON, (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 40002),
        "extensions": {DISCONNECT: disconnect},
    }
    with trio.fail_after(5):
        await app(scope, receive, send)
    return sent


async def test_a_client_gone_while_its_body_arrives_is_cancelled_unanswered() -> None:
    async def gone(disconnect: Disconnect) -> None:
        disconnect.set()

    async def message_only(disconnect: Disconnect) -> None:
        pass  # the message comes without the server's call back: cancelled all the same

    for then in (gone, message_only):
        first = [{"type": "http.request", "body": b'{"ar', "more_body": True}]
        assert await _read_body_then(_node_app(), first, then) == []
