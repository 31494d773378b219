"""What the service needs from the outside world. Adapters (``mg.postgres``,
``mg.adapters``) implement these; the composition root (``mg.node``) picks them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from mg.core.deadline import Deadline
from mg.core.model import Content, Event, Machine, MachineRecord, Range, Status
from mg.core.processor_wire import Kind, Reply
from mg.core.step import NotificationChange, Transition
from mg.settings import Namespace


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a step sees under the machine's lock: the machine, or ``None`` with the
    incarnation a new machine of that id would get."""

    machine: Machine | None
    new_incarnation: int = 0


@dataclass(frozen=True, slots=True)
class SearchRow:
    id: str
    status: Status
    timer: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TimerClaim:
    """A due machine claimed by a timer loop: ``due_at`` is when it was due, ``fire_at`` and
    ``set_by_version`` name the timer it held when claimed."""

    ns: str
    id: str
    due_at: datetime
    fire_at: datetime | None
    set_by_version: int | None


@dataclass(frozen=True, slots=True)
class NotificationClaim:
    id: int
    ns: str
    machine_id: str
    args: Any
    range: Range
    trace: str | None
    attempt: int
    created_at: datetime
    due_at: datetime


Selection = Range | Callable[[MachineRecord], Range]
"""The history a step reads: a range, or a function choosing it from the machine's record
(a timeout step reads the range stored with the timer)."""


class StepSession(Protocol):
    """One step's transaction, holding the machine's cluster-wide lock until it ends."""

    async def load(self, selection: Selection) -> Loaded: ...

    async def hold_until(self, deadline: Deadline) -> None:
        """Let the transaction stay open until ``deadline`` (when a step learns after ``load``
        that its processor call may end later than the step's own deadline)."""
        ...

    async def commit(self, transition: Transition, sinks: tuple[str, ...]) -> None:
        """Write the transition and commit. Raises ``TagConflict`` before writing anything
        (the session stays usable), ``VersionConflict``, ``StorageUnavailable`` (nothing
        applied) or ``DeadlineExceeded`` (the commit's outcome is unknown)."""
        ...

    async def remove(self, sinks: tuple[str, ...]) -> None:
        """Delete the machine, its events, tags, timer and notifications, and commit."""
        ...

    async def rewrite(self, events: Sequence[Event], expected_version: int) -> None:
        """Store ``events``' data and format versions in place (same ids and times) and
        commit, if the machine row still has ``expected_version``. The sink is not touched."""
        ...

    async def release_claim(self, record: MachineRecord) -> None:
        """A timer claim that found nothing to do: restore the machine's wake time, commit."""
        ...

    async def settle_notification(self, change: NotificationChange) -> None:
        """Delete or postpone a notification without changing its machine, and commit."""
        ...


@dataclass(slots=True)
class GaugeSample:
    """What the database says about troubled machines, queues and sinks, for the metrics
    gauges that need it (sampled by ``mg.observability.sampler``)."""

    retrying: dict[str, int]
    failed: dict[str, int]
    queued: dict[str, int]
    outbox: dict[str, tuple[int, float]]
    heads: dict[str, int]


class Gauges(Protocol):
    async def sample(self) -> GaugeSample: ...


class Storage(Protocol):
    def step(
        self, ns: str, machine_id: str, deadline: Deadline
    ) -> AbstractAsyncContextManager[StepSession]: ...

    async def get(self, ns: str, machine_id: str, selection: Range) -> Machine | None: ...

    async def resolve_tag(self, ns: str, tag: str) -> str | None: ...

    async def search(
        self, ns: str, status: Status | None, after_id: str, limit: int
    ) -> list[SearchRow]: ...

    async def ping(self) -> None: ...

    async def claim_timers(
        self, now: datetime, limit: int, owner: str, lease: float
    ) -> list[TimerClaim]: ...

    async def next_wake(self) -> datetime | None: ...

    async def enqueue_notification(
        self, ns: str, machine_id: str, args: Any, selection: Range, trace: str, now: datetime
    ) -> int | None:
        """Queue a notification if the machine exists; its id, else None."""
        ...

    async def claim_notifications(
        self, now: datetime, limit: int, lease: float
    ) -> list[NotificationClaim]: ...

    async def next_notification(self, now: datetime) -> datetime | None: ...


class Nudges(Protocol):
    """How the service tells background loops (on this node and others) that work is due."""

    def timer_scheduled(self, at: datetime) -> None: ...

    def notification_queued(self) -> None: ...

    def events_written(self, sinks: tuple[str, ...]) -> None: ...


class Processor(Protocol):
    async def invoke(
        self,
        namespace: Namespace,
        kind: Kind,
        args: Any,
        machine_id: str,
        machine: Machine | None,
        deadline: Deadline,
        trace: str | None,
    ) -> Reply:
        """Raises ``ProcessorTransientFailure``, ``ProcessorPermanentFailure`` or, for a
        repair, ``RepairFailed``."""
        ...


class Modernizer(Protocol):
    async def modernize(
        self,
        namespace: Namespace,
        machine_id: str,
        event: Event,
        deadline: Deadline,
        trace: str | None,
    ) -> Content:
        """The event's new content. Raises ``Unavailable``, ``DeadlineExceeded`` or
        ``ModernizerFailed``."""
        ...
