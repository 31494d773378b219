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


Fact = StepFinished | ProcessorCalled | MachineFailedFact
Observer = Callable[[Fact], None]


def ignore(_: Fact) -> None:
    """The observer of a service nobody watches."""
