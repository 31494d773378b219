"""How mg's server queues ASGI messages for a request's app (``mg.http_server._TaskGroup``), in
process: the scope carries a ``Disconnect`` that calls back at once; queueing never waits on an
app that asked for the call back or that has returned, so an app that answers without reading a
streamed body cannot leave hypercorn's reader (or its own last send) waiting forever."""

from __future__ import annotations

from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.utils import wrap_app

from mg.connections import DISCONNECT, Disconnect
from mg.http_server import _TaskGroup

BODY: Any = {"type": "http.request", "body": b"x", "more_body": True}
GONE: Any = {"type": "http.disconnect"}


def _scope() -> Any:
    return {"type": "http", "extensions": {}}


async def test_the_scope_carries_a_disconnect_that_calls_back_when_queued() -> None:
    config = Config()
    scope = _scope()
    cancelled = trio.Event()
    received: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        with trio.CancelScope() as request:
            scope["extensions"][DISCONNECT].when_set(request.cancel)
            received.append(await receive())
            await trio.sleep_forever()
        cancelled.set()

    async def send(message: Any) -> None:
        pass

    with trio.fail_after(5):
        async with _TaskGroup() as group:
            put = await group.spawn_app(wrap_app(app, 0, "asgi"), config, scope, send)
            assert isinstance(scope["extensions"][DISCONNECT], Disconnect)
            await put(BODY)
            while not received:
                await trio.sleep(0.01)
            await put(GONE)
            await cancelled.wait()
    assert received == [BODY]


async def test_a_full_queue_never_holds_up_the_end_of_a_request_nobody_reads() -> None:
    config = Config()
    scope = _scope()
    answered = trio.Event()
    returned = trio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        # Answers without reading the body (an early 404), as the direct path does.
        with trio.CancelScope() as request:
            scope["extensions"][DISCONNECT].when_set(request.cancel)
            await answered.wait()
        returned.set()

    async def send(message: Any) -> None:
        pass

    with trio.fail_after(5):
        async with _TaskGroup() as group:
            put = await group.spawn_app(wrap_app(app, 0, "asgi"), config, scope, send)
            for _ in range(config.max_app_queue_size):
                await put(BODY)
            reader_done = trio.Event()

            async def reader() -> None:
                await put(BODY)  # the queue is full: this waits...
                reader_done.set()

            group.spawn(reader)
            await trio.sleep(0.05)
            assert not reader_done.is_set()
            # ...the answer is complete: hypercorn queues http.disconnect from within the app's
            # own last send, which must not wait for room.
            await put(GONE)
            answered.set()
            await returned.wait()
            await reader_done.wait()  # the app returned: what waited for it is let go
            await put(BODY)  # and what comes later is dropped
