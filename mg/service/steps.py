"""The path every step takes, whoever asked for it (a client, the timer loop, the notification
loop): queue on the machine's in-memory lock, take a step slot, open the step's transaction
(cluster-wide lock + read), call the processor, commit. Facts about each step are reported here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import trio

from mg.core import log_context as context
from mg.core.clock import utc_now
from mg.core.deadline import Deadline
from mg.core.facts import EventsTrimmed, Observer, ProcessorCalled, StepFinished, ignore
from mg.core.model import Machine
from mg.core.processor_wire import Kind, Reply
from mg.core.step import Transition
from mg.core.trace import parse as parse_trace
from mg.errors import (
    DeadlineExceeded,
    InvalidArgs,
    LogicError,
    MachineFailed,
    NamespaceNotFound,
    Overloaded,
    ProcessorPermanentFailure,
    ProcessorTransientFailure,
    RepairFailed,
    TransientError,
)
from mg.service.locks import MachineLocks
from mg.service.ports import Nudges, Processor, StepSession, Storage
from mg.settings import Namespace, Settings

Body = Callable[[StepSession], Awaitable[str | tuple[str, str] | None]]
"""A step's work inside its transaction; it may return the outcome to report (default ok), or
the outcome and its reason (a retried step says why it is retried)."""


@dataclass(frozen=True, slots=True)
class Activity:
    """This node's in-memory load at one moment (for metrics)."""

    steps_in_flight: int
    step_slots: int
    waiting_for_slot: int
    queued_on_machines: int
    busy_machines: int


class NoNudges:
    """Nudges for a node without background loops (and for tests of the service alone)."""

    def timer_scheduled(self, ns: str, at: datetime) -> None:
        pass

    def notification_queued(self, ns: str) -> None:
        pass

    def events_written(self, sinks: tuple[str, ...]) -> None:
        pass


def _outcome(reported: str | tuple[str, str] | None) -> tuple[str, str | None]:
    """What a step's body returned, as the outcome to report and its reason."""
    if isinstance(reported, tuple):
        return reported
    return reported or "ok", None


class Steps:
    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        processor: Processor,
        *,
        observer: Observer = ignore,
        clock: Callable[[], datetime] = utc_now,
        nudges: Nudges | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.observe = observer
        self.now = clock
        self.nudges: Nudges = nudges or NoNudges()
        self._processor = processor
        self.locks = MachineLocks(settings.limits.max_queue_per_machine)
        self.slots = trio.CapacityLimiter(settings.limits.max_steps_in_flight)
        # A step takes its namespace's slot, then one of the node's: a namespace whose
        # processor is slow fills its own share, never the whole node (Settings.step_slots).
        self.namespace_slots = {
            name: trio.CapacityLimiter(settings.step_slots(name)) for name in settings.namespaces
        }

    def activity(self) -> Activity:
        slots = self.slots.statistics()
        return Activity(
            steps_in_flight=int(slots.borrowed_tokens),
            step_slots=int(slots.total_tokens),
            waiting_for_slot=self.waiting_for_slot(),
            queued_on_machines=self.locks.waiting,
            busy_machines=self.locks.busy_machines,
        )

    def waiting_for_slot(self) -> int:
        """Steps of this node waiting for a slot, their namespace's or the node's."""
        waiting = self.slots.statistics().tasks_waiting
        for limiter in self.namespace_slots.values():
            waiting += limiter.statistics().tasks_waiting
        return waiting

    def namespace(self, ns: str) -> Namespace:
        found = self.settings.namespaces.get(ns)
        if found is None:
            raise NamespaceNotFound(f"namespace {ns!r} is not configured")
        return found

    async def invoke(
        self,
        namespace: Namespace,
        kind: Kind,
        args: Any,
        machine_id: str,
        machine: Machine | None,
        deadline: Deadline,
        trace: str,
    ) -> Reply:
        began = trio.current_time()
        outcome = "ok"
        # The rest of the step logs under the trace the processor saw (for a timer's step, the
        # one stored with the timer), whichever driver runs the step.
        context.set_trace(parse_trace(trace))
        try:
            return await self._processor.invoke(
                namespace, kind, args, machine_id, machine, deadline, trace
            )
        except ProcessorTransientFailure:
            outcome = "transient"
            raise
        except (RepairFailed, InvalidArgs):
            outcome = "refused"
            raise
        except ProcessorPermanentFailure:
            outcome = "permanent"
            raise
        finally:
            elapsed = trio.current_time() - began
            self.observe(ProcessorCalled(namespace.name, machine_id, kind.value, outcome, elapsed))

    async def commit(
        self, step: StepSession, transition: Transition, sinks: tuple[str, ...]
    ) -> None:
        """Commit a transition and tell the background loops what it scheduled."""
        await step.commit(transition, sinks)
        wake_at = transition.record.wake_at
        if wake_at is not None and not transition.remove:
            self.nudges.timer_scheduled(transition.record.ns, wake_at)
        if transition.resume_notifications:
            self.nudges.notification_queued(transition.record.ns)
        if transition.events and sinks:
            self.nudges.events_written(sinks)
        if transition.trimmed and not transition.remove:
            record = transition.record
            self.observe(EventsTrimmed(record.ns, record.id, transition.trimmed))

    async def run(
        self,
        ns: str,
        machine_id: str,
        kind: str,
        deadline: Deadline,
        body: Body,
        *,
        client: bool = True,
    ) -> None:
        """Run ``body`` as one step of ``(ns, machine_id)``. A ``client`` step is refused with
        ``Overloaded`` when too many client steps already wait for a slot; the loops' steps
        are bounded by the loops' own concurrency instead."""
        # Every log line of the step names its machine, whichever driver runs it.
        with context.bound(ns=ns, machine_id=machine_id):
            await self._run(ns, machine_id, kind, deadline, body, client)

    async def _run(
        self, ns: str, machine_id: str, kind: str, deadline: Deadline, body: Body, client: bool
    ) -> None:
        began = trio.current_time()
        outcome = "ok"
        reason: str | None = None
        try:
            async with self.locks.hold(ns, machine_id, deadline):
                waiting_now = self.waiting_for_slot() if client else 0
                if client and waiting_now >= self.settings.limits.max_waiting_steps:
                    raise Overloaded(f"{waiting_now} steps already wait on this node")
                own = self.namespace_slots.get(ns)
                holds_own = False
                try:
                    with trio.move_on_after(max(deadline.remaining(), 0)) as waiting:
                        if own is not None:
                            await own.acquire()
                            holds_own = True
                        await self.slots.acquire()
                    if waiting.cancelled_caught:
                        raise DeadlineExceeded("the deadline passed while waiting for a step slot")
                    try:
                        async with self.storage.step(ns, machine_id, deadline) as step:
                            outcome, reason = _outcome(await body(step))
                    finally:
                        self.slots.release()
                finally:
                    if own is not None and holds_own:
                        own.release()
        except MachineFailed as error:
            outcome, reason = "failed", error.message
            raise
        except LogicError as error:
            outcome, reason = "rejected", error.message
            raise
        except TransientError as error:
            outcome, reason = "transient", error.message
            raise
        except DeadlineExceeded as error:
            outcome, reason = "unknown", error.message
            raise
        except Exception as error:
            outcome, reason = "error", repr(error)
            raise
        finally:
            elapsed = trio.current_time() - began
            self.observe(StepFinished(ns, machine_id, kind, outcome, elapsed, reason))
