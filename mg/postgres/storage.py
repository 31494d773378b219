"""The ``Storage`` port on Postgres: steps (``step_session``), reads, claims and queues.

Reads of a machine outside a step (``get``) are one snapshot: the row, tags and events in one
``REPEATABLE READ`` transaction, or, when this node's state cache holds the machine, one
statement that shows the cached state is still the committed one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from mg.core import values
from mg.core.deadline import Deadline
from mg.core.model import Machine, Range, Status
from mg.errors import (
    StorageUnavailable,
)
from mg.postgres import rows
from mg.postgres.bridge.interface import Bridge
from mg.postgres.failures import run_translated, translate
from mg.postgres.sql_files import query
from mg.postgres.state_cache import CachedMachine, StateCache, StoredEvent
from mg.postgres.step_session import PostgresStep, extended, read_events, with_history
from mg.service.ports import NotificationClaim, SearchRow, TimerClaim

T = TypeVar("T")

# Reads that are not bounded by a request deadline still must not hang forever.
READ_TIMEOUT = 30.0
# A read outside a step fetches this many of the newest events in its first (and usually
# only) statement.
NEWEST_READ = 20


async def _read_machine(
    conn: asyncpg.Connection, ns: str, machine_id: str, selection: Range, keep: int
) -> tuple[Machine, CachedMachine] | None:
    """The machine, and the cache entry its state gives, read in the caller's snapshot."""
    row = await conn.fetchrow(query("load_machine"), ns, machine_id)
    if row is None:
        return None
    tags = [r["tag"] for r in await conn.fetch(query("load_tags"), ns, machine_id)]
    entry = rows.cached_from_row(row, tags)
    record = entry.full_record()
    span = entry.span(selection)
    fetched: list[StoredEvent] = []
    if span is not None:
        fetched = await read_events(conn, ns, machine_id, span.low, span.high, span.direction)
    return with_history(entry, selection, record, fetched), extended(entry, fetched, keep)


