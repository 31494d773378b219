"""The chain check of ``mg sink verify`` on chains held in memory."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mg.core import values
from mg.core.sink import GENESIS, SinkBounds, StoredLink, chain_hash
from mg.service.sink_verify import CannotVerify, verify_chain

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def chain(count: int) -> list[StoredLink]:
    links, previous = [], GENESIS
    for n in range(1, count + 1):
        data = values.pack({"n": n, "raw": bytes([n % 256])})
        at = T0 + timedelta(microseconds=n)
        version = None if n % 3 else 2
        hashed = chain_hash(previous, n, "ns", f"m{n % 4}", n, at, version, data)
        links.append(StoredLink(n, "ns", f"m{n % 4}", n, at, version, data, hashed))
        previous = hashed
    return links


class Memory:
    """A stored chain; ``pruned`` links before it were deleted by retention (their last hash
    kept as the anchor)."""

    def __init__(self, links: list[StoredLink], pruned: list[StoredLink] | None = None) -> None:
        self.links = links
        self.pruned = pruned or []

    async def bounds(self, sink: str) -> SinkBounds:
        first = self.pruned[-1].position + 1 if self.pruned else 1
        last = self.links[-1].position if self.links else first - 1
        return SinkBounds(first, last, self.pruned[-1].hash if self.pruned else GENESIS)

    async def chain_page(self, sink: str, start: int, limit: int) -> list[StoredLink]:
        return [link for link in self.links if link.position >= start][:limit]

    async def hash_at(self, sink: str, position: int) -> bytes | None:
        return next((link.hash for link in self.links if link.position == position), None)


async def test_an_intact_chain_is_checked_across_pages() -> None:
    verdict = await verify_chain(Memory(chain(25)), "main", page=7)
    assert verdict.intact
    assert (verdict.checked, verdict.last_position) == (25, 25)
    assert "chain intact, 25 events" in verdict.summary()


async def test_an_empty_sink_is_intact() -> None:
    verdict = await verify_chain(Memory([]), "main")
    assert verdict.intact
    assert verdict.checked == 0


async def test_changed_data_breaks_the_link_that_holds_it() -> None:
    links = chain(20)
    links[11] = replace(links[11], data=values.pack({"n": 999, "raw": b"\x0c"}))
    verdict = await verify_chain(Memory(links), "main", page=5)
    assert verdict.broken_at == 12
    assert verdict.checked == 11
    assert verdict.stored_hash == links[11].hash
    assert "position 12" in verdict.summary()


async def test_a_changed_hash_breaks_its_own_link() -> None:
    links = chain(5)
    links[2] = replace(links[2], hash=bytes(32))
    assert (await verify_chain(Memory(links), "main")).broken_at == 3


async def test_a_missing_position_is_a_broken_link() -> None:
    links = chain(6)
    del links[3]
    verdict = await verify_chain(Memory(links), "main")
    assert verdict.broken_at == 4
    assert "missing" in verdict.reason


async def test_data_that_is_not_canonical_is_a_broken_link() -> None:
    links = chain(3)
    # 1 as a uint8 is valid MessagePack, but msgpack.packb(1) is the fixint 0x01.
    links[1] = replace(links[1], data=b"\xcc\x01")
    verdict = await verify_chain(Memory(links), "main")
    assert verdict.broken_at == 2
    assert "canonical" in verdict.reason


async def test_from_chains_from_the_stored_hash_before_it() -> None:
    links = chain(10)
    links[2] = replace(links[2], data=values.pack("tampered"))
    assert (await verify_chain(Memory(links), "main")).broken_at == 3
    verdict = await verify_chain(Memory(links), "main", start=4)
    assert verdict.intact
    assert (verdict.start, verdict.checked, verdict.last_position) == (4, 7, 10)


async def test_from_without_a_stored_predecessor_cannot_verify() -> None:
    with pytest.raises(CannotVerify):
        await verify_chain(Memory(chain(3)), "main", start=9)


async def test_a_pruned_chain_verifies_from_its_first_position_with_the_anchor() -> None:
    links = chain(20)
    pruned = Memory(links[7:], pruned=links[:7])
    verdict = await verify_chain(pruned, "main", page=4)
    assert verdict.intact
    assert (verdict.start, verdict.checked, verdict.last_position) == (8, 13, 20)
    assert (await verify_chain(pruned, "main", start=8)).intact
    assert (await verify_chain(pruned, "main", start=12)).intact
    with pytest.raises(CannotVerify, match="pruned"):
        await verify_chain(pruned, "main", start=3)


async def test_a_wrong_anchor_breaks_the_first_held_link() -> None:
    links = chain(10)
    wrong = replace(links[4], hash=bytes(32))
    verdict = await verify_chain(Memory(links[5:], pruned=[*links[:4], wrong]), "main")
    assert verdict.broken_at == 6
