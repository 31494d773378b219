"""Facts as log lines: the core reports what happened, this decides how loudly to say it.

A step that did its work is ``info`` (one line per step: the audit trail of a payment
service); a step that failed the machine, was not applied, or ended with an unknown outcome is
``warning``. Processor calls, timer firings and notification deliveries are ``debug``: each is
part of a step whose own line tells how it ended.
"""

from __future__ import annotations

import logging

from mg.core.facts import (
    EventsTrimmed,
    Fact,
    MachineFailedFact,
    NotificationDelivered,
    ProcessorCalled,
    SinkPruned,
    SinkSequenced,
    StepFinished,
    TimerFired,
)

log = logging.getLogger("mg.facts")

# dropped: the timer or notification no longer applies; parked: it waits for a repair.
_QUIET_OUTCOMES = ("ok", "rejected", "dropped", "parked")


def _level(outcome: str) -> int:
    return logging.INFO if outcome in _QUIET_OUTCOMES else logging.WARNING


def log_fact(fact: Fact) -> None:
    """The ``Observer`` that writes facts to the log."""
    match fact:
        case StepFinished():
            log.log(
                _level(fact.outcome),
                "step %s %s",
                fact.kind,
                fact.outcome,
                extra={
                    "ns": fact.ns,
                    "machine_id": fact.machine_id,
                    "kind": fact.kind,
                    "outcome": fact.outcome,
                    "seconds": round(fact.seconds, 6),
                    **({"reason": fact.reason} if fact.reason is not None else {}),
                },
            )
        case ProcessorCalled():
            log.debug(
                "processor call %s %s",
                fact.kind,
                fact.outcome,
                extra={
                    "ns": fact.ns,
                    "machine_id": fact.machine_id,
                    "kind": fact.kind,
                    "outcome": fact.outcome,
                    "seconds": round(fact.seconds, 6),
                },
            )
        case MachineFailedFact():
            log.warning(
                "machine failed during %s: %s",
                fact.kind,
                fact.reason,
                extra={"ns": fact.ns, "machine_id": fact.machine_id, "kind": fact.kind},
            )
        case TimerFired():
            log.debug(
                "timer fired %s",
                fact.outcome,
                extra={
                    "ns": fact.ns,
                    "machine_id": fact.machine_id,
                    "outcome": fact.outcome,
                    "lag_seconds": round(fact.lag_seconds, 6),
                },
            )
        case NotificationDelivered():
            log.debug(
                "notification delivered %s",
                fact.outcome,
                extra={
                    "ns": fact.ns,
                    "machine_id": fact.machine_id,
                    "outcome": fact.outcome,
                    "queued_seconds": round(fact.queued_seconds, 6),
                },
            )
        case SinkSequenced():
            log.debug(
                "sink %s sequenced %d event(s) up to %d",
                fact.sink,
                fact.count,
                fact.position,
                extra={"sink": fact.sink, "lag_seconds": round(fact.lag_seconds, 6)},
            )
        case EventsTrimmed():
            log.debug(
                "trimmed %d event(s)",
                fact.count,
                extra={"ns": fact.ns, "machine_id": fact.machine_id, "trimmed": fact.count},
            )
        case SinkPruned():
            log.info(
                "sink %s pruned %d event(s); first held is now %d",
                fact.sink,
                fact.count,
                fact.first,
                extra={"sink": fact.sink, "pruned": fact.count, "first": fact.first},
            )
