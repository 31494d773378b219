"""Checking a sink's hash chain from what is stored (``mg sink verify``).

Every link is recomputed in Python with the formula of ``mg.core.sink`` (the one the database
trigger applies), page by page, so a sink of any length is checked in bounded memory. A link is
broken when its position does not follow the previous one, when its data is not the canonical
MessagePack encoding of the value it holds, or when its stored hash differs from the recomputed
one. The check stops at the first broken link: from there on every hash depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mg.core import values
from mg.core.sink import SinkBounds, StoredLink, chain_hash

PAGE = 1000


class ChainSource(Protocol):
    async def chain_page(self, sink: str, start: int, limit: int) -> list[StoredLink]: ...

    async def hash_at(self, sink: str, position: int) -> bytes | None: ...

    async def bounds(self, sink: str) -> SinkBounds: ...


class CannotVerify(ValueError):
    """The check cannot start (e.g. ``--from N`` without a stored position N-1)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """``checked`` links from ``start``; ``broken_at`` is None when all of them hold."""

    sink: str
    start: int
    checked: int
    last_position: int | None
    broken_at: int | None = None
    reason: str = ""
    stored_hash: bytes | None = None
    expected_hash: bytes | None = None

    @property
    def intact(self) -> bool:
        return self.broken_at is None

    def summary(self) -> str:
        if self.broken_at is not None:
            lines = [f"sink {self.sink!r}: broken link at position {self.broken_at}: {self.reason}"]
            if self.stored_hash is not None and self.expected_hash is not None:
                lines.append(f"  stored hash     {self.stored_hash.hex()}")
                lines.append(f"  recomputed hash {self.expected_hash.hex()}")
            lines.append(f"  ({self.checked} links checked from position {self.start} before it)")
            return "\n".join(lines)
        if self.checked == 0:
            return f"sink {self.sink!r}: no events from position {self.start}"
        return (
            f"sink {self.sink!r}: chain intact, {self.checked} events, "
            f"positions {self.start}..{self.last_position}"
        )


@dataclass(frozen=True, slots=True)
class _Break:
    reason: str
    stored_hash: bytes | None = None
    expected_hash: bytes | None = None


def _canonical(data: bytes) -> bool:
    try:
        return values.pack(values.unpack(data)) == data
    except values.ValueRejected:
        return False


async def verify_chain(
    source: ChainSource, sink: str, start: int | None = None, page: int = PAGE
) -> Verdict:
    """Recompute the chain of ``sink`` from position ``start``, chaining from the stored hash
    of ``start - 1``; by default from the sink's first held position, chaining from its
    anchor (``hash_0`` when nothing was pruned)."""
    if start is not None and start < 1:
        raise CannotVerify("positions start at 1")
    # From the sink's first held position: retention may prune it between reading the bounds
    # and reading the first page; then the bounds are read again (a later anchor).
    for _ in range(RESTARTS):
        first, previous = await _starting_point(source, sink, start)
        links = await source.chain_page(sink, first, page)
        if start is not None or not links or links[0].position == first:
            break
    return await _walk(source, sink, first, previous, links, page)


RESTARTS = 5


async def _starting_point(source: ChainSource, sink: str, start: int | None) -> tuple[int, bytes]:
    bounds = await source.bounds(sink)
    if start is None or start == bounds.first:
        return bounds.first, bounds.anchor
    if start < bounds.first:
        raise CannotVerify(
            f"positions below {bounds.first} were pruned; verify from {bounds.first} (the "
            "anchor) or check an export of them (mg sink verify --file)"
        )
    found = await source.hash_at(sink, start - 1)
    if found is None:
        raise CannotVerify(f"position {start - 1} is not stored: cannot chain from it")
    return start, found


async def _walk(
    source: ChainSource,
    sink: str,
    start: int,
    previous: bytes,
    links: list[StoredLink],
    page: int,
) -> Verdict:
    expected, checked = start, 0
    while True:
        for stored in links:
            broken = _check(stored, expected, previous)
            if broken is not None:
                return Verdict(
                    sink,
                    start,
                    checked,
                    expected - 1 if checked else None,
                    broken_at=expected,
                    reason=broken.reason,
                    stored_hash=broken.stored_hash,
                    expected_hash=broken.expected_hash,
                )
            previous, expected, checked = stored.hash, expected + 1, checked + 1
        if len(links) < page:
            return Verdict(sink, start, checked, expected - 1 if checked else None)
        links = await source.chain_page(sink, expected, page)


def _check(stored: StoredLink, expected: int, previous: bytes) -> _Break | None:
    """Why ``stored`` is not the link expected at position ``expected``, or None."""
    if stored.position != expected:
        return _Break(f"position {expected} is missing (the next stored is {stored.position})")
    if not _canonical(stored.data):
        return _Break("data is not canonical MessagePack")
    recomputed = chain_hash(
        previous,
        stored.position,
        stored.ns,
        stored.machine_id,
        stored.event_id,
        stored.created_at,
        stored.format_version,
        stored.data,
    )
    if recomputed != stored.hash:
        return _Break(
            "the stored hash is not the hash of this event and the previous hash",
            stored.hash,
            recomputed,
        )
    return None
