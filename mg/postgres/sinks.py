"""Sinks on Postgres: reading the sink log, and the sequencer's leadership and batches.

The sequencer's statements run on its dedicated session (``Bridge.dedicated``), never on a pooled
connection: the session-level lock that makes it the sink's one writer lives on that connection,
so a batch can only ever run while its node leads, and a lost connection ends both at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import asyncpg

from mg.core import values
from mg.core.clock import stored_time
from mg.core.model import Direction, Event
from mg.core.sink import GENESIS, SinkBounds, SinkEvent, StoredLink, reads_pruned
from mg.errors import SinkEventsPruned
from mg.postgres.bridge.interface import Bridge, Session
from mg.postgres.failures import run_translated
from mg.postgres.sql_files import query

T = TypeVar("T")

READ_TIMEOUT = 30.0
# Positions are bigint and start at 1: "after nothing" walking backward starts above them all.
TOP = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Batch:
    """What one move did: ``taken`` outbox rows, ``moved`` of them new to the sink (the rest
    were there already), the last position given out and the oldest event's time."""

    taken: int
    moved: int
    last_position: int | None
    oldest: datetime | None


def _sink_event(row: asyncpg.Record) -> SinkEvent:
    return SinkEvent(
        position=row["id"],
        ns=row["ns"],
        machine_id=row["machine_id"],
        incarnation=row["incarnation"],
        event=Event(
            id=row["event_id"],
            created_at=stored_time(row["created_at"]),
            format_version=row["format_version"],
            data=values.unpack(row["data"]),
        ),
        hash=row["hash"],
    )


class PostgresSinks:
    """The sink log on a bridge: what readers and ``mg sink verify`` use."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def _run(
        self, work: Callable[[asyncpg.Connection], Awaitable[T]], doing: str, timeout: float
    ) -> T:
        return await run_translated(self._bridge.run, work, doing=doing, timeout=timeout)

    async def read(
        self, sink: str, after: int | None, limit: int, direction: Direction
    ) -> list[SinkEvent]:
        """Up to ``limit`` events strictly after ``after`` in ``direction`` (None: from the
        start of that direction, i.e. from the first held position forward). Raises
        ``SinkEventsPruned`` when the read would start below the first held position, which
        is read in the same statement as the events."""
        if direction is Direction.FORWARD:
            name, bound = "read_sink_forward", 0 if after is None else after
        else:
            name, bound = "read_sink_backward", TOP if after is None else after

        async def work(conn: asyncpg.Connection) -> tuple[int, list[SinkEvent]]:
            found = await conn.fetch(query(name), sink, bound, limit)
            first = found[0]["first"] if found else 1
            return first, [_sink_event(row) for row in found if row["id"] is not None]

        first, events = await self._run(work, "reading the sink", READ_TIMEOUT)
        if reads_pruned(after, direction, first):
            raise SinkEventsPruned(
                f"sink {sink!r} no longer holds the events asked for: its first held position "
                f"is {first} (older ones were pruned by its retention)",
                first=first,
            )
        return events

    async def bounds(self, sink: str) -> SinkBounds:
        """The positions ``sink`` holds and the anchor to verify them from."""

        async def work(conn: asyncpg.Connection) -> SinkBounds:
            try:
                row = await conn.fetchrow(query("sink_bounds"), sink)
            except asyncpg.UndefinedTableError:
                # A downstream copy (sql/replica/sink_table.sql) has no retention: it keeps all.
                last = await conn.fetchval(query("sink_last"), sink)
                return SinkBounds(1, last, GENESIS)
            assert row is not None  # one row whatever the sink
            return SinkBounds(
                row["first"], max(row["last"], row["first"] - 1), row["anchor"] or GENESIS
            )

        return await self._run(work, "reading the sink's bounds", READ_TIMEOUT)

    async def chain_page(self, sink: str, start: int, limit: int) -> list[StoredLink]:
        """Stored rows from position ``start`` on, in order."""

        async def work(conn: asyncpg.Connection) -> list[StoredLink]:
            found = await conn.fetch(query("sink_chain_from"), sink, start, limit)
            return [
                StoredLink(
                    r["id"],
                    r["ns"],
                    r["machine_id"],
                    r["event_id"],
                    r["created_at"],
                    r["format_version"],
                    r["data"],
                    r["hash"],
                )
                for r in found
            ]

        return await self._run(work, "reading the sink's chain", READ_TIMEOUT)

    async def hash_at(self, sink: str, position: int) -> bytes | None:
        async def work(conn: asyncpg.Connection) -> bytes | None:
            found: bytes | None = await conn.fetchval(query("sink_hash_at"), sink, position)
            return found

        return await self._run(work, "reading a sink hash", READ_TIMEOUT)

    async def backlog(self, sink: str) -> int:
        """Outbox rows still waiting for the sink's sequencer."""

        async def work(conn: asyncpg.Connection) -> int:
            found: int = await conn.fetchval(query("sink_outbox_backlog"), sink)
            return found

        return await self._run(work, "counting the sink's outbox", READ_TIMEOUT)


async def lead(session: Session, sink: str) -> None:
    """Wait on the dedicated ``session`` until it leads ``sink``; it leads until it closes."""

    async def work(conn: asyncpg.Connection) -> None:
        await conn.execute(query("lead_sink"), sink)

    await session.run(work)


async def lead_pruning(session: Session, sink: str) -> None:
    """Wait on the dedicated ``session`` until it is the pruner of ``sink``."""

    async def work(conn: asyncpg.Connection) -> None:
        await conn.execute(query("lead_sink_pruning"), sink)

    await session.run(work)


@dataclass(frozen=True, slots=True)
class Pruned:
    """One batch of retention: ``count`` events deleted; ``first`` is now held."""

    count: int
    first: int


async def prune_batch(
    session: Session,
    sink: str,
    max_events: int | None,
    max_age: float | None,
    size: int,
    timeout: float,
) -> Pruned:
    """Delete up to ``size`` of the sink's oldest events past its retention, and save the new
    first position with its anchor, in one transaction on the pruning ``session``."""

    async def work(conn: asyncpg.Connection) -> Pruned:
        row = await conn.fetchrow(query("prune_sink"), sink, max_events, max_age, size)
        assert row is not None  # an aggregate always answers one row
        return Pruned(row["pruned"], row["first"])

    return await session.run(work, timeout=timeout)


async def move_batch(session: Session, sink: str, size: int, timeout: float) -> Batch:
    """Move up to ``size`` outbox rows into the sink, in one transaction, on the leading
    ``session``."""

    async def work(conn: asyncpg.Connection) -> Batch:
        row = await conn.fetchrow(query("move_to_sink"), sink, size)
        assert row is not None  # an aggregate always answers one row
        return Batch(row["taken"], row["moved"], row["last_position"], row["oldest"])

    return await session.run(work, timeout=timeout)
