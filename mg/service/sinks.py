"""Reading sinks: range reads and long-polls (PROTOCOL section 5).

A long-poll holds no database connection while it waits: it reads, and if nothing qualifies it
waits on the ``sink-events:<name>`` wake-up (poked by the sequencer after every batch, on every
node) before reading again. The wake-up is armed before each read, so an event that becomes
readable between the read and the wait still wakes the reader.
"""

from __future__ import annotations

from typing import Protocol

import trio

from mg.core.model import Direction, Range
from mg.core.sink import SinkBounds, SinkEvent, readers_topic
from mg.errors import InvalidRequest, SinkNotFound
from mg.settings import Settings, Sink


class SinkLog(Protocol):
    async def read(
        self, sink: str, after: int | None, limit: int, direction: Direction
    ) -> list[SinkEvent]: ...


class SinkSpans(Protocol):
    async def bounds(self, sink: str) -> SinkBounds: ...


class Waiter(Protocol):
    async def wait(self, seconds: float, /) -> bool: ...


class Wakeable(Protocol):
    def arm(self, topic: str) -> Waiter: ...

    def wake_local(self, topic: str) -> None: ...


class SinkReader:
    def __init__(
        self,
        settings: Settings,
        log: SinkLog,
        wakeups: Wakeable,
        spans: SinkSpans | None = None,
    ) -> None:
        self._sinks = settings.sink_options
        self._log = log
        self._wakeups = wakeups
        self._spans = spans
        self._closing = False

    async def bounds(self, name: str) -> SinkBounds:
        """The positions sink ``name`` holds and its anchor (PROTOCOL section 7)."""
        self.sink(name)
        if self._spans is None:
            raise SinkNotFound(f"sink {name!r} cannot be described here")
        return await self._spans.bounds(name)

    def sink(self, name: str) -> Sink:
        found = self._sinks.get(name)
        if found is None:
            raise SinkNotFound(f"sink {name!r} is not configured")
        return found

    async def read(self, name: str, selection: Range, wait: float) -> list[SinkEvent]:
        """Events of sink ``name`` in ``selection``; if there are none yet, wait up to ``wait``
        seconds (cut to the sink's ``max_wait``) for some.

        Only a read that new events could satisfy waits: forward, or backward from the end
        (no ``after``). ``limit`` absent or above the sink's ``read_limit`` is cut to it.
        Every read (the first and each after a wake-up) raises ``SinkEventsPruned`` if it
        would start below the sink's first held position: a reader is never moved on
        silently past events it has not seen.
        """
        sink = self.sink(name)
        if selection.limit is not None and selection.limit < 0:
            raise InvalidRequest("limit must not be negative")
        if wait < 0:
            raise InvalidRequest("wait must not be negative")
        limit = (
            sink.read_limit if selection.limit is None else min(selection.limit, sink.read_limit)
        )
        if limit == 0:
            return []
        waits = selection.direction is Direction.FORWARD or selection.after is None
        deadline = trio.current_time() + min(wait, sink.max_wait)
        while True:
            waiter = self._wakeups.arm(readers_topic(name))
            found = await self._log.read(name, selection.after, limit, selection.direction)
            remaining = deadline - trio.current_time()
            if found or not waits or remaining <= 0 or self._closing:
                return found
            await waiter.wait(remaining)

    def close(self) -> None:
        """The node is stopping: waiting reads answer now (with what they have: nothing)."""
        self._closing = True
        for name in self._sinks:
            self._wakeups.wake_local(readers_topic(name))

    async def close_when(self, stopping: trio.Event) -> None:
        await stopping.wait()
        self.close()
