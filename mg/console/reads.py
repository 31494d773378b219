"""What the console reads beside the machine service: the overview's counts and a machine's
queued notifications (the ``ConsoleReads`` port; ``mg.postgres.console_reads`` implements it).
Every read is bounded by what a page shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from mg.core.model import Range


@dataclass(frozen=True, slots=True)
class NamespaceCounts:
    by_status: dict[str, int] = field(default_factory=dict)
    timers_overdue: int = 0
    notifications_queued: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


@dataclass(frozen=True, slots=True)
class SinkSummary:
    """Positions held (``first = last + 1`` when none), the outbox rows waiting for the
    sequencer and the age in seconds of the oldest of them (the sequencer's lag)."""

    first: int
    last: int
    outbox: int
    lag_seconds: float


@dataclass(frozen=True, slots=True)
class Overview:
    namespaces: dict[str, NamespaceCounts]
    sinks: dict[str, SinkSummary]
    # Namespaces and sinks whose database could not be read, with why: the rest is shown.
    unavailable: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueuedNotification:
    id: int
    args: Any
    range: Range
    created_at: datetime
    attempt: int
    deliver_at: datetime | None
    last_error: str | None


class ConsoleReads(Protocol):
    async def overview(self, sinks: tuple[str, ...]) -> Overview: ...

    async def count(self, ns: str, status: str) -> int: ...

    async def notifications(
        self, ns: str, machine_id: str, limit: int
    ) -> list[QueuedNotification]: ...
