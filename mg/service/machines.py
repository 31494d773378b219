"""Client operations on machines: start, call, get, repair, simple repair, notify, remove,
search. Every step goes through ``Steps``; this module decides what each operation means."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from mg.core import step as rules
from mg.core.deadline import Deadline
from mg.core.facts import MachineFailedFact
from mg.core.model import NO_HISTORY, Machine, Range, Status
from mg.core.processor_wire import Kind, Reply
from mg.core.trace import TraceContext
from mg.errors import (
    DeadlineExceeded,
    InvalidRequest,
    MachineAlreadyExists,
    MachineAlreadyWorking,
    MachineFailed,
    MachineNotFound,
    ProcessorPermanentFailure,
    ProcessorTransientFailure,
    TagConflict,
)
from mg.service.modernize import modernize_history
from mg.service.ports import Modernizer, SearchRow, StepSession
from mg.service.steps import Steps
from mg.settings import Namespace

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
        # An id never holds NUL (Postgres text cannot), so no cursor of ours does.
        if not found or "\x00" in found or encode_cursor(found) != cursor:
            raise ValueError("not a cursor")
    except (binascii.Error, UnicodeError, ValueError) as error:
        raise InvalidRequest("cursor is not one this service issued") from error
    return found


def _existing(ref: Ref, machine: Machine | None) -> Machine:
    if machine is None or (ref.tag is not None and ref.tag not in machine.tags):
        raise MachineNotFound(f"{ref.describe()} does not exist")
    return machine


class MachineService:
    def __init__(self, steps: Steps, *, modernizer: Modernizer | None = None) -> None:
        self._steps = steps
        self._storage = steps.storage
        self._modernizer = modernizer

    # --- lookups ---------------------------------------------------------------------------

    def namespace(self, ns: str) -> Namespace:
        return self._steps.namespace(ns)

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
        return _existing(ref, await self._storage.get(ns, machine_id, selection))

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

    # --- notifications ---------------------------------------------------------------------

    async def notify(
        self, ns: str, ref: Ref, args: Any, selection: Range, trace: TraceContext
    ) -> int:
        """Queue a notification durably and return its id; delivery is the loop's job."""
        self.namespace(ns)
        machine_id = await self._resolve(ns, ref)
        found = await self._storage.enqueue_notification(
            ns, machine_id, args, selection, trace.header(), self._steps.now()
        )
        if found is None:
            raise MachineNotFound(f"{ref.describe()} does not exist")
        self._steps.nudges.notification_queued(ns)
        return found

    # --- steps -----------------------------------------------------------------------------

    async def start(
        self, ns: str, machine_id: str, args: Any, deadline: Deadline, trace: TraceContext
    ) -> None:
        steps = self._steps
        namespace = steps.namespace(ns)

        async def body(step: StepSession) -> None:
            loaded = await step.load(NO_HISTORY)
            if loaded.machine is not None:
                raise MachineAlreadyExists(f"machine {machine_id!r} already exists")
            try:
                reply = await _client_invoke(
                    steps, namespace, Kind.INIT, args, machine_id, None, deadline, trace
                )
                transition = rules.start(
                    ns,
                    machine_id,
                    reply,
                    steps.now(),
                    trace.header(),
                    loaded.new_incarnation,
                    namespace.history_max_events,
                )
                await steps.commit(step, transition, namespace.sinks)
            except (ProcessorPermanentFailure, TagConflict) as failure:
                raise MachineFailed(
                    f"init failed, nothing was stored: {failure.message}", reason=failure.message
                ) from failure

        await steps.run(ns, machine_id, Kind.INIT.value, deadline, body)

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
        steps = self._steps
        steps.namespace(ns)
        machine_id = await self._resolve(ns, ref)

        async def body(step: StepSession) -> None:
            machine = _existing(ref, (await step.load(NO_HISTORY)).machine)
            if machine.record.status is not Status.FAILED:
                raise MachineAlreadyWorking(f"{ref.describe()} is not failed")
            await steps.commit(step, rules.simple_repair(machine.record, steps.now()), ())

        await steps.run(ns, machine_id, "simple_repair", deadline, body)

    async def remove(self, ns: str, machine_id: str, deadline: Deadline) -> None:
        namespace = self._steps.namespace(ns)

        async def body(step: StepSession) -> None:
            _existing(Ref(id=machine_id), (await step.load(NO_HISTORY)).machine)
            await step.remove(namespace.sinks)

        await self._steps.run(ns, machine_id, "remove", deadline, body)

    async def modernize(
        self, ns: str, ref: Ref, selection: Range, deadline: Deadline, trace: TraceContext
    ) -> int:
        """Rewrite the outdated events in range through the namespace's modernizer, under the
        machine's lock like a step; returns how many events changed."""
        steps = self._steps
        namespace = steps.namespace(ns)
        modernizer = self._modernizer
        if namespace.modernizer is None or modernizer is None:
            raise InvalidRequest(f"namespace {ns!r} has no modernizer configured")
        machine_id = await self._resolve(ns, ref)
        count = 0

        async def body(step: StepSession) -> None:
            nonlocal count
            machine = _existing(ref, (await step.load(selection)).machine)
            changed = await modernize_history(
                modernizer, namespace, machine, deadline, trace.header()
            )
            if changed:
                await step.rewrite(changed, machine.record.version)
            count = len(changed)

        await steps.run(ns, machine_id, "modernize", deadline, body)
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
        steps = self._steps
        namespace = steps.namespace(ns)
        machine_id = await self._resolve(ns, ref)
        response: Any = None

        async def body(step: StepSession) -> None:
            nonlocal response
            machine = _existing(ref, (await step.load(selection)).machine)
            record = machine.record
            failed = record.status is Status.FAILED
            if kind is Kind.CALL and failed:
                raise MachineFailed(
                    f"{ref.describe()} is failed: {record.failure_reason}",
                    reason=record.failure_reason,
                )
            if kind is Kind.REPAIR and not failed:
                raise MachineAlreadyWorking(f"{ref.describe()} is not failed")
            try:
                reply = await _client_invoke(
                    steps, namespace, kind, args, machine_id, machine, deadline, trace
                )
                transition = rules.advance(
                    record, kind, reply, steps.now(), trace.header(), namespace.history_max_events
                )
                await steps.commit(step, transition, namespace.sinks)
            except (ProcessorPermanentFailure, TagConflict) as failure:
                await steps.commit(step, rules.fail(record, failure.message, steps.now()), ())
                steps.observe(MachineFailedFact(ns, machine_id, kind.value, failure.message))
                raise MachineFailed(
                    f"{ref.describe()} failed: {failure.message}", reason=failure.message
                ) from failure
            response = reply.response

        await steps.run(ns, machine_id, kind.value, deadline, body)
        return response


async def _client_invoke(
    steps: Steps,
    namespace: Namespace,
    kind: Kind,
    args: Any,
    machine_id: str,
    machine: Machine | None,
    deadline: Deadline,
    trace: TraceContext,
) -> Reply:
    """The processor call of a client's step: a processor too slow for the client's deadline
    is the client's ``deadline_exceeded`` (the step is rolled back)."""
    try:
        return await steps.invoke(
            namespace, kind, args, machine_id, machine, deadline, trace.header()
        )
    except ProcessorTransientFailure as error:
        if error.timed_out:
            raise DeadlineExceeded(error.message) from error
        raise
