"""Steps that mg starts by itself: a timer's ``timeout`` and a queued ``notification``.

The loops (``mg.loops``) claim due work; these functions run it as steps. Failures never
escape to the loops as errors: a transient one schedules a retry by the namespace's policy (the
machine is ``retrying``), an exhausted policy or a permanent failure fails the machine.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from mg.core import step as rules
from mg.core.deadline import Deadline
from mg.core.facts import MachineFailedFact, NotificationDelivered, TimerFired
from mg.core.model import (
    NO_HISTORY,
    NOTIFICATION_RETRY,
    TIMER_RETRY,
    MachineRecord,
    Range,
    Status,
)
from mg.core.processor_wire import Kind, Reply
from mg.core.retry import RetryPolicy, next_delay
from mg.core.step import NotificationChange, Transition
from mg.core.trace import continue_or_start
from mg.errors import MgError, ProcessorPermanentFailure, ProcessorTransientFailure, TagConflict
from mg.service.ports import NotificationClaim, StepSession, TimerClaim
from mg.service.steps import Steps
from mg.settings import Namespace

log = logging.getLogger("mg.signals")


def _timer_range(record: MachineRecord) -> Range:
    return record.timer.range if record.timer is not None else NO_HISTORY


def _holds_claimed_timer(record: MachineRecord, claim: TimerClaim) -> bool:
    timer = record.timer
    return (
        record.status in (Status.WAITING, Status.RETRYING)
        and timer is not None
        and timer.fire_at == claim.fire_at
        and timer.set_by_version == claim.set_by_version
    )


class Signals:
    def __init__(self, steps: Steps) -> None:
        self._steps = steps

    async def fire_timer(self, claim: TimerClaim) -> None:
        """Run the ``timeout`` step of a claimed timer, if the machine still holds it."""
        steps = self._steps
        namespace = steps.settings.namespaces.get(claim.ns)
        if namespace is None:
            log.warning(
                "timer of machine %r in unknown namespace %r left alone", claim.id, claim.ns
            )
            return
        # The lock wait is bounded like the step itself; the exact deadline is set once the
        # timer's own handling_timeout is known.
        lock_deadline = Deadline.after(namespace.timer_processing_timeout)
        outcome = "dropped"

        async def body(step: StepSession) -> str | tuple[str, str]:
            nonlocal outcome
            machine = (await step.load(_timer_range)).machine
            if machine is None:
                return outcome
            record = machine.record
            if not _holds_claimed_timer(record, claim) or (
                record.wake_at is not None and record.wake_at > steps.now()
            ):
                await step.release_claim(record)
                return outcome
            timer = record.timer
            assert timer is not None
            handling = timer.handling_timeout or namespace.timer_processing_timeout
            deadline = Deadline.after(handling)
            await step.hold_until(deadline)  # a handling timeout longer than the step's
            trace = continue_or_start(timer.trace).header()
            # The processor sees the fired timer already cleared.
            cleared = replace(machine, record=replace(record, timer=None))
            try:
                reply = await steps.invoke(
                    namespace, Kind.TIMEOUT, None, claim.id, cleared, deadline, trace
                )
            except ProcessorTransientFailure as failure:
                outcome = await self._retry_or_fail(step, namespace, record, failure.message)
                return outcome, failure.message
            except ProcessorPermanentFailure as failure:
                outcome = await self._fail(step, record, Kind.TIMEOUT, failure.message)
                return outcome
            outcome = await self._advance(step, namespace, record, Kind.TIMEOUT, reply, trace)
            return outcome

        try:
            await steps.run(claim.ns, claim.id, "timeout", lock_deadline, body, client=False)
        except MgError:
            raise  # storage away, a lock wait too long...: the lease ends, the claim comes back
        except Exception as error:
            outcome = await self._timer_step_broke(namespace, claim, lock_deadline, error)
        finally:
            lag = (steps.now() - claim.due_at).total_seconds()
            steps.observe(TimerFired(claim.ns, claim.id, outcome, lag))

    async def deliver(self, claim: NotificationClaim) -> None:
        """Run the ``notification`` step of the head of a machine's queue."""
        steps = self._steps
        namespace = steps.settings.namespaces.get(claim.ns)
        if namespace is None:
            log.warning("notification %d in unknown namespace %r left alone", claim.id, claim.ns)
            return
        deadline = Deadline.after(namespace.default_processing_timeout)
        outcome = "dropped"

        async def body(step: StepSession) -> str | tuple[str, str]:
            nonlocal outcome
            machine = (await step.load(claim.range)).machine
            if machine is None:
                # The machine was removed: its notifications go with it.
                await step.settle_notification(NotificationChange(claim.id, consumed=True))
                return outcome
            record = machine.record
            if record.status is Status.FAILED:
                # Parked: delivered again once the machine is repaired.
                await step.settle_notification(
                    NotificationChange(claim.id, attempt=claim.attempt, error=record.failure_reason)
                )
                outcome = "parked"
                return outcome
            trace = continue_or_start(claim.trace).header()
            try:
                reply = await steps.invoke(
                    namespace,
                    Kind.NOTIFICATION,
                    claim.args,
                    claim.machine_id,
                    machine,
                    deadline,
                    trace,
                )
            except ProcessorTransientFailure as failure:
                outcome = await self._retry_notification(
                    step, namespace, record, claim, failure.message
                )
                return outcome, failure.message
            except ProcessorPermanentFailure as failure:
                outcome = await self._fail(step, record, Kind.NOTIFICATION, failure.message, claim)
                return outcome
            outcome = await self._advance(
                step, namespace, record, Kind.NOTIFICATION, reply, trace, claim=claim
            )
            return outcome

        try:
            await steps.run(
                claim.ns, claim.machine_id, "notification", deadline, body, client=False
            )
        except MgError:
            raise
        except Exception as error:
            outcome = await self._notification_step_broke(namespace, claim, error)
        finally:
            queued = (steps.now() - claim.created_at).total_seconds()
            steps.observe(NotificationDelivered(claim.ns, claim.machine_id, outcome, queued))

    # --- steps that broke -------------------------------------------------------------------
    # Anything unexpected in a step (an answer or a stored value that trips the code: an
    # OverflowError, a RecursionError, a value that cannot be encoded...) is one failed attempt
    # against the namespace's retry policy, recorded in a step of its own (the broken step's
    # transaction is gone): the machine shows ``retrying``, then ``failed`` with the reason.
    # Never a claim that comes back at once, never a loop that stops.

    async def _timer_step_broke(
        self, namespace: Namespace, claim: TimerClaim, deadline: Deadline, error: Exception
    ) -> str:
        reason = _unexpected(error)
        log.warning(
            "timer step of machine %r broke; counted as a failed attempt: %s",
            claim.id,
            reason,
            exc_info=error,
        )
        outcome = "dropped"

        async def body(step: StepSession) -> str:
            nonlocal outcome
            machine = (await step.load(NO_HISTORY)).machine
            if machine is None:
                return outcome
            if not _holds_claimed_timer(machine.record, claim):
                await step.release_claim(machine.record)
                return outcome
            outcome = await self._retry_or_fail(step, namespace, machine.record, reason)
            return outcome

        await self._steps.run(claim.ns, claim.id, "timeout", deadline, body, client=False)
        return outcome

    async def _notification_step_broke(
        self, namespace: Namespace, claim: NotificationClaim, error: Exception
    ) -> str:
        reason = _unexpected(error)
        log.warning(
            "notification %d of machine %r broke; counted as a failed attempt: %s",
            claim.id,
            claim.machine_id,
            reason,
            exc_info=error,
        )
        outcome = "dropped"

        async def body(step: StepSession) -> str:
            nonlocal outcome
            machine = (await step.load(NO_HISTORY)).machine
            if machine is None:
                await step.settle_notification(NotificationChange(claim.id, consumed=True))
                return outcome
            record = machine.record
            if record.status is Status.FAILED:
                await step.settle_notification(
                    NotificationChange(claim.id, attempt=claim.attempt, error=record.failure_reason)
                )
                outcome = "parked"
                return outcome
            outcome = await self._retry_notification(step, namespace, record, claim, reason)
            return outcome

        deadline = Deadline.after(namespace.default_processing_timeout)
        await self._steps.run(
            claim.ns, claim.machine_id, "notification", deadline, body, client=False
        )
        return outcome

    # --- outcomes --------------------------------------------------------------------------

    async def _advance(
        self,
        step: StepSession,
        namespace: Namespace,
        record: MachineRecord,
        kind: Kind,
        reply: Reply,
        trace: str,
        claim: NotificationClaim | None = None,
    ) -> str:
        steps = self._steps
        transition = rules.advance(
            record, kind, reply, steps.now(), trace, namespace.history_max_events
        )
        if claim is not None:
            transition = _with_notification(transition, NotificationChange(claim.id, consumed=True))
        try:
            await steps.commit(step, transition, namespace.sinks)
        except TagConflict as conflict:
            return await self._fail(step, record, kind, conflict.message, claim)
        return "ok"

    async def _fail(
        self,
        step: StepSession,
        record: MachineRecord,
        kind: Kind,
        reason: str,
        claim: NotificationClaim | None = None,
    ) -> str:
        """The machine fails; a notification that caused it stays queued, parked until repair."""
        steps = self._steps
        transition = rules.fail(record, reason, steps.now())
        if claim is not None:
            parked = NotificationChange(claim.id, attempt=claim.attempt + 1, error=reason)
            transition = _with_notification(transition, parked)
        await steps.commit(step, transition, ())
        steps.observe(MachineFailedFact(record.ns, record.id, kind.value, reason))
        return "failed"

    async def _retry_or_fail(
        self, step: StepSession, namespace: Namespace, record: MachineRecord, reason: str
    ) -> str:
        failures = (
            record.retry.attempt if record.retry and record.retry.subject == TIMER_RETRY else 0
        ) + 1
        delay = next_delay(namespace.timer_retries, failures)
        if delay is None:
            return await self._fail(
                step, record, Kind.TIMEOUT, f"timer retries exhausted after {failures}: {reason}"
            )
        now = self._steps.now()
        transition = rules.schedule_retry(
            record, TIMER_RETRY, reason, failures, now + timedelta(seconds=delay), now
        )
        await self._steps.commit(step, transition, ())
        return "transient"

    async def _retry_notification(
        self,
        step: StepSession,
        namespace: Namespace,
        record: MachineRecord,
        claim: NotificationClaim,
        reason: str,
    ) -> str:
        failures = claim.attempt + 1
        policy: RetryPolicy = namespace.notification_retries
        delay = next_delay(policy, failures)
        if delay is None:
            message = f"notification retries exhausted after {failures}: {reason}"
            return await self._fail(step, record, Kind.NOTIFICATION, message, claim)
        now = self._steps.now()
        next_at = now + timedelta(seconds=delay)
        transition = rules.schedule_retry(
            record, NOTIFICATION_RETRY, reason, failures, next_at, now
        )
        transition = _with_notification(
            transition,
            NotificationChange(claim.id, deliver_at=next_at, attempt=failures, error=reason),
        )
        await self._steps.commit(step, transition, ())
        return "transient"


def _unexpected(error: BaseException) -> str:
    """A failure reason for an unexpected error, kept short."""
    text = f"unexpected error: {type(error).__name__}: {error}"
    return text if len(text) <= 300 else text[:297] + "..."


def _with_notification(transition: Transition, change: NotificationChange) -> Transition:
    return replace(transition, notification=change)
