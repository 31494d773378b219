"""Serving the client API with hypercorn's trio worker, with mg's own listener and HTTP/1.1
rules around it.

``hypercorn.trio.serve`` is followed step for step, with six differences:

* the listeners are wrapped in a ``CappedListener`` and every connection is tracked in
  ``Connections`` (the cap on open connections, see ``mg.connections``);
* HTTP/2 is offered only when configured: without it an ``Upgrade: h2c`` header is ignored and
  the HTTP/2 preface is just a bad HTTP/1.1 request (TLS offers ``http/1.1`` only by ALPN);
* ``100 Continue`` is sent only when the declared ``Content-Length`` is within
  ``max_body_bytes``: a body that will be refused with 413 is not invited;
* a response goes out in one write, not three (see ``_H11._send_h11_event``);
* an HTTP request's app is spawned by ``_TaskGroup``: its scope carries a ``Disconnect``
  (``mg.connections``), and messages for an app that has returned are dropped;
* the keep-alive timeout is one task per connection (``_IdleTimer``), not one per request.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from contextlib import suppress
from functools import partial
from typing import Any

import h11
import trio
from hypercorn.config import Config
from hypercorn.events import RawData
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.events import StreamClosed
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.task_group import TaskGroup, _handle
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import TrioSingleTask, WorkerContext
from hypercorn.typing import ASGIReceiveEvent, ConnectionState
from hypercorn.utils import (
    ShutdownError,
    parse_socket_addr,
    raise_shutdown,
    repr_socket_addr,
    wrap_app,
)

from mg.connections import DISCONNECT, CappedListener, Connections, Disconnect


class _Connection(h11.Connection):
    """h11's connection, told whether the request's body is welcome before it invites it."""

    invite = True

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        return self.invite and bool(super().they_are_waiting_for_100_continue)


def _declared_length(request: h11.Request) -> int:
    for name, value in request.headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


class _H11(H11Protocol):
    def __init__(self, *args: Any, http2: bool, max_body_bytes: int) -> None:
        super().__init__(*args)
        self.connection = _Connection(
            h11.SERVER, max_incomplete_event_size=self.config.h11_max_incomplete_size
        )
        self._http2 = http2
        self._max_body_bytes = max_body_bytes
        self._held_head = b""

    async def _send_h11_event(self, event: Any) -> None:
        """Hypercorn writes a response as three writes (head, body, end of message), each
        taking the connection's send lock, a shielded cancel scope and a ``send`` system call
        (the end of a ``Content-Length`` message is an empty write, still a pass through trio's
        scheduler). So the head is held until the first body bytes or the end of the message
        and leaves with them, and empty writes are skipped. Streamed chunks still go out one
        by one as they come, and informational answers (``100 Continue``) at once."""
        try:
            data = self.connection.send(event) or b""
        except h11.LocalProtocolError:
            # Hypercorn's rule: refused because the client broke the protocol, it is dropped.
            if self.connection.their_state != h11.ERROR:
                raise
            data = b""
        else:
            if isinstance(event, h11.Response):
                self._held_head = data
                return
        await self._write(data)

    async def _write(self, data: bytes) -> None:
        if self._held_head:
            data, self._held_head = self._held_head + data, b""
        if data:
            await self.send(RawData(data=data))

    async def stream_send(self, event: StreamEvent) -> None:
        if isinstance(event, StreamClosed):
            # An answer that ended after its head alone (the app gave up): the head still
            # goes out before the connection closes, as it did when it was sent at once.
            await self._write(b"")
        await super().stream_send(event)

    async def _check_protocol(self, event: h11.Request) -> None:
        if self._http2:
            await super()._check_protocol(event)

    async def _create_stream(self, request: h11.Request) -> None:
        if isinstance(self.connection, _Connection):
            self.connection.invite = _declared_length(request) <= self._max_body_bytes
        await super()._create_stream(request)


class _Protocols(ProtocolWrapper):
    def __init__(self, *args: Any, http2: bool, max_body_bytes: int) -> None:
        super().__init__(*args)
        if isinstance(self.protocol, H11Protocol):
            self.protocol = _H11(*args[:9], http2=http2, max_body_bytes=max_body_bytes)


class _TaskGroup(TaskGroup):
    """hypercorn's task group, spawning an HTTP request's app with two changes:

    * the scope's ``extensions`` carry a ``Disconnect``, set as ``http.disconnect`` is queued, so
      an app can have the request cancelled when its client goes away without running a task
      that waits on ``receive`` (quart-trio runs one per request);
    * once the app has returned, its queue is closed and what comes for it is dropped. An app
      that answers without reading the body (an early 401 or 404) leaves unread messages: with
      the queue full, hypercorn's reader would wait forever to put the next one (quart-trio
      never let that happen, its receiving task drained the queue until the end).
    """

    async def spawn_app(self, app: Any, config: Config, scope: Any, send: Any) -> Any:
        if scope["type"] != "http":
            return await super().spawn_app(app, config, scope, send)
        disconnect = Disconnect()
        scope["extensions"][DISCONNECT] = disconnect
        into, out = trio.open_memory_channel[ASGIReceiveEvent](config.max_app_queue_size)

        async def run() -> None:
            with out:
                await _handle(
                    app,
                    config,
                    scope,
                    out.receive,
                    send,
                    trio.to_thread.run_sync,
                    trio.from_thread.run,
                )

        assert self._nursery is not None
        self._nursery.start_soon(run)

        async def put(message: ASGIReceiveEvent) -> None:
            try:
                if message["type"] == "http.disconnect":
                    disconnect.set()
                    if disconnect.watched:
                        # Its app is cancelled already; it may be the very task queueing this
                        # (the end of a response is reported inside its last send), so never wait.
                        with suppress(trio.WouldBlock):
                            into.send_nowait(message)
                        return
                await into.send(message)
            except trio.BrokenResourceError:
                pass  # the app has returned: nobody reads this any more

        return put


class _IdleTimer(TrioSingleTask):
    """A connection's keep-alive timeout without a task per request.

    hypercorn starts a task (``TrioSingleTask.restart``: a lock, ``nursery.start``) each time a
    connection falls idle and cancels it when the next request comes: a spawn, a cancel and
    their task switches on every request (3-4 % of the node's samples per call). Here one task
    per connection waits in a cancel scope whose deadline ``restart`` (idle from now) and
    ``stop`` (busy) move. It closes as hypercorn's does: after ``keep_alive_timeout`` idle, or
    at once when the server terminates while the connection is idle (a busy one finishes its
    request first, and closes when it falls idle).
    """

    def __init__(
        self, timeout: float, terminated: Any, close: Callable[[], Awaitable[None]]
    ) -> None:
        super().__init__()
        self._timeout = timeout
        self._terminated = terminated
        self._close = close
        self._scope = trio.CancelScope()
        self._idle = False
        self._watching = False
        self._finished = False

    async def restart(self, task_group: Any, action: Callable[..., Any]) -> None:
        self._idle = True
        if self._terminated.is_set():
            self._scope.cancel()
        else:
            self._scope.deadline = trio.current_time() + self._timeout
        if not self._watching:
            self._watching = True
            task_group._nursery.start_soon(self._watch)

    async def stop(self) -> None:
        self._idle = False
        self._scope.deadline = math.inf

    def finish(self) -> None:
        """The connection is over: the task ends without closing anything."""
        self._finished = True
        self._scope.cancel()

    async def _watch(self) -> None:
        with self._scope:
            await self._terminated.wait()
            if not self._idle:
                await trio.sleep_forever()  # until the request in flight ends (``restart``)
        if self._finished:
            return
        with trio.CancelScope(shield=True):
            await self._close()


class _TCPServer(TCPServer):
    """hypercorn's connection handler with ``_Protocols`` in place of ``ProtocolWrapper`` and
    ``_IdleTimer`` in place of its idle task."""

    http2 = False
    max_body_bytes = 0

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._idle_timer = _IdleTimer(
            self.config.keep_alive_timeout, self.context.terminated, self._initiate_server_close
        )
        self.idle_task = self._idle_timer

    async def run(self) -> None:
        try:
            try:
                with trio.fail_after(self.config.ssl_handshake_timeout):
                    await self.stream.do_handshake()
            except (trio.BrokenResourceError, trio.TooSlowError):
                return
            alpn_protocol = self.stream.selected_alpn_protocol()
            socket = self.stream.transport_stream.socket
            ssl = True
        except AttributeError:  # not TLS
            alpn_protocol = "http/1.1"
            socket = self.stream.socket
            ssl = False
        try:
            client = parse_socket_addr(socket.family, socket.getpeername())
            server = parse_socket_addr(socket.family, socket.getsockname())
            async with _TaskGroup() as task_group:
                self._task_group = task_group
                self.protocol = _Protocols(
                    self.app,
                    self.config,
                    self.context,
                    task_group,
                    ConnectionState(self.state),
                    ssl,
                    client,
                    server,
                    self.protocol_send,
                    alpn_protocol,
                    http2=self.http2,
                    max_body_bytes=self.max_body_bytes,
                )
                await self.protocol.initiate()
                await self.idle_task.restart(self._task_group, self._idle_timeout)
                await self._read_data()
        except OSError:
            pass
        finally:
            await self._close()

    async def _read_data(self) -> None:
        await super()._read_data()
        # The client is gone: hypercorn would keep the socket until the idle timer ran out
        # (keep_alive_timeout), holding a descriptor for nothing.
        self._idle_timer.finish()


async def serve(
    app: Any,
    config: Config,
    connections: Connections,
    *,
    http2: bool,
    max_body_bytes: int,
    shutdown_trigger: Callable[[], Awaitable[None]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until ``shutdown_trigger`` returns, then drain within the graceful
    timeout (``hypercorn.trio.serve`` otherwise)."""
    if not http2:
        config.alpn_protocols = ["http/1.1"]
    config.set_statsd_logger_class(StatsdLogger)
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)

    async def handle(stream: Any) -> None:
        with connections.opened(stream):
            server = _TCPServer(
                wrapped, config, context, ConnectionState(lifespan_state.copy()), stream
            )
            server.http2 = http2
            server.max_body_bytes = max_body_bytes
            await server.run()

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            sockets = config.create_sockets()
            ssl_context = config.create_ssl_context()
            listeners: list[trio.abc.Listener[Any]] = []
            binds = []
            for sock, secure in [(s, True) for s in sockets.secure_sockets] + [
                (s, False) for s in sockets.insecure_sockets
            ]:
                sock.listen(config.backlog)
                listener: trio.abc.Listener[Any] = trio.SocketListener(
                    trio.socket.from_stdlib_socket(sock)
                )
                if secure:
                    assert ssl_context is not None
                    listener = trio.SSLListener(listener, ssl_context, https_compatible=True)
                listeners.append(CappedListener(listener, connections))
                bind = repr_socket_addr(sock.family, sock.getsockname())
                binds.append(f"{'https' if secure else 'http'}://{bind}")
            task_status.started(binds)
            try:
                async with trio.open_nursery(strict_exception_groups=True) as nursery:
                    nursery.start_soon(raise_shutdown, shutdown_trigger)
                    nursery.start_soon(
                        partial(
                            trio.serve_listeners, handle, listeners, handler_nursery=server_nursery
                        )
                    )
                    await trio.sleep_forever()
            except BaseExceptionGroup as error:
                _, others = error.split(ShutdownError)
                if others is not None:
                    raise others from None
            finally:
                await context.terminated.set()
                server_nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
