"""Typed facts the service reports. The core never logs or counts by itself: handlers (logs,
metrics) subscribe to these and turn them into lines and series."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StepFinished:
    """A step ended. ``outcome``: ``ok``, ``failed`` (the machine failed), ``rejected`` (a
    logic error, nothing done), ``transient`` (nothing applied), ``unknown`` (deadline)."""

    ns: str
    machine_id: str
    kind: str
    outcome: str
    seconds: float
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ProcessorCalled:
    ns: str
    machine_id: str
    kind: str
    outcome: str  # ok | transient | permanent | refused
    seconds: float


@dataclass(frozen=True, slots=True)
class MachineFailedFact:
    ns: str
    machine_id: str
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer's step ran (``outcome`` as in ``StepFinished``, or ``dropped`` when the machine
    no longer held that timer). ``lag_seconds``: fire time minus due time."""

    ns: str
    machine_id: str
    outcome: str
    lag_seconds: float


@dataclass(frozen=True, slots=True)
class NotificationDelivered:
    """A notification's step ran (``outcome`` as in ``StepFinished``, or ``parked`` when the
    machine is failed, ``dropped`` when it is gone)."""

    ns: str
    machine_id: str
    outcome: str
    queued_seconds: float


@dataclass(frozen=True, slots=True)
class SinkSequenced:
    """A sink's sequencer moved a batch: ``position`` is the last id given out, ``lag_seconds``
    the age of the oldest moved event (commit to readable)."""

    sink: str
    count: int
    position: int
    lag_seconds: float


@dataclass(frozen=True, slots=True)
class EventsTrimmed:
    """A committed step moved its machine's first held event up by ``count`` (a processor's
    trim or the namespace's ``history.max_events``)."""

    ns: str
    machine_id: str
    count: int


@dataclass(frozen=True, slots=True)
class SinkPruned:
    """The sink's retention deleted ``count`` of its oldest events; ``first`` is now held."""

    sink: str
    count: int
    first: int


Fact = (
    StepFinished
    | ProcessorCalled
    | MachineFailedFact
    | TimerFired
    | NotificationDelivered
    | SinkSequenced
    | EventsTrimmed
    | SinkPruned
)
Observer = Callable[[Fact], None]


def ignore(_: Fact) -> None:
    """The observer of a service nobody watches."""
