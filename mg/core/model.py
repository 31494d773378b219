"""The shapes of machines, events and ranges, as the core sees them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class Direction(enum.StrEnum):
    FORWARD = "forward"
    BACKWARD = "backward"


class Status(enum.StrEnum):
    SLEEPING = "sleeping"
    WAITING = "waiting"
    RETRYING = "retrying"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Range:
    """A cut of a machine's history (PROTOCOL section 2): the events after id ``after`` (from
    the start, or from the newest walking backward, when ``None``), at most ``limit`` of them,
    walking ``direction``: ``Direction.FORWARD`` (the default) or ``Direction.BACKWARD``, or
    their strings ``"forward"`` and ``"backward"``."""

    after: int | None = None
    limit: int | None = None
    direction: Direction = Direction.FORWARD

    def __post_init__(self) -> None:
        given: object = self.direction  # a str from callers that skip the enum
        if not isinstance(given, Direction):
            try:
                direction = Direction(given if isinstance(given, str) else "")
            except ValueError:
                raise ValueError(
                    f'Range.direction must be "forward" or "backward", not {given!r}'
                ) from None
            object.__setattr__(self, "direction", direction)


WHOLE_HISTORY = Range()
NO_HISTORY = Range(limit=0)


@dataclass(frozen=True, slots=True)
class HistoryBounds:
    """The events a machine holds, ``first..last`` (PROTOCOL sections 2 and 7): ``last`` is the
    newest event ever appended (0 for none), ``first`` the oldest not trimmed (``last + 1``
    when none is held)."""

    first: int
    last: int

    @property
    def held(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True, slots=True)
class Content:
    data: Any
    format_version: int | None = None


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    created_at: datetime
    format_version: int | None
    data: Any


@dataclass(frozen=True, slots=True)
class Timer:
    """An armed timer, stored on the machine row.

    ``set_by_version`` is the machine version of the step that set it; with ``fire_at`` it names
    "the same timer", so a timer replaced or unset meanwhile is recognised when a claim fires.
    """

    fire_at: datetime
    range: Range = WHOLE_HISTORY
    handling_timeout: float | None = None
    trace: str | None = None
    set_by_version: int = 0


TIMER_RETRY = "timer"
NOTIFICATION_RETRY = "notification"


@dataclass(frozen=True, slots=True)
class Retry:
    """A scheduled retry of a failed-transiently timer or notification step."""

    subject: str  # TIMER_RETRY | NOTIFICATION_RETRY
    attempt: int  # attempts failed so far
    next_at: datetime
    first_failed_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class MachineRecord:
    """The machine row: everything about a machine but its history and tags."""

    ns: str
    id: str
    version: int
    status: Status
    last_event_id: int
    aux_state: Content | None
    timer: Timer | None
    created_at: datetime
    updated_at: datetime
    failure_reason: str | None = None
    status_before_failure: Status | None = None
    retry: Retry | None = None
    incarnation: int = 0
    # The oldest event held (``last_event_id + 1`` when none is): older ones were trimmed.
    first_event_id: int = 1

    @property
    def wake_at(self) -> datetime | None:
        """When the timer loop must next act on this machine, if ever: the timer's fire time,
        or the next attempt of a timer step that failed transiently. (Notification retries are
        scheduled on the notification itself.)"""
        if self.status is Status.FAILED:
            return None
        if self.retry is not None and self.retry.subject == TIMER_RETRY:
            return self.retry.next_at
        return self.timer.fire_at if self.timer is not None else None


@dataclass(frozen=True, slots=True)
class Machine:
    """A machine as read: its record, its tags and a cut of its history."""

    record: MachineRecord
    tags: tuple[str, ...]
    history: tuple[Event, ...]
    history_range: Range = WHOLE_HISTORY

    @property
    def history_bounds(self) -> HistoryBounds:
        return HistoryBounds(self.record.first_event_id, self.record.last_event_id)
