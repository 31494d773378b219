"""LISTEN for a bridge: a dedicated connection on the asyncio side, payloads read from trio.

Shared by both bridges through ``AsyncioPoolBridge``. LISTEN never uses a pooled connection:
pooled connections are not reset on release (see ``asyncio_pool``), and a listener must outlive
any unit of work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg
import trio


class Lost:
    """Sent down a listener's channel when its connection has gone."""


LOST = Lost()


class Notifications:
    """Payloads of one LISTEN; raises ``ConnectionError`` once the connection is lost."""

    def __init__(self, receive: trio.MemoryReceiveChannel[str | Lost], channel: str) -> None:
        self._receive = receive
        self._channel = channel

    def __aiter__(self) -> Notifications:
        return self

    async def __anext__(self) -> str:
        try:
            item = await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        if isinstance(item, Lost):
            raise ConnectionError(f"the connection listening on {self._channel!r} was lost")
        return item


class Listener:
    """The asyncio side of one LISTEN. ``to_trio`` schedules a call on the trio side."""

    def __init__(
        self,
        channel: str,
        send: trio.MemorySendChannel[str | Lost],
        to_trio: Callable[..., None],
    ) -> None:
        self.channel = channel
        self._send = send
        self._to_trio = to_trio
        self.conn: asyncpg.Connection | None = None

    def _deliver(self, item: str | Lost) -> None:
        # Once the listen block has ended, nobody wants this payload any more.
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            self._send.send_nowait(item)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        self._to_trio(self._deliver, str(payload))

    def _on_lost(self, _conn: Any) -> None:
        self._to_trio(self._deliver, LOST)

    async def open(self, dsn: str, connect_timeout: float) -> None:
        conn = await asyncpg.connect(dsn, timeout=connect_timeout)
        try:
            conn.add_termination_listener(self._on_lost)
            await conn.add_listener(self.channel, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        self.conn = conn

    async def close(self, limit: float) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        conn.remove_termination_listener(self._on_lost)  # our own close is not a loss
        try:
            await conn.close(timeout=limit)
        except Exception:
            conn.terminate()

    def terminate(self) -> None:
        """Drop the connection at bridge shutdown; the reader gets ``ConnectionError``."""
        if self.conn is not None:
            self.conn.terminate()
