"""Step rules: (machine, processor reply, now) -> transition. Pure; storage commits the result
in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from mg.core.clock import after
from mg.core.model import Event, MachineRecord, Retry, Status, Timer
from mg.core.processor_wire import Kind, Reply, TimerSpec, Unset


@dataclass(frozen=True, slots=True)
class NotificationChange:
    """What a notification step does to its notification: consumed (deleted), or put back with
    the next attempt's time (``deliver_at`` None parks it until the machine is repaired)."""

    id: int
    consumed: bool = False
    deliver_at: datetime | None = None
    attempt: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """Everything one step changes, committed together or not at all.

    ``expected_version`` fences the commit: ``None`` means the machine must not exist yet
    (start), otherwise the stored row must still have that version. ``resume_notifications``
    releases notifications parked while the machine was failed.
    """

    record: MachineRecord
    expected_version: int | None
    events: tuple[Event, ...] = ()
    add_tag: str | None = None
    remove: bool = False
    notification: NotificationChange | None = None
    resume_notifications: bool = False
    trimmed: int = 0  # how far the step moved the machine's first held event up


def _timer_from(spec: TimerSpec, now: datetime, trace: str | None, version: int) -> Timer:
    fire_at = spec.deadline if spec.deadline is not None else after(now, spec.timeout or 0.0)
    return Timer(
        fire_at=fire_at,
        range=spec.range,
        handling_timeout=spec.handling_timeout,
        trace=trace,
        set_by_version=version,
    )


def _events(reply: Reply, last_id: int, now: datetime) -> tuple[Event, ...]:
    return tuple(
        Event(id=last_id + offset, created_at=now, format_version=c.format_version, data=c.data)
        for offset, c in enumerate(reply.events, start=1)
    )


def _next_timer(
    current: Timer | None, kind: Kind, reply: Reply, now: datetime, trace: str | None, version: int
) -> Timer | None:
    if isinstance(reply.timer, TimerSpec):
        return _timer_from(reply.timer, now, trace, version)
    if reply.timer is Unset.TIMER:
        return None
    # No timer action keeps the timer, except after a timeout: the fired timer is cleared.
    return None if kind is Kind.TIMEOUT else current


def first_held(first: int, last: int, trim_before: int | None, max_events: int | None) -> int:
    """The oldest event a machine holds after a step (PROTOCOL section 7): ``first`` before the
    step, ``last`` after it; a processor's ``trim`` and the namespace's ``history.max_events``
    only ever move it up, and never past ``last + 1`` (nothing held)."""
    held = first
    if trim_before is not None:
        held = max(held, min(trim_before, last + 1))
    if max_events is not None:
        held = max(held, last + 1 - max_events)
    return held


def start(
    ns: str,
    machine_id: str,
    reply: Reply,
    now: datetime,
    trace: str | None,
    incarnation: int,
    max_events: int | None = None,
) -> Transition:
    """The first step: ``init`` succeeded, the machine comes into being at version 1."""
    timer = _next_timer(None, Kind.INIT, reply, now, trace, 1)
    last = len(reply.events)
    record = MachineRecord(
        ns=ns,
        id=machine_id,
        version=1,
        status=Status.WAITING if timer is not None else Status.SLEEPING,
        last_event_id=last,
        aux_state=reply.aux_state,
        timer=timer,
        created_at=now,
        updated_at=now,
        incarnation=incarnation,
        first_event_id=first_held(1, last, reply.trim_before, max_events),
    )
    return Transition(
        record=record,
        expected_version=None,
        trimmed=record.first_event_id - 1,
        events=_events(reply, 0, now),
        add_tag=reply.tag,
        remove=reply.remove,
    )


def advance(
    record: MachineRecord,
    kind: Kind,
    reply: Reply,
    now: datetime,
    trace: str | None,
    max_events: int | None = None,
) -> Transition:
    """A successful call, repair, timeout or notification step. Events older than the new
    ``first_event_id`` are deleted by the step's own write (those appended by this very step
    are not stored at all, but still go to the sinks)."""
    version = record.version + 1
    timer = _next_timer(record.timer, kind, reply, now, trace, version)
    events = _events(reply, record.last_event_id, now)
    last = record.last_event_id + len(events)
    new = replace(
        record,
        version=version,
        status=Status.WAITING if timer is not None else Status.SLEEPING,
        last_event_id=last,
        first_event_id=first_held(record.first_event_id, last, reply.trim_before, max_events),
        aux_state=reply.aux_state if reply.aux_state is not None else record.aux_state,
        timer=timer,
        updated_at=now,
        failure_reason=None,
        status_before_failure=None,
        retry=None,
    )
    return Transition(
        record=new,
        expected_version=record.version,
        events=events,
        add_tag=reply.tag,
        remove=reply.remove,
        resume_notifications=record.status is Status.FAILED,
        trimmed=new.first_event_id - record.first_event_id,
    )


def fail(record: MachineRecord, reason: str, now: datetime) -> Transition:
    """The machine fails; its history, aux state and timer are kept for repair."""
    before = record.status if record.status is not Status.FAILED else record.status_before_failure
    if before is Status.RETRYING:
        # A retry is dropped by the failure: what comes back on repair is the timer, if any.
        before = Status.WAITING if record.timer is not None else Status.SLEEPING
    new = replace(
        record,
        version=record.version + 1,
        status=Status.FAILED,
        failure_reason=reason,
        status_before_failure=before,
        retry=None,
        updated_at=now,
    )
    return Transition(record=new, expected_version=record.version)


def schedule_retry(
    record: MachineRecord, subject: str, reason: str, attempt: int, next_at: datetime, now: datetime
) -> Transition:
    """A timer or notification step failed transiently for the ``attempt``-th time: the
    machine is ``retrying`` and the next attempt is due at ``next_at``."""
    previous = record.retry if record.retry and record.retry.subject == subject else None
    retry = Retry(
        subject=subject,
        attempt=attempt,
        next_at=next_at,
        first_failed_at=previous.first_failed_at if previous else now,
        reason=reason,
    )
    new = replace(
        record, version=record.version + 1, status=Status.RETRYING, retry=retry, updated_at=now
    )
    return Transition(record=new, expected_version=record.version)


def simple_repair(record: MachineRecord, now: datetime) -> Transition:
    """Back to the status before the failure; a ``waiting`` machine's timer is re-armed."""
    status = Status.WAITING if record.timer is not None else Status.SLEEPING
    new = replace(
        record,
        version=record.version + 1,
        status=status,
        failure_reason=None,
        status_before_failure=None,
        retry=None,
        updated_at=now,
    )
    return Transition(record=new, expected_version=record.version, resume_notifications=True)
