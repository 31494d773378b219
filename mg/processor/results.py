"""What a processor's handlers return and raise (PROTOCOL section 4, the processor's answer).

A handler returns a ``Result``; everything in it is optional. Raising ``InvalidArgs`` from
``init`` refuses the start (the client gets ``invalid_args`` with the reason; nothing is stored),
``RepairRefused`` from ``repair`` refuses the repair (the client gets ``repair_failed`` with the
reason), ``Transient`` asks mg to try again later (``503``), and any other exception fails the
machine.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mg.core.model import Range


class Keep(enum.Enum):
    """The default of ``Result.aux_state``: keep the machine's aux state as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Arm the machine's timer, replacing any other: ``timeout`` seconds from now or at
    ``deadline`` (exactly one). ``range`` cuts the history sent with the ``timeout`` signal;
    ``handling_timeout`` bounds how long mg waits for that signal's answer."""

    timeout: float | None = None
    deadline: datetime | None = None
    range: Range | None = None
    handling_timeout: float | None = None

    def __post_init__(self) -> None:
        if (self.timeout is None) == (self.deadline is None):
            raise ValueError("SetTimer needs exactly one of timeout and deadline")
        if self.timeout is not None and self.timeout < 0:
            raise ValueError("SetTimer.timeout must not be negative")
        if self.deadline is not None and self.deadline.tzinfo is None:
            raise ValueError("SetTimer.deadline must be an aware datetime (e.g. in UTC)")
        if self.handling_timeout is not None and self.handling_timeout <= 0:
            raise ValueError("SetTimer.handling_timeout must be positive")


@dataclass(frozen=True, slots=True)
class UnsetTimer:
    """Disarm the machine's timer."""


UNSET_TIMER = UnsetTimer()


@dataclass(frozen=True, slots=True)
class Result:
    """A handler's answer.

    - ``response``: returned to the client of a call or repair.
    - ``events``: appended in order; each a ``Content``, or a plain value that the framework
      stamps with the processor's ``format_version``.
    - ``aux_state``: replaces the aux state (a ``Content`` or a plain value, stamped likewise);
      ``KEEP`` (the default) keeps it.
    - ``timer``: ``SetTimer(...)`` or ``UNSET_TIMER``; ``None`` keeps the timer (a fired
      timer is already cleared when ``timeout`` runs).
    - ``tag``: a tag to add; a tag held by another machine fails the step.
    - ``remove``: remove the machine after this step's events are stored.
    - ``trim_before``: delete the machine's events with smaller ids, in the step's own
      transaction (PROTOCOL section 7); it may reach the new last event + 1 (this step's
      events count), no further. The usual use: keep a snapshot in ``aux_state`` and trim
      the history behind it (``trim_before=machine.history_bounds.last + len(events) + 1``).
    """

    response: Any = None
    events: Sequence[Any] = ()
    aux_state: Any = KEEP
    timer: SetTimer | UnsetTimer | None = None
    tag: str | None = None
    remove: bool = False
    trim_before: int | None = None

    def __post_init__(self) -> None:
        if self.trim_before is not None and (
            isinstance(self.trim_before, bool)
            or not isinstance(self.trim_before, int)
            or self.trim_before < 1
        ):
            raise ValueError("Result.trim_before must be a positive integer")


class RepairRefused(Exception):
    """Raised by ``repair`` to refuse: mg answers the client ``repair_failed`` with
    ``reason`` (any value) and the machine stays failed."""

    def __init__(self, reason: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidArgs(Exception):
    """Raised by ``init`` to refuse the start's arguments: mg answers the client
    ``422 invalid_args`` with ``reason`` (any value) and stores nothing, so the same id can be
    started again with good arguments."""

    def __init__(self, reason: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason


class Transient(Exception):
    """Raised by any handler when it cannot answer now (a dependency is down): mg applies
    nothing and the client gets ``unavailable``; timers and notifications are retried."""


__all__ = [
    "KEEP",
    "UNSET_TIMER",
    "InvalidArgs",
    "Keep",
    "RepairRefused",
    "Result",
    "SetTimer",
    "Transient",
    "UnsetTimer",
]
