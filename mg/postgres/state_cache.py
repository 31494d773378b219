"""A node's cache of machine state: what a step would otherwise read from Postgres.

An entry is one committed state of one machine: its record (aux state, timer, status, version),
its tags and a **stash** of its last events (contiguous ids ending at the record's last event),
all as stored (values in their MessagePack bytes, so an entry's size is known and its contents
cannot be changed by whoever reads them). It is keyed by ``(ns, id)`` and names the state it
holds by ``(incarnation, version, revision)``: storage checks those against the row, under the
machine's cluster-wide lock, before trusting an entry (``revision`` moves when events are
rewritten in place). Storage puts an entry after a successful commit or a read, and drops it
on any doubt (a failed or unknown commit, a removal).

The cache is bounded by an estimate of its memory (``max_bytes``): past it, the least recently
used entries are evicted. A machine in the middle of a step is the most recently used one, so
eviction falls on idle machines.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from mg.core import values
from mg.core.model import Content, Direction, Event, Machine, MachineRecord, Range
from mg.core.ranges import IdSpan, select_span

# Estimated Python overhead (bytes) of an entry and of each stashed event and tag, beyond the
# bytes of their values: objects, datetimes, tuples, dict slots. tracemalloc measures about 640
# per machine and 175 per event (docs/performance.md); these leave room for timers, retries,
# long ids and the allocator's own overhead, so that the budget bounds the process's memory.
ENTRY_OVERHEAD = 1600
EVENT_OVERHEAD = 260
TAG_OVERHEAD = 80


StoredEvent = tuple[int, datetime, int | None, bytes]
"""A stashed event: id, created_at, format_version and its data in MessagePack. A plain tuple
on purpose: the garbage collector stops tracking tuples of atomic values, so a full cache adds
next to nothing to each full collection (with an object per event, 30,000 cached machines made
every full collection take 144 ms, the p99 of the whole service)."""


def to_event(stored: StoredEvent) -> Event:
    event_id, created_at, format_version, data = stored
    return Event(event_id, created_at, format_version, values.unpack(data))


@dataclass(frozen=True, slots=True)
class CachedMachine:
    """One committed state of a machine. ``record.aux_state`` is ``None`` here: the aux state
    lives packed in ``aux_data`` (with its format version in ``aux_format_version``)."""

    record: MachineRecord
    aux_data: bytes | None
    aux_format_version: int | None
    revision: int
    tags: tuple[str, ...]
    stash: tuple[StoredEvent, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.record.ns, self.record.id)

    @property
    def stash_low(self) -> int:
        """The lowest event id the stash holds (``last + 1`` when it holds none)."""
        return self.stash[0][0] if self.stash else self.record.last_event_id + 1

    def size(self) -> int:
        return (
            ENTRY_OVERHEAD
            + len(self.aux_data or b"")
            + sum(EVENT_OVERHEAD + len(e[3]) for e in self.stash)
            + sum(TAG_OVERHEAD + len(t) for t in self.tags)
        )

    def full_record(self) -> MachineRecord:
        aux = None
        if self.aux_data is not None:
            aux = Content(values.unpack(self.aux_data), self.aux_format_version)
        return replace(self.record, aux_state=aux)

    def covers(self, span: IdSpan | None) -> bool:
        return span is None or span.low >= self.stash_low

    def machine(
        self, selection: Range, span: IdSpan | None, record: MachineRecord | None = None
    ) -> Machine:
        """The machine with the history ``span`` cut from the stash (``covers(span)``);
        ``record``: ``full_record()`` if the caller has it already."""
        history: tuple[Event, ...] = ()
        if span is not None:
            first = self.stash_low
            chosen = self.stash[span.low - first : span.high - first + 1]
            history = tuple(to_event(e) for e in chosen)
            if span.direction is Direction.BACKWARD:
                history = history[::-1]
        return Machine(record or self.full_record(), self.tags, history, selection)

    def span(self, selection: Range) -> IdSpan | None:
        return select_span(selection, self.record.first_event_id, self.record.last_event_id)


def stash_from(
    last_event_id: int, events: Sequence[StoredEvent], keep: int, first_event_id: int = 1
) -> tuple[StoredEvent, ...]:
    """The last ``keep`` of ``events`` if they run contiguously up to ``last_event_id``;
    otherwise none (a stash is always the newest events, without gaps). Events below
    ``first_event_id`` were trimmed and are left out."""
    ordered = sorted(e for e in events if e[0] >= first_event_id)
    if not ordered or ordered[-1][0] != last_event_id:
        return ()
    start = len(ordered) - 1
    while start > 0 and ordered[start - 1][0] == ordered[start][0] - 1:
        start -= 1
    return tuple(ordered[max(start, len(ordered) - keep) :])


class StateCache:
    """Entries by ``(ns, id)`` in least-recently-used order, within ``max_bytes``."""

    def __init__(self, max_bytes: int, events: int) -> None:
        self.max_bytes = max_bytes
        self.events = events
        self._entries: OrderedDict[tuple[str, str], CachedMachine] = OrderedDict()
        # Sizes apart, as plain ints: a (entry, size) pair would be one more object per machine
        # for every full garbage collection to visit.
        self._sizes: dict[tuple[str, str], int] = {}
        self.bytes = 0
        self.evictions = 0
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, ns: str, machine_id: str) -> CachedMachine | None:
        found = self._entries.get((ns, machine_id))
        if found is not None:
            self._entries.move_to_end((ns, machine_id))
        return found

    def put(self, entry: CachedMachine) -> None:
        self.drop(*entry.key)
        size = entry.size()
        # One entry may not crowd out most of the others.
        if size > self.max_bytes // 4:
            return
        self._entries[entry.key] = entry
        self._sizes[entry.key] = size
        self.bytes += size
        while self.bytes > self.max_bytes:
            key, _ = self._entries.popitem(last=False)
            self.bytes -= self._sizes.pop(key)
            self.evictions += 1

    def drop(self, ns: str, machine_id: str) -> None:
        if self._entries.pop((ns, machine_id), None) is not None:
            self.bytes -= self._sizes.pop((ns, machine_id))
