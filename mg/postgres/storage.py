"""The ``Storage`` port on Postgres.

A step is one transaction on one held connection: take the machine's advisory lock (bounded by
the deadline), read the machine, let the service call the processor, then write the whole
transition and commit. Any way out other than a commit rolls back, which also frees the lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from mg.core import values
from mg.core.deadline import Deadline
from mg.core.model import Direction, Event, Machine, MachineRecord, Range, Status
from mg.core.ranges import select_span
from mg.core.step import NotificationChange, Transition
from mg.errors import (
    DeadlineExceeded,
    MachineAlreadyExists,
    StorageUnavailable,
    TagConflict,
    VersionConflict,
)
from mg.postgres import rows
from mg.postgres.bridge import Bridge, Session
from mg.postgres.failures import translate
from mg.postgres.sql_files import query
from mg.service.ports import Loaded, NotificationClaim, SearchRow, Selection, TimerClaim

T = TypeVar("T")

# Reads that are not bounded by a request deadline still must not hang forever.
READ_TIMEOUT = 30.0


async def _read_machine(
    conn: asyncpg.Connection, ns: str, machine_id: str, selection: Selection
) -> Machine | None:
    row = await conn.fetchrow(query("load_machine"), ns, machine_id)
    if row is None:
        return None
    record = rows.record_from_row(row)
    if not isinstance(selection, Range):
        selection = selection(record)
    tags = tuple(r["tag"] for r in await conn.fetch(query("load_tags"), ns, machine_id))
    history: tuple[Event, ...] = ()
    span = select_span(selection, 1, record.last_event_id)
    if span is not None:
        name = (
            "load_events_forward" if span.direction is Direction.FORWARD else "load_events_backward"
        )
        found = await conn.fetch(query(name), ns, machine_id, span.low, span.high)
        history = tuple(rows.event_from_row(r) for r in found)
    return Machine(record=record, tags=tags, history=history, history_range=selection)


async def _delete_machine(conn: asyncpg.Connection, ns: str, machine_id: str) -> None:
    for name in ("delete_events", "delete_tags", "delete_notifications", "delete_machine"):
        await conn.execute(query(name), ns, machine_id)


async def _settle_notification(conn: asyncpg.Connection, change: NotificationChange) -> None:
    if change.consumed:
        await conn.execute(query("delete_notification"), change.id)
    else:
        await conn.execute(
            query("postpone_notification"),
            change.id,
            change.deliver_at,
            change.attempt,
            change.error,
        )


async def _write_outbox(
    conn: asyncpg.Connection, record: MachineRecord, transition: Transition, sinks: tuple[str, ...]
) -> None:
    if not sinks or not transition.events:
        return
    ids, times, versions, data = rows.event_columns(transition.events)
    await conn.execute(
        query("insert_outbox"),
        record.ns,
        record.id,
        record.incarnation,
        list(sinks),
        ids,
        times,
        versions,
        data,
    )


class PostgresStep:
    """``StepSession`` on one held connection."""

    def __init__(
        self, session: Session, ns: str, machine_id: str, deadline: Deadline, commit_timeout: float
    ) -> None:
        self._session = session
        self._ns = ns
        self._id = machine_id
        self._deadline = deadline
        self._commit_timeout = commit_timeout

    async def _run(
        self, work: Callable[[asyncpg.Connection], Awaitable[T]], doing: str, timeout: float
    ) -> T:
        try:
            return await self._session.run(work, timeout=max(timeout, 0.001))
        except Exception as error:
            mapped = translate(error, doing=doing)
            if mapped is None:
                raise
            raise mapped from error

    async def load(self, selection: Selection) -> Loaded:
        ns, machine_id = self._ns, self._id
        # Postgres takes at most INT_MAX milliseconds; a longer deadline waits that long.
        lock_ms = min(max(1, int(self._deadline.remaining() * 1000)), 2**31 - 1)

        async def work(conn: asyncpg.Connection) -> Loaded:
            await conn.execute(query("begin"))
            await conn.execute(query("set_lock_timeout"), f"{lock_ms}ms")
            await conn.execute(query("lock_machine"), ns, machine_id)
            machine = await _read_machine(conn, ns, machine_id, selection)
            if machine is not None:
                return Loaded(machine)
            return Loaded(None, await conn.fetchval(query("next_incarnation")))

        if self._deadline.passed():
            raise DeadlineExceeded("the deadline passed before the step began")
        return await self._run(work, "locking and reading the machine", self._deadline.remaining())

    async def commit(self, transition: Transition, sinks: tuple[str, ...]) -> None:
        record = transition.record

        async def write(conn: asyncpg.Connection) -> None:
            if transition.add_tag is not None:
                holder = await conn.fetchval(
                    query("claim_tag"), record.ns, transition.add_tag, record.id
                )
                if holder is None:
                    holder = await conn.fetchval(
                        query("resolve_tag"), record.ns, transition.add_tag
                    )
                    if holder is not None and holder != record.id:
                        raise TagConflict(transition.add_tag, holder)
            if transition.expected_version is None:
                if (
                    await conn.fetchval(query("insert_machine"), *rows.record_params(record))
                    is None
                ):
                    raise MachineAlreadyExists(f"machine {record.id!r} already exists")
            else:
                done = await conn.fetchval(
                    query("update_machine"),
                    *rows.record_params(record),
                    transition.expected_version,
                )
                if done is None:
                    raise VersionConflict(f"machine {record.id!r} changed under this step")
            if transition.events:
                await conn.execute(
                    query("insert_events"),
                    record.ns,
                    record.id,
                    *rows.event_columns(transition.events),
                )
            await _write_outbox(conn, record, transition, sinks)
            if transition.notification is not None:
                await _settle_notification(conn, transition.notification)
            if transition.resume_notifications:
                await conn.execute(
                    query("resume_notifications"), record.ns, record.id, record.updated_at
                )
            if transition.remove:
                await _delete_machine(conn, record.ns, record.id)

        await self._run(write, "writing the step", self._commit_timeout)
        await self._commit()

    async def remove(self, sinks: tuple[str, ...]) -> None:
        ns, machine_id = self._ns, self._id

        async def write(conn: asyncpg.Connection) -> None:
            await _delete_machine(conn, ns, machine_id)

        await self._run(write, "removing the machine", self._commit_timeout)
        await self._commit()

    async def rewrite(self, events: Sequence[Event], expected_version: int) -> None:
        ns, machine_id = self._ns, self._id
        ids, _, versions, data = rows.event_columns(events)

        async def write(conn: asyncpg.Connection) -> None:
            fenced = await conn.fetchval(query("fence_machine"), ns, machine_id, expected_version)
            if fenced is None:
                raise VersionConflict(f"machine {machine_id!r} changed under this step")
            await conn.execute(query("update_events"), ns, machine_id, ids, versions, data)

        await self._run(write, "rewriting events", self._commit_timeout)
        await self._commit()

    async def release_claim(self, record: MachineRecord) -> None:
        async def write(conn: asyncpg.Connection) -> None:
            await conn.execute(
                query("release_wake"), record.ns, record.id, record.wake_at, record.version
            )

        await self._run(write, "releasing a timer claim", self._commit_timeout)
        await self._commit()

    async def settle_notification(self, change: NotificationChange) -> None:
        async def write(conn: asyncpg.Connection) -> None:
            await _settle_notification(conn, change)

        await self._run(write, "settling a notification", self._commit_timeout)
        await self._commit()

    async def _commit(self) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(query("commit"))

        try:
            await self._session.run(work, timeout=self._commit_timeout)
        except Exception as error:
            if translate(error, doing="committing") is None:
                raise
            # The COMMIT may or may not have reached the server: the outcome is unknown.
            raise DeadlineExceeded(
                f"the connection failed during commit; the step may or may not be applied: {error}"
            ) from error


class PostgresStorage:
    """``Storage`` on a bridge."""

    def __init__(self, bridge: Bridge, *, commit_timeout: float = 5.0) -> None:
        self._bridge = bridge
        self._commit_timeout = commit_timeout

    async def _run(
        self, work: Callable[[asyncpg.Connection], Awaitable[T]], doing: str, timeout: float
    ) -> T:
        try:
            return await self._bridge.run(work, timeout=timeout)
        except Exception as error:
            mapped = translate(error, doing=doing)
            if mapped is None:
                raise
            raise mapped from error

    @asynccontextmanager
    async def step(
        self, ns: str, machine_id: str, deadline: Deadline
    ) -> AsyncIterator[PostgresStep]:
        async with AsyncExitStack() as stack:
            try:
                session = await stack.enter_async_context(
                    self._bridge.session(timeout=max(deadline.remaining(), 0.001))
                )
            except Exception as error:
                mapped = translate(error, doing="waiting for a database connection")
                if mapped is None:
                    raise
                raise mapped from error
            yield PostgresStep(session, ns, machine_id, deadline, self._commit_timeout)

    async def get(self, ns: str, machine_id: str, selection: Range) -> Machine | None:
        async def work(conn: asyncpg.Connection) -> Machine | None:
            # One snapshot for the row, the tags and the events: a step is seen whole or not.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await _read_machine(conn, ns, machine_id, selection)

        return await self._run(work, "reading the machine", READ_TIMEOUT)

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
                SearchRow(r["id"], Status(r["status"]), r["timer_fire_at"], r["updated_at"])
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
                    r["ns"], r["id"], r["due_at"], r["timer_fire_at"], r["timer_set_by_version"]
                )
                for r in found
            ]

        return await self._run(work, "claiming due timers", READ_TIMEOUT)

    async def next_wake(self) -> datetime | None:
        async def work(conn: asyncpg.Connection) -> datetime | None:
            found: datetime | None = await conn.fetchval(query("next_wake"))
            return found

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
            return found

        return await self._run(work, "finding the next notification", READ_TIMEOUT)

    async def ping(self) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            await conn.fetchval(query("ping"))

        await self._run(work, "checking the database", 5.0)


__all__ = ["PostgresStep", "PostgresStorage", "StorageUnavailable"]
