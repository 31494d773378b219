"""The sink reader's rules for long-polls, on a virtual clock: the cap on ``wait``, which reads
wait at all, and a wake-up that lands between the read and the wait."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import trio
import trio.testing

from mg.core.model import Direction, Event, Range
from mg.core.sink import SinkEvent, reads_pruned
from mg.errors import InvalidRequest, SinkEventsPruned, SinkNotFound
from mg.service.sinks import SinkReader
from mg.settings import from_mapping


class Waiter:
    def __init__(self, event: trio.Event) -> None:
        self.event = event

    async def wait(self, seconds: float) -> bool:
        with trio.move_on_after(seconds):
            await self.event.wait()
            return True
        return False


class Log:
    """An in-memory sink log that pokes like the sequencer does."""

    def __init__(self) -> None:
        self.events: list[SinkEvent] = []
        self.reads = 0
        self.topic = trio.Event()
        self.on_read: list[SinkEvent] = []  # appended during the next read, as if just moved

    def arm(self, topic: str) -> Waiter:
        if self.topic.is_set():
            self.topic = trio.Event()
        return Waiter(self.topic)

    def wake_local(self, topic: str) -> None:
        self.topic.set()

    def append(self, *found: SinkEvent) -> None:
        self.events += found
        self.topic.set()

    async def read(
        self, sink: str, after: int | None, limit: int, direction: Direction
    ) -> list[SinkEvent]:
        self.reads += 1
        if direction is Direction.FORWARD:
            found = [e for e in self.events if after is None or e.position > after][:limit]
        else:
            older = [e for e in self.events if after is None or e.position < after]
            found = older[::-1][:limit]
        if self.on_read:  # lands after this read looked, before the reader waits
            self.append(*self.on_read)
            self.on_read = []
        return found


def event(position: int) -> SinkEvent:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    return SinkEvent(position, "ns", "m", 1, Event(position, when, None, position), bytes(32))


def reader(log: Log) -> SinkReader:
    settings = from_mapping({"sinks": {"main": {"max_wait": "5s", "read_limit": 3}}}, environ={})
    return SinkReader(settings, log, log)


async def test_a_long_wait_is_cut_to_max_wait(autojump_clock: trio.testing.MockClock) -> None:
    log = Log()
    began = trio.current_time()
    assert await reader(log).read("main", Range(after=0), wait=1000) == []
    assert trio.current_time() - began == pytest.approx(5)


async def test_a_wake_up_between_the_read_and_the_wait_is_not_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    log.on_read = [event(1)]
    began = trio.current_time()
    found = await reader(log).read("main", Range(after=0), wait=60)
    assert [e.position for e in found] == [1]
    assert trio.current_time() == began  # woken at once, not after the wait
    assert log.reads == 2


async def test_limits_and_reads_that_never_wait(autojump_clock: trio.testing.MockClock) -> None:
    log = Log()
    log.events = [event(n) for n in range(1, 6)]
    sinks = reader(log)
    assert [e.position for e in await sinks.read("main", Range(), 0)] == [1, 2, 3]
    assert [e.position for e in await sinks.read("main", Range(limit=2), 0)] == [1, 2]
    began = trio.current_time()
    assert await sinks.read("main", Range(limit=0), wait=60) == []
    backward = Range(after=1, direction=Direction.BACKWARD)
    assert await sinks.read("main", backward, wait=60) == []
    assert trio.current_time() == began
    with pytest.raises(SinkNotFound):
        await sinks.read("other", Range(), 0)
    with pytest.raises(InvalidRequest):
        await sinks.read("main", Range(), -1)


async def test_closing_answers_waiting_reads(autojump_clock: trio.testing.MockClock) -> None:
    log = Log()
    sinks = reader(log)
    answers: list[list[SinkEvent]] = []

    async def poll() -> None:
        answers.append(await sinks.read("main", Range(after=0), wait=5))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await trio.sleep(1)
        sinks.close()
        began = trio.current_time()
    assert answers == [[]]
    assert trio.current_time() == began


class PrunedOnSecondRead(Log):
    """Retention pruned past the reader while it waited: its next read is refused."""

    async def read(
        self, sink: str, after: int | None, limit: int, direction: Direction
    ) -> list[SinkEvent]:
        if self.reads == 1:
            raise SinkEventsPruned("pruned", first=50)
        return await super().read(sink, after, limit, direction)


async def test_a_long_poll_whose_span_is_pruned_while_it_waits_gets_the_refusal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = PrunedOnSecondRead()
    log.on_read = [event(1)]  # wakes the reader after its first (empty) read
    with pytest.raises(SinkEventsPruned) as refused:
        await reader(log).read("main", Range(after=0), wait=60)
    assert refused.value.first == 50
    assert log.reads == 1


def test_reads_below_first_are_the_pruned_ones() -> None:
    assert reads_pruned(5, Direction.FORWARD, 10)
    assert not reads_pruned(9, Direction.FORWARD, 10)
    assert not reads_pruned(None, Direction.FORWARD, 10)
    assert not reads_pruned(3, Direction.BACKWARD, 10)
