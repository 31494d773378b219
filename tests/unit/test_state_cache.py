"""The state cache as a data structure: its memory bound, LRU order and event stash."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

from mg.core import values
from mg.core.model import Direction, MachineRecord, Range, Status
from mg.core.ranges import select_span
from mg.postgres.state_cache import CachedMachine, StateCache, StoredEvent, stash_from

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def stored(event_id: int, data: object = None) -> StoredEvent:
    return (event_id, NOW, 1, values.pack(data if data is not None else event_id))


def entry(machine_id: str, last: int = 3, stash: int = 3, pad: int = 0) -> CachedMachine:
    record = MachineRecord(
        ns="ns",
        id=machine_id,
        version=last,
        status=Status.SLEEPING,
        last_event_id=last,
        aux_state=None,
        timer=None,
        created_at=NOW,
        updated_at=NOW,
        incarnation=1,
    )
    events = tuple(stored(i, "x" * pad or None) for i in range(last - stash + 1, last + 1))
    return CachedMachine(record, values.pack({"n": 1}), 1, 0, ("t",), events)


def test_the_cache_never_holds_more_than_its_budget_and_evicts_the_least_recently_used() -> None:
    size = entry("m0").size()
    cache = StateCache(max_bytes=size * 10, events=3)
    for number in range(25):
        cache.put(entry(f"m{number}"))
        assert cache.bytes <= cache.max_bytes
        assert cache.get("ns", "m0") is not None  # in use all along: never the one evicted
    assert len(cache) == 10
    assert cache.evictions == 15
    assert [n for n in range(25) if cache.get("ns", f"m{n}") is not None] == [0, *range(16, 25)]
    assert cache.bytes == sum(entry("x").size() for _ in range(10))


def test_replacing_and_dropping_keep_the_accounting_exact() -> None:
    cache = StateCache(max_bytes=1_000_000, events=3)
    cache.put(entry("m", pad=10))
    cache.put(entry("m", pad=500))
    assert len(cache) == 1
    assert cache.bytes == entry("m", pad=500).size()
    cache.drop("ns", "m")
    assert (len(cache), cache.bytes) == (0, 0)


def test_an_entry_larger_than_a_quarter_of_the_budget_is_not_kept() -> None:
    cache = StateCache(max_bytes=4 * entry("m").size(), events=3)
    cache.put(entry("big", pad=10_000))
    assert cache.get("ns", "big") is None
    assert cache.bytes == 0


def test_a_full_cache_costs_the_garbage_collector_almost_nothing() -> None:
    cache = StateCache(max_bytes=10**9, events=20)
    gc.collect()
    before = len(gc.get_objects())
    for number in range(1000):
        cache.put(entry(f"m{number}", last=20, stash=20))
    gc.collect()
    # The entry and its record per machine (an object per event made it 23); the events and
    # tags are tuples the collector has stopped tracking.
    assert len(gc.get_objects()) - before < 3 * 1000


def test_the_stash_is_the_newest_contiguous_events_only() -> None:
    events = [stored(i) for i in (1, 2, 4, 5, 6)]
    assert [e[0] for e in stash_from(6, events, keep=10)] == [4, 5, 6]
    assert [e[0] for e in stash_from(6, events, keep=2)] == [5, 6]
    assert stash_from(7, events, keep=10) == ()  # the newest event is missing


def test_ranges_within_the_stash_are_cut_from_it_as_the_database_would() -> None:
    cached = entry("m", last=30, stash=10)  # events 21..30
    for selection in (
        Range(limit=5, direction=Direction.BACKWARD),
        Range(after=25),
        Range(after=28, limit=3, direction=Direction.BACKWARD),
        Range(limit=0),
    ):
        span = cached.span(selection)
        assert cached.covers(span)
        expected = span.ids() if span is not None else []
        got = cached.machine(selection, span).history
        assert [e.id for e in got] == expected
        assert [e.data for e in got] == expected
    assert not cached.covers(select_span(Range(), 1, 30))  # the whole history is not stashed
