"""What the client API answers, as typed values (PROTOCOL sections 2, 3 and 5).

``Content``, ``Event``, ``Range``, ``Direction`` and ``Status`` are the core's own shapes; the
rest are the client's views of mg's answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mg.core.model import Content, Direction, Event, HistoryBounds, Range, Status


@dataclass(frozen=True, slots=True)
class Tag:
    """Addresses the machine that holds this tag, wherever a machine id is accepted
    (every operation but start and remove)."""

    name: str


Address = str | Tag
"""A machine id, or a ``Tag``."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Why a ``retrying`` machine is retrying: its timer or notification step failed
    transiently ``attempt`` times, the last time because of ``last_error``; the next attempt is
    due at ``next_at``."""

    subject: str  # "timer" or "notification"
    attempt: int
    next_at: datetime
    last_error: str


@dataclass(frozen=True, slots=True)
class Machine:
    """A machine as ``get`` reads it: a consistent snapshot between steps. ``retry`` is set
    while the status is ``retrying`` (``None`` from a node older than contract v1.1)."""

    ns: str
    id: str
    status: Status
    failure_reason: str | None
    history: tuple[Event, ...]
    history_range: Range
    aux_state: Content | None
    timer: datetime | None
    tags: tuple[str, ...]
    retry: Retry | None = None
    # The events held, first..last (None from an mg older than contract v1.1).
    history_bounds: HistoryBounds | None = None


@dataclass(frozen=True, slots=True)
class MachineSummary:
    """One machine of a search page."""

    id: str
    status: Status
    timer: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SearchPage:
    """Machines ordered by id; pass ``next_cursor`` back for the next page (``None``: last)."""

    machines: tuple[MachineSummary, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class SinkEvent:
    """One event of a sink's log; ``hash`` chains it to the sink's previous event."""

    id: int
    ns: str
    machine_id: str
    event: Event
    hash: str
    # Tells apart machines of one id separated by a remove (mg's addition; not hashed).
    incarnation: int | None = None


@dataclass(frozen=True, slots=True)
class SinkBounds:
    """The positions a sink holds, ``first..last`` (``first = last + 1`` when none), and
    ``anchor``, the hex hash of position ``first - 1`` (64 zeros when nothing was pruned)."""

    sink: str
    first: int
    last: int
    anchor: str


__all__ = [
    "Address",
    "Content",
    "Direction",
    "Event",
    "HistoryBounds",
    "Machine",
    "MachineSummary",
    "Range",
    "Retry",
    "SearchPage",
    "SinkBounds",
    "SinkEvent",
    "Status",
    "Tag",
]