class PostgresStorage:
    """``Storage`` on a bridge."""

    def __init__(
        self,
        bridge: Bridge,
        *,
        commit_timeout: float = 5.0,
        cache: StateCache | None = None,
        step_idle_margin: float = 5.0,
    ) -> None:
        self._bridge = bridge
        self._commit_timeout = commit_timeout
        self._step_idle_margin = step_idle_margin
        self.cache = cache if cache is not None else StateCache(0, 0)

    async def _run(
        self, work: Callable[[asyncpg.Connection], Awaitable[T]], doing: str, timeout: float
    ) -> T:
        return await run_translated(self._bridge.run, work, doing=doing, timeout=timeout)

    @asynccontextmanager
    async def step(
        self, ns: str, machine_id: str, deadline: Deadline
    ) -> AsyncIterator[PostgresStep]:
        async with AsyncExitStack() as stack:
            try:
                session = await stack.enter_async_context(
                    self._bridge.session(timeout=max(deadline.remaining(), 0.001), lazy=True)
                )
            except Exception as error:
                mapped = translate(error, doing="waiting for a database connection")
                if mapped is None:
                    raise
                raise mapped from error
            yield PostgresStep(
                session,
                ns,
                machine_id,
                deadline,
                self._commit_timeout,
                self.cache,
                self._step_idle_margin,
            )

    async def get(self, ns: str, machine_id: str, selection: Range) -> Machine | None:
        cache = self.cache
        cached = cache.get(ns, machine_id) if cache.enabled else None
        keep = cache.events
        newest = max(keep, NEWEST_READ)

        async def work(conn: asyncpg.Connection) -> tuple[Machine, CachedMachine | None] | None:
            if cached is not None and cached.covers(cached.span(selection)):
                # One statement is one snapshot: if the row still names the cached state, that
                # state is what a full read would have seen.
                found = await conn.fetchrow(query("machine_version"), ns, machine_id)
                if found is not None and (
                    found["incarnation"],
                    found["version"],
                    found["history_revision"],
                ) == (cached.record.incarnation, cached.record.version, cached.revision):
                    return cached.machine(selection, cached.span(selection)), None
            # One statement, one snapshot: enough when the range is within the newest events.
            found_rows = await conn.fetch(query("load_machine_newest"), ns, machine_id, newest)
            if not found_rows:
                return None
            entry = rows.cached_from_row(found_rows[0], found_rows[0]["tags"])
            stored = [rows.newest_event(r) for r in found_rows if r["event_id"] is not None]
            entry = extended(entry, stored, newest)
            span = entry.span(selection)
            if entry.covers(span):
                return entry.machine(selection, span), extended(entry, (), keep)
            # One snapshot for the row, the tags and the events: a step is seen whole or not.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await _read_machine(conn, ns, machine_id, selection, keep)

        read = await self._run(work, "reading the machine", READ_TIMEOUT)
        if read is None:
            cache.drop(ns, machine_id)
            return None
        machine, entry = read
        if entry is not None and cache.enabled:
            cache.put(entry)
        return machine

    async def resolve_tag(self, ns: str, tag: str) -> str | None:
        async def work(conn: asyncpg.Connection) -> str | None:
            found: str | None = await conn.fetchval(query("resolve_tag"), ns, tag)
            return found

        return await self._run(work, "resolving a tag", READ_TIMEOUT)

    async def search(
        self, ns: str, status: Status | None, after_id: str, limit: int
    ) -> list[SearchRow]:
        async def work(conn: asyncpg.Connection) -> list[SearchRow]:
            if status is None:
                found = await conn.fetch(query("search_machines"), ns, after_id, limit)
            else:
                found = await conn.fetch(
                    query("search_machines_by_status"), ns, status.value, after_id, limit
                )
            return [
                SearchRow(
                    r["id"],
                    Status(r["status"]),
                    rows.maybe_moment(r["timer_fire_at"]),
                    rows.moment(r["updated_at"]),
                )
                for r in found
            ]

        return await self._run(work, "searching machines", READ_TIMEOUT)

    async def claim_timers(
        self, now: datetime, limit: int, owner: str, lease: float
    ) -> list[TimerClaim]:
        async def work(conn: asyncpg.Connection) -> list[TimerClaim]:
            found = await conn.fetch(query("claim_due_timers"), now, limit, lease, owner)
            return [
                TimerClaim(
                    r["ns"],
                    r["id"],
                    rows.moment(r["due_at"]),
                    rows.maybe_moment(r["timer_fire_at"]),
                    r["timer_set_by_version"],
                )
                for r in found
            ]

        return await self._run(work, "claiming due timers", READ_TIMEOUT)

    async def next_wake(self) -> datetime | None:
        async def work(conn: asyncpg.Connection) -> datetime | None:
            found: datetime | None = await conn.fetchval(query("next_wake"))
            return rows.maybe_moment(found)

        return await self._run(work, "finding the next timer", READ_TIMEOUT)

    async def enqueue_notification(
        self, ns: str, machine_id: str, args: Any, selection: Range, trace: str, now: datetime
    ) -> int | None:
        packed = values.pack(args)

        async def work(conn: asyncpg.Connection) -> int | None:
            found: int | None = await conn.fetchval(
                query("enqueue_notification"),
                ns,
                machine_id,
                packed,
                selection.after,
                selection.limit,
                selection.direction.value,
                trace,
                now,
            )
            return found

        return await self._run(work, "queueing a notification", READ_TIMEOUT)

    async def claim_notifications(
        self, now: datetime, limit: int, lease: float
    ) -> list[NotificationClaim]:
        async def work(conn: asyncpg.Connection) -> list[NotificationClaim]:
            found = await conn.fetch(query("claim_due_notifications"), now, limit, lease)
            return [rows.notification_claim(r) for r in found]

        return await self._run(work, "claiming due notifications", READ_TIMEOUT)

    async def next_notification(self, now: datetime) -> datetime | None:
        async def work(conn: asyncpg.Connection) -> datetime | None:
            found: datetime | None = await conn.fetchval(query("next_notification"), now)
            return rows.maybe_moment(found)

        return await self._run(work, "finding the next notification", READ_TIMEOUT)

    async def ping(self) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            await conn.fetchval(query("ping"))

        await self._run(work, "checking the database", 5.0)


__all__ = ["PostgresStep", "PostgresStorage", "StorageUnavailable"]
