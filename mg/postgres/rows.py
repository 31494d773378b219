"""Turning machine rows into core records and back. The column order of the machine row in
``insert_machine_with_events`` and ``update_machine_with_events`` (sql/queries/machines.sql) is
defined here once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from mg.core import values
from mg.core.clock import stored_duration, stored_time
from mg.core.model import Content, Direction, Event, MachineRecord, Range, Retry, Status, Timer
from mg.postgres.state_cache import CachedMachine, StoredEvent
from mg.service.ports import NotificationClaim


def moment(value: datetime) -> datetime:
    """A timestamp column as read: aware, finite (``-infinity`` is the window's start)."""
    return stored_time(value)


def maybe_moment(value: datetime | None) -> datetime | None:
    return stored_time(value) if value is not None else None


def record_from_row(row: asyncpg.Record, *, with_aux: bool = True) -> MachineRecord:
    """The record of a machine row; ``with_aux=False`` leaves ``aux_state`` None (the state
    cache keeps it packed)."""
    aux = row["aux_data"] if with_aux else None
    timer: Timer | None = None
    if row["timer_fire_at"] is not None:
        timer = Timer(
            fire_at=moment(row["timer_fire_at"]),
            range=Range(
                after=row["timer_range_after"],
                limit=row["timer_range_limit"],
                direction=Direction(row["timer_range_direction"] or "forward"),
            ),
            handling_timeout=stored_duration(row["timer_handling_timeout"]),
            trace=row["timer_trace"],
            set_by_version=row["timer_set_by_version"] or 0,
        )
    retry: Retry | None = None
    if row["retry_subject"] is not None:
        retry = Retry(
            subject=row["retry_subject"],
            attempt=row["retry_attempt"],
            next_at=moment(row["retry_next_at"]),
            first_failed_at=moment(row["retry_first_failed_at"]),
            reason=row["retry_reason"] or "",
        )
    before = row["status_before_failure"]
    return MachineRecord(
        ns=row["ns"],
        id=row["id"],
        version=row["version"],
        status=Status(row["status"]),
        last_event_id=row["last_event_id"],
        aux_state=(
            Content(values.unpack(aux), row["aux_format_version"]) if aux is not None else None
        ),
        timer=timer,
        created_at=moment(row["created_at"]),
        updated_at=moment(row["updated_at"]),
        failure_reason=row["failure_reason"],
        status_before_failure=Status(before) if before is not None else None,
        retry=retry,
        incarnation=row["incarnation"],
        first_event_id=row["first_event_id"],
    )


def record_params(record: MachineRecord) -> tuple[Any, ...]:
    """Parameters $1..$25 of ``insert_machine_with_events`` / ``update_machine_with_events``."""
    timer = record.timer
    retry = record.retry
    aux = record.aux_state
    return (
        record.ns,
        record.id,
        record.incarnation,
        record.version,
        record.status.value,
        record.last_event_id,
        values.pack(aux.data) if aux is not None else None,
        aux.format_version if aux is not None else None,
        timer.fire_at if timer else None,
        timer.range.after if timer else None,
        timer.range.limit if timer else None,
        timer.range.direction.value if timer else None,
        timer.handling_timeout if timer else None,
        timer.trace if timer else None,
        timer.set_by_version if timer else None,
        record.wake_at,
        retry.subject if retry else None,
        retry.attempt if retry else None,
        retry.next_at if retry else None,
        retry.first_failed_at if retry else None,
        retry.reason if retry else None,
        record.failure_reason,
        record.status_before_failure.value if record.status_before_failure else None,
        record.created_at,
        record.updated_at,
    )


def notification_claim(row: asyncpg.Record) -> NotificationClaim:
    return NotificationClaim(
        id=row["id"],
        ns=row["ns"],
        machine_id=row["machine_id"],
        args=values.unpack(row["args"]),
        range=Range(
            after=row["range_after"],
            limit=row["range_limit"],
            direction=Direction(row["range_direction"]),
        ),
        trace=row["trace"],
        attempt=row["attempt"],
        created_at=moment(row["created_at"]),
        due_at=moment(row["due_at"]),
    )


def cached_from_row(row: asyncpg.Record, tags: Sequence[str]) -> CachedMachine:
    """A state-cache entry for a machine row as read (no events stashed yet)."""
    return CachedMachine(
        record=record_from_row(row, with_aux=False),
        aux_data=row["aux_data"],
        aux_format_version=row["aux_format_version"],
        revision=row["history_revision"],
        tags=tuple(tags),
        stash=(),
    )


def stored_event(row: asyncpg.Record) -> StoredEvent:
    return (row["event_id"], moment(row["created_at"]), row["format_version"], row["data"])


def newest_event(row: asyncpg.Record) -> StoredEvent:
    """An event of ``load_machine_newest`` (whose ``created_at`` is the machine's)."""
    return (row["event_id"], moment(row["event_created_at"]), row["format_version"], row["data"])


def event_from_row(row: asyncpg.Record) -> Event:
    return Event(
        id=row["event_id"],
        created_at=moment(row["created_at"]),
        format_version=row["format_version"],
        data=values.unpack(row["data"]),
    )


def event_columns(events: Sequence[Event]) -> tuple[list[Any], list[Any], list[Any], list[bytes]]:
    """Column arrays for the ``unnest`` inserts of events and outbox rows."""
    return (
        [event.id for event in events],
        [event.created_at for event in events],
        [event.format_version for event in events],
        [values.pack(event.data) for event in events],
    )
