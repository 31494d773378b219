"""A step's transaction on one held connection (the ``StepSession`` port on Postgres).

Two crossings of the bridge per step, whatever the step does in between:

1. ``load``: take the connection, ``BEGIN``, then ``mg_lock_machine`` (migration 0005) bounds the
   lock wait by the deadline, takes the machine's cluster-wide advisory lock and reads the row,
   unless this node's cached copy (``StateCache``) is still current; events are read only when
   the range asked for reaches below the cached stash.
2. ``commit`` (and every other way to end a step): one statement writes the row, the events
   and the outbox rows; ``COMMIT``; the connection goes back to the pool.

Any way out other than a commit rolls back, which also frees the lock. Should this node stall
between the two crossings, Postgres itself rolls back: ``load`` bounds how long the transaction
may sit idle (``idle_in_transaction_session_timeout``, for this transaction only) by the time
left before the deadline plus ``idle_margin``, and past it ends the session, which frees the
lock; the next crossing then fails as storage unavailable (nothing was applied). A connection lost
during ``COMMIT`` leaves the outcome unknown: ``DeadlineExceeded``. The cache is touched on the
trio side only; the work functions below run on the bridge's loop and merely return values.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TypeVar

import asyncpg

from mg.core.deadline import Deadline
from mg.core.model import Direction, Event, Machine, MachineRecord, Range
from mg.core.step import NotificationChange, Transition
from mg.errors import DeadlineExceeded, MachineAlreadyExists, TagConflict, VersionConflict
from mg.postgres import rows
from mg.postgres.bridge.interface import Session
from mg.postgres.failures import run_translated, translate
from mg.postgres.sql_files import query
from mg.postgres.state_cache import CachedMachine, StateCache, StoredEvent, stash_from, to_event
from mg.service.ports import Loaded, Selection

T = TypeVar("T")
Conn = asyncpg.Connection


async def delete_machine(conn: Conn, ns: str, machine_id: str) -> None:
    names = ("lock_notification_queue", "delete_events", "delete_tags", "delete_notifications")
    for name in (*names, "delete_machine"):
        await conn.execute(query(name), ns, machine_id)


async def settle(conn: Conn, change: NotificationChange) -> None:
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


async def read_events(
    conn: Conn, ns: str, machine_id: str, low: int, high: int, direction: Direction
) -> list[StoredEvent]:
    name = "load_events_forward" if direction is Direction.FORWARD else "load_events_backward"
    return [rows.stored_event(r) for r in await conn.fetch(query(name), ns, machine_id, low, high)]


def with_history(
    entry: CachedMachine, chosen: Range, record: MachineRecord, fetched: Sequence[StoredEvent]
) -> Machine:
    """The machine as a step or a reader sees it: the history ``chosen`` taken from ``fetched``
    (read from the database, in walking order) or else from the stash."""
    span = entry.span(chosen)
    if fetched or not entry.covers(span):
        return Machine(record, entry.tags, tuple(to_event(e) for e in fetched), chosen)
    return entry.machine(chosen, span, record)


def extended(entry: CachedMachine, fetched: Sequence[StoredEvent], keep: int) -> CachedMachine:
    """``entry`` with events just read merged into its stash, where they reach the newest, and
    no more than ``keep`` of them."""
    if not fetched and len(entry.stash) <= keep:
        return entry
    merged = {e[0]: e for e in fetched} | {e[0]: e for e in entry.stash}
    record = entry.record
    stash = stash_from(record.last_event_id, list(merged.values()), keep, record.first_event_id)
    return replace(entry, stash=stash)


class PostgresStep:
    def __init__(
        self,
        session: Session,
        ns: str,
        machine_id: str,
        deadline: Deadline,
        commit_timeout: float,
        cache: StateCache,
        idle_margin: float = 5.0,
    ) -> None:
        self._session = session
        self._idle_margin = idle_margin
        self._ns = ns
        self._id = machine_id
        self._deadline = deadline
        self._commit_timeout = commit_timeout
        self._cache = cache
        # The committed state this step read under its lock (None: the machine did not exist).
        self._base: CachedMachine | None = None

    async def load(self, selection: Selection) -> Loaded:
        ns, machine_id, keep = self._ns, self._id, self._cache.events
        cached = self._cache.get(ns, machine_id) if self._cache.enabled else None
        known = (
            (cached.record.incarnation, cached.record.version, cached.revision)
            if cached is not None
            else (None, None, None)
        )
        # Postgres takes at most INT_MAX milliseconds; a longer deadline waits that long.
        lock_ms = min(max(1, int(self._deadline.remaining() * 1000)), 2**31 - 1)
        idle_ms = self._idle_ms()

        async def work(conn: Conn) -> tuple[Loaded, CachedMachine | None, bool]:
            await conn.execute(query("begin"))
            row = await conn.fetchrow(
                query("lock_and_load_machine"),
                ns,
                machine_id,
                f"{lock_ms}ms",
                *known,
                f"{idle_ms}ms",
            )
            assert row is not None, "mg_lock_machine returns one row"
            if not row["present"]:
                return Loaded(None, row["new_incarnation"]), None, False
            entry = cached if row["current"] and cached is not None else None
            hit = entry is not None
            if entry is None:
                entry = rows.cached_from_row(row, row["tags"] or ())
            record = entry.full_record()
            chosen = selection if isinstance(selection, Range) else selection(record)
            span = entry.span(chosen)
            fetched: list[StoredEvent] = []
            if not entry.covers(span):
                assert span is not None
                fetched = await read_events(
                    conn, ns, machine_id, span.low, span.high, span.direction
                )
            machine = with_history(entry, chosen, record, fetched)
            return Loaded(machine), extended(entry, fetched, keep), hit

        if self._deadline.passed():
            raise DeadlineExceeded("the deadline passed before the step began")
        loaded, base, hit = await self._run(
            work, "locking and reading the machine", self._deadline.remaining()
        )
        if cached is not None and base is None:
            self._cache.drop(ns, machine_id)  # removed meanwhile by another node
        elif base is not None and self._cache.enabled:
            self._cache.put(base)
            self._cache.hits += hit
            self._cache.misses += not hit
        self._base = base
        return loaded

    async def hold_until(self, deadline: Deadline) -> None:
        # A timer's deadline, counted from after the load, is always a little later than the
        # load's: unless it is later by more than half the margin, the bound set by ``load``
        # (its deadline plus the margin) still covers it with time to commit, and a crossing
        # and a round trip per timer step are saved.
        if (deadline.at - self._deadline.at).total_seconds() <= self._idle_margin / 2:
            return
        self._deadline = deadline
        idle = f"{self._idle_ms()}ms"

        async def work(conn: Conn) -> None:
            await conn.execute(query("bound_idle_transaction"), idle)

        await self._run(work, "extending the step's transaction", self._commit_timeout)

    def _idle_ms(self) -> int:
        """How long the transaction may sit idle from now: the time left plus the margin."""
        seconds = max(self._deadline.remaining(), 0.001) + self._idle_margin
        return min(int(seconds * 1000), 2**31 - 1)

    async def commit(self, transition: Transition, sinks: tuple[str, ...]) -> None:
        record = transition.record
        params = rows.record_params(record)
        columns = rows.event_columns(transition.events)
        sink_list = list(sinks) if transition.events else []
        if transition.add_tag is not None:
            # Its own crossing: a conflict must leave the session usable, to fail the machine.
            await self._claim_tag(record, transition.add_tag)

        async def write(conn: Conn) -> None:
            if transition.expected_version is None:
                done = await conn.fetchval(
                    query("insert_machine_with_events"),
                    *params,
                    *columns,
                    sink_list,
                    record.first_event_id,
                )
                if done is None:
                    raise MachineAlreadyExists(f"machine {record.id!r} already exists")
            else:
                done = await conn.fetchval(
                    query("update_machine_with_events"),
                    *params,
                    transition.expected_version,
                    *columns,
                    sink_list,
                    record.first_event_id,
                )
                if done is None:
                    raise VersionConflict(f"machine {record.id!r} changed under this step")
            if transition.notification is not None:
                await settle(conn, transition.notification)
            if transition.resume_notifications:
                await conn.execute(
                    query("resume_notifications"), record.ns, record.id, record.updated_at
                )
            if transition.remove:
                await delete_machine(conn, record.ns, record.id)

        await self._finish(write, "writing the step", keep_cache=False)
        if transition.remove or not self._cache.enabled:
            return
        base = self._base
        new = [
            (e.id, e.created_at, e.format_version, data)
            for e, data in zip(transition.events, columns[3], strict=True)
        ]
        tags = base.tags if base is not None else ()
        if transition.add_tag is not None and transition.add_tag not in tags:
            tags = tuple(sorted((*tags, transition.add_tag)))
        self._cache.put(
            CachedMachine(
                record=replace(record, aux_state=None),
                aux_data=params[6],
                aux_format_version=params[7],
                revision=base.revision if base is not None else 0,
                tags=tags,
                stash=stash_from(
                    record.last_event_id,
                    [*(base.stash if base is not None else ()), *new],
                    self._cache.events,
                    record.first_event_id,
                ),
            )
        )

    async def _claim_tag(self, record: MachineRecord, tag: str) -> None:
        async def claim(conn: Conn) -> None:
            holder = await conn.fetchval(query("claim_tag"), record.ns, tag, record.id)
            if holder is None:
                holder = await conn.fetchval(query("resolve_tag"), record.ns, tag)
                if holder is not None and holder != record.id:
                    raise TagConflict(tag, holder)

        await self._run(claim, "claiming a tag", self._commit_timeout)

    async def remove(self, sinks: tuple[str, ...]) -> None:
        ns, machine_id = self._ns, self._id

        async def write(conn: Conn) -> None:
            await delete_machine(conn, ns, machine_id)

        await self._finish(write, "removing the machine", keep_cache=False)
        self._cache.drop(ns, machine_id)

    async def rewrite(self, events: Sequence[Event], expected_version: int) -> None:
        ns, machine_id = self._ns, self._id
        ids, _, versions, data = rows.event_columns(events)

        async def write(conn: Conn) -> None:
            fenced = await conn.fetchval(query("fence_machine"), ns, machine_id, expected_version)
            if fenced is None:
                raise VersionConflict(f"machine {machine_id!r} changed under this step")
            await conn.execute(query("update_events"), ns, machine_id, ids, versions, data)

        await self._finish(write, "rewriting events", keep_cache=False)
        self._cache.drop(ns, machine_id)  # the revision moved; the next read refills it

    async def release_claim(self, record: MachineRecord) -> None:
        async def write(conn: Conn) -> None:
            await conn.execute(
                query("release_wake"), record.ns, record.id, record.wake_at, record.version
            )

        # The wake time is not part of the cached state: the entry stays valid either way.
        await self._finish(write, "releasing a timer claim", keep_cache=True)

    async def settle_notification(self, change: NotificationChange) -> None:
        async def write(conn: Conn) -> None:
            await settle(conn, change)

        await self._finish(write, "settling a notification", keep_cache=True)

    async def _run(self, work: Callable[[Conn], Awaitable[T]], doing: str, timeout: float) -> T:
        return await run_translated(
            self._session.run, work, doing=doing, timeout=max(timeout, 0.001)
        )

    async def _finish(
        self, write: Callable[[Conn], Awaitable[None]], doing: str, *, keep_cache: bool
    ) -> None:
        """``write``, ``COMMIT`` and the connection's release, in one crossing. Unless it
        succeeds, the machine's cache entry is dropped (``keep_cache``: the write cannot change
        what the entry holds): any doubt means a reload."""
        committing = False

        async def work(conn: Conn) -> None:
            nonlocal committing
            await write(conn)
            committing = True
            await conn.execute(query("commit"))

        succeeded = False
        try:
            await self._session.run(work, timeout=self._commit_timeout, release=True)
            succeeded = True
        except Exception as error:
            mapped = translate(error, doing="committing" if committing else doing)
            if mapped is None or (mapped is error and not committing):
                raise
            if committing:
                # The COMMIT may or may not have reached the server: the outcome is unknown.
                raise DeadlineExceeded(
                    "the connection failed during commit; the step may or may not be applied: "
                    f"{error}"
                ) from error
            raise mapped from error
        finally:
            if not succeeded and not keep_cache:
                self._cache.drop(self._ns, self._id)
