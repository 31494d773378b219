"""The machine service: start, call, get, repair, simple repair, remove, search.

Every step follows one path: queue on the machine's in-memory lock, take a step slot, open the
step's transaction (cluster-wide lock + read), call the processor, decide with the pure step
rules, commit. Errors are classified here, at the machine's boundary.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import trio

from mg.core import step as rules
from mg.core.clock import utc_now
from mg.core.deadline import Deadline
from mg.core.facts import MachineFailedFact, Observer, ProcessorCalled, StepFinished, ignore
from mg.core.model import NO_HISTORY, Machine, Range, Status
from mg.core.processor_wire import Kind, Reply
from mg.core.trace import TraceContext
from mg.errors import (
    DeadlineExceeded,
    InvalidRequest,
    LogicError,
    MachineAlreadyExists,
    MachineAlreadyWorking,
    MachineFailed,
    MachineNotFound,
    NamespaceNotFound,
    ProcessorPermanentFailure,
    ProcessorTransientFailure,
    RepairFailed,
    TagConflict,
    TransientError,
)
from mg.service.locks import MachineLocks
from mg.service.modernize import modernize_history
from mg.service.ports import Modernizer, Processor, SearchRow, StepSession, Storage
from mg.settings import Namespace, Settings

MAX_SEARCH_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Ref:
    """A machine addressed by its id or by one of its tags."""

    id: str | None = None
    tag: str | None = None

    def describe(self) -> str:
        return f"machine {self.id!r}" if self.id is not None else f"tag {self.tag!r}"


@dataclass(frozen=True, slots=True)
class SearchPage:
    machines: list[SearchRow]
    next_cursor: str | None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode("utf-8")).decode("ascii")


def decode_cursor(cursor: str) -> str:
    try:
        found = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("utf-8")
        if not found or encode_cursor(found) != cursor:
            raise ValueError("not a cursor")
    except (binascii.Error, UnicodeError, ValueError) as error:
        raise InvalidRequest("cursor is not one this service issued") from error
    return found


class MachineService:
    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        processor: Processor,
        *,
        observer: Observer = ignore,
        clock: Callable[[], datetime] = utc_now,
        modernizer: Modernizer | None = None,
    ) -> None:
        self._settings = settings
        self._storage = storage
        self._processor = processor
        self._modernizer = modernizer
        self._observe = observer
        self._now = clock
        self._locks = MachineLocks(settings.limits.max_queue_per_machine)
        self._slots = trio.CapacityLimiter(settings.limits.max_steps_in_flight)

    # --- lookups ---------------------------------------------------------------------------

    def namespace(self, ns: str) -> Namespace:
        found = self._settings.namespaces.get(ns)
        if found is None:
            raise NamespaceNotFound(f"namespace {ns!r} is not configured")
        return found

    def default_deadline(self, ns: str) -> Deadline:
        return Deadline.after(self.namespace(ns).default_processing_timeout)

    async def _resolve(self, ns: str, ref: Ref) -> str:
        if ref.id is not None:
            return ref.id
        assert ref.tag is not None
        found = await self._storage.resolve_tag(ns, ref.tag)
        if found is None:
            raise MachineNotFound(f"no machine holds tag {ref.tag!r}")
        return found

    # --- reads -----------------------------------------------------------------------------

    async def get(self, ns: str, ref: Ref, selection: Range) -> Machine:
        self.namespace(ns)
        machine_id = await self._resolve(ns, ref)
        machine = await self._storage.get(ns, machine_id, selection)
        if machine is None or (ref.tag is not None and ref.tag not in machine.tags):
            raise MachineNotFound(f"{ref.describe()} does not exist")
        return machine

    async def search(
        self, ns: str, status: Status | None, limit: int, cursor: str | None
    ) -> SearchPage:
        self.namespace(ns)
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise InvalidRequest(f"limit must be between 1 and {MAX_SEARCH_LIMIT}")
        after_id = decode_cursor(cursor) if cursor else ""
        found = await self._storage.search(ns, status, after_id, limit + 1)
        page = found[:limit]
        next_cursor = encode_cursor(page[-1].id) if len(found) > limit else None
        return SearchPage(page, next_cursor)

    # --- steps -----------------------------------------------------------------------------

    async def start(
        self, ns: str, machine_id: str, args: Any, deadline: Deadline, trace: TraceContext
    ) -> None:
        namespace = self.namespace(ns)

        async def body(step: StepSession) -> None:
            loaded = await step.load(NO_HISTORY)
            if loaded.machine is not None:
                raise MachineAlreadyExists(f"machine {machine_id!r} already exists")
            try:
                reply = await self._invoke(
                    namespace, Kind.INIT, args, machine_id, None, deadline, trace
                )
            except ProcessorPermanentFailure as failure:
                raise MachineFailed(
                    f"init failed, nothing was stored: {failure.message}", reason=failure.message
                ) from failure
            transition = rules.start(
                ns, machine_id, reply, self._now(), trace.header(), loaded.new_incarnation
            )
            try:
                await step.commit(transition, namespace.sinks)
            except TagConflict as conflict:
                raise MachineFailed(
                    f"init failed, nothing was stored: {conflict}", reason=str(conflict)
                ) from conflict

        await self._run(ns, machine_id, Kind.INIT, deadline, body)

    async def call(
        self,
        ns: str,
        ref: Ref,
        args: Any,
        selection: Range,
        deadline: Deadline,
        trace: TraceContext,
    ) -> Any:
        return await self._processed(ns, ref, Kind.CALL, args, selection, deadline, trace)

    async def repair(
        self,
        ns: str,
        ref: Ref,
        args: Any,
        selection: Range,
        deadline: Deadline,
        trace: TraceContext,
    ) -> Any:
        return await self._processed(ns, ref, Kind.REPAIR, args, selection, deadline, trace)

    async def simple_repair(self, ns: str, ref: Ref, deadline: Deadline) -> None:
        self.namespace(ns)
        machine_id = await self._resolve(ns, ref)

        async def body(step: StepSession) -> None:
            machine = self._existing(ref, (await step.load(NO_HISTORY)).machine)
            if machine.record.status is not Status.FAILED:
                raise MachineAlreadyWorking(f"{ref.describe()} is not failed")
            await step.commit(rules.simple_repair(machine.record, self._now()), ())

        await self._run(ns, machine_id, Kind.REPAIR, deadline, body, kind_name="simple_repair")

    async def remove(self, ns: str, machine_id: str, deadline: Deadline) -> None:
        namespace = self.namespace(ns)

        async def body(step: StepSession) -> None:
            self._existing(Ref(id=machine_id), (await step.load(NO_HISTORY)).machine)
            await step.remove(namespace.sinks)

        await self._run(ns, machine_id, Kind.CALL, deadline, body, kind_name="remove")

    async def modernize(
        self, ns: str, ref: Ref, selection: Range, deadline: Deadline, trace: TraceContext
    ) -> int:
        """Rewrite the outdated events in range through the namespace's modernizer, under the
        machine's lock like a step; returns how many events changed."""
        namespace = self.namespace(ns)
        modernizer = self._modernizer
        if namespace.modernizer is None or modernizer is None:
            raise InvalidRequest(f"namespace {ns!r} has no modernizer configured")
        machine_id = await self._resolve(ns, ref)
        count = 0

        async def body(step: StepSession) -> None:
            nonlocal count
            machine = self._existing(ref, (await step.load(selection)).machine)
            changed = await modernize_history(
                modernizer, namespace, machine, deadline, trace.header()
            )
            if changed:
                await step.rewrite(changed, machine.record.version)
            count = len(changed)

        await self._run(ns, machine_id, Kind.CALL, deadline, body, kind_name="modernize")
        return count

    async def _processed(
        self,
        ns: str,
        ref: Ref,
        kind: Kind,
        args: Any,
        selection: Range,
        deadline: Deadline,
        trace: TraceContext,
    ) -> Any:
        """A call or repair: the processor decides, the response goes back to the caller."""
        namespace = self.namespace(ns)
        machine_id = await self._resolve(ns, ref)
        response: Any = None

        async def body(step: StepSession) -> None:
            nonlocal response
            machine = self._existing(ref, (await step.load(selection)).machine)
            failed = machine.record.status is Status.FAILED
            if kind is Kind.CALL and failed:
                raise MachineFailed(
                    f"{ref.describe()} is failed: {machine.record.failure_reason}",
                    reason=machine.record.failure_reason,
                )
            if kind is Kind.REPAIR and not failed:
                raise MachineAlreadyWorking(f"{ref.describe()} is not failed")
            try:
                reply = await self._invoke(
                    namespace, kind, args, machine_id, machine, deadline, trace
                )
                transition = rules.advance(machine.record, kind, reply, self._now(), trace.header())
                await step.commit(transition, namespace.sinks)
            except (ProcessorPermanentFailure, TagConflict) as failure:
                await step.commit(rules.fail(machine.record, failure.message, self._now()), ())
                self._observe(MachineFailedFact(ns, machine_id, kind.value, failure.message))
                raise MachineFailed(
                    f"{ref.describe()} failed: {failure.message}", reason=failure.message
                ) from failure
            response = reply.response

        await self._run(ns, machine_id, kind, deadline, body)
        return response

    # --- the shared path -------------------------------------------------------------------

    @staticmethod
    def _existing(ref: Ref, machine: Machine | None) -> Machine:
        if machine is None or (ref.tag is not None and ref.tag not in machine.tags):
            raise MachineNotFound(f"{ref.describe()} does not exist")
        return machine

    async def _invoke(
        self,
        namespace: Namespace,
        kind: Kind,
        args: Any,
        machine_id: str,
        machine: Machine | None,
        deadline: Deadline,
        trace: TraceContext,
    ) -> Reply:
        began = trio.current_time()
        outcome = "ok"
        try:
            return await self._processor.invoke(
                namespace, kind, args, machine_id, machine, deadline, trace.header()
            )
        except ProcessorTransientFailure as error:
            outcome = "transient"
            if error.timed_out:
                raise DeadlineExceeded(error.message) from error
            raise
        except RepairFailed:
            outcome = "refused"
            raise
        except ProcessorPermanentFailure:
            outcome = "permanent"
            raise
        finally:
            self._observe(
                ProcessorCalled(
                    namespace.name, machine_id, kind.value, outcome, trio.current_time() - began
                )
            )

    async def _run(
        self,
        ns: str,
        machine_id: str,
        kind: Kind,
        deadline: Deadline,
        body: Callable[[StepSession], Any],
        *,
        kind_name: str | None = None,
    ) -> None:
        """Run ``body`` as one step of ``(ns, machine_id)``: in-memory queue, step slot,
        cluster-wide lock, one transaction."""
        began = trio.current_time()
        outcome = "ok"
        reason: str | None = None
        try:
            async with self._locks.hold(ns, machine_id, deadline):
                with trio.move_on_after(max(deadline.remaining(), 0)) as waiting:
                    await self._slots.acquire()
                if waiting.cancelled_caught:
                    raise DeadlineExceeded("the deadline passed while waiting for a step slot")
                try:
                    async with self._storage.step(ns, machine_id, deadline) as step:
                        await body(step)
                finally:
                    self._slots.release()
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
            self._observe(
                StepFinished(
                    ns,
                    machine_id,
                    kind_name or kind.value,
                    outcome,
                    trio.current_time() - began,
                    reason,
                )
            )
