"""The node's open client connections, and a listener that keeps their number under a cap.

A connection is *busy* while a request on it is being handled and *idle* otherwise (between
keep-alive requests, or before its first request is complete). At the cap the listener still
accepts, so ``/health/live`` and new clients are served, and makes room by closing the
connection idle the longest; when every connection is busy it accepts a few more (the headroom)
and then stops until one closes. Running out of file descriptors is handled the same way, with
one warning a minute instead of a log line per failed ``accept``.

``Disconnect`` tells the app handling one request that the request's stream has ended (its
client went away, or its answer is complete), without a task of the app's own waiting on ASGI
``receive`` for ``http.disconnect``.
"""

from __future__ import annotations

import errno
import logging
import resource
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import trio

log = logging.getLogger("mg.connections")

# accept() failures that mean "no room for another descriptor or buffer", not a broken listener.
_NO_ROOM = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_WARN_EVERY = 60.0


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard limit; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if resource.RLIM_INFINITY in (hard, soft) or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:
            log.warning("could not raise the open-file limit from %d: %s", soft, error)
    return int(soft)


@dataclass
class _Connection:
    key: Hashable
    stream: Any
    idle_since: float
    busy: int = 0


@dataclass
class Connections:
    """Open connections by peer address (what hypercorn puts in the ASGI scope's ``client``)."""

    cap: int
    _open: dict[Hashable, _Connection] = field(default_factory=dict)
    _changed: trio.Event = field(default_factory=trio.Event)

    @property
    def count(self) -> int:
        return len(self._open)

    @contextmanager
    def opened(self, stream: Any) -> Iterator[None]:
        """Track a connection for as long as its handler runs."""
        key = _peer(stream)
        self._open[key] = _Connection(key, stream, trio.current_time())
        try:
            yield
        finally:
            if self._open.get(key) is not None and self._open[key].stream is stream:
                del self._open[key]
            self._wake()

    @contextmanager
    def busy(self, peer: Any) -> Iterator[None]:
        """Mark the connection a request came on busy while the request is handled."""
        found = self._open.get(_key(peer))
        if found is not None:
            found.busy += 1
        try:
            yield
        finally:
            if found is not None:
                found.busy -= 1
                found.idle_since = trio.current_time()
                if found.busy == 0:
                    self._wake()

    def close_idlest(self) -> bool:
        """Close the connection idle the longest; False when every connection is busy."""
        idle = [c for c in self._open.values() if c.busy == 0]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.idle_since)
        del self._open[oldest.key]
        _shut(oldest.stream)
        return True

    @property
    def headroom(self) -> int:
        """Connections accepted past the cap while every one is busy, so a probe still gets in
        (the descriptors kept free for other uses cover them)."""
        return min(32, max(4, self.cap // 16))

    async def wait_for_room(self) -> None:
        while self.count >= self.cap:
            if self.close_idlest() or self.count < self.cap + self.headroom:
                return
            await self._changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


DISCONNECT = "mg.disconnect"
"""The key of a request's ``Disconnect`` in its ASGI scope's ``extensions`` (mg's server sets it,
``mg.http_server``)."""


class Disconnect:
    """Set the moment the server queues ``http.disconnect`` for one request, and calls back the
    one who asked (``when_set``), at once if it is set already.

    quart-trio runs a second task per request that waits on ``receive`` only to cancel the
    handler when this message comes; the API's direct path (``mg.api.direct``) asks to be called
    back instead. A request whose app asked is not fed the message when its queue is full (the
    app may have answered without reading the body, and the server must not wait for it)."""

    __slots__ = ("_callback", "is_set")

    def __init__(self) -> None:
        self.is_set = False
        self._callback: Callable[[], object] | None = None

    @property
    def watched(self) -> bool:
        return self._callback is not None

    def when_set(self, callback: Callable[[], object]) -> None:
        self._callback = callback
        if self.is_set:
            callback()

    def set(self) -> None:
        self.is_set = True
        if self._callback is not None:
            self._callback()


class CappedListener(trio.abc.Listener[Any]):
    """A listener that makes room among ``connections`` before each accept."""

    def __init__(self, inner: trio.abc.Listener[Any], connections: Connections) -> None:
        self._inner = inner
        self._connections = connections
        self._warned_at = -_WARN_EVERY

    async def accept(self) -> Any:
        while True:
            await self._connections.wait_for_room()
            try:
                return await self._inner.accept()
            except OSError as error:
                if error.errno not in _NO_ROOM:
                    raise
                now = trio.current_time()
                if now - self._warned_at >= _WARN_EVERY:
                    self._warned_at = now
                    log.warning(
                        "out of file descriptors with %d client connections open (%s); "
                        "closing idle ones (server.max_connections, ulimit -n)",
                        self._connections.count,
                        error.strerror,
                    )
                if not self._connections.close_idlest():
                    await trio.sleep(0.1)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _socket(stream: Any) -> Any:
    inner = getattr(stream, "transport_stream", stream)
    return inner.socket


def _key(peer: Any) -> Hashable:
    # (host, port): IPv6 peers carry flow info and scope id that the ASGI scope leaves out.
    if isinstance(peer, list | tuple) and len(peer) >= 2:
        return (str(peer[0]), int(peer[1]))
    return str(peer)


def _peer(stream: Any) -> Hashable:
    try:
        return _key(_socket(stream).getpeername())
    except OSError:
        return id(stream)


def _shut(stream: Any) -> None:
    """End the connection and free its descriptor now: the task reading it gets
    ``ClosedResourceError`` and its handler ends."""
    with suppress(OSError):
        _socket(stream).close()
