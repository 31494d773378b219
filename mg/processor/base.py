"""``Processor``: the class a processor is written as. Override the handlers you need; each
takes the request's ``args`` (signals without args take none) and the ``Machine`` and returns
a ``Result``, plainly or from an ``async def``."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Any, ClassVar

from mg.core.model import Content, Event
from mg.core.processor_wire import Kind
from mg.processor.results import RepairRefused, Result
from mg.processor.upcasting import collect, upcast
from mg.processor.wire import Machine, ProcessorRequest

Outcome = Result | Awaitable[Result]


class Processor:
    """Subclass and override the handlers; serve with ``mg.processor.serve``.

    ``format_version`` is the event format the processor writes and reads: plain values in
    a ``Result`` are stamped with it, and with upcasters declared (``@upcaster``) every
    handler sees the history lifted to it, and the same class serves as the namespace's
    modernizer. ``unversioned`` is the version of events stored without one.
    """

    format_version: ClassVar[int | None] = None
    unversioned: ClassVar[int] = 0
    _upcasters: ClassVar[dict[int, Callable[..., Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[int, Callable[..., Any]] = {}
        # Walk the bases first so a subclass may replace an inherited upcaster.
        for klass in reversed(cls.__mro__):
            found.update(collect(vars(klass)))
        cls._upcasters = found

    # --- handlers ---------------------------------------------------------------------------

    def init(self, args: Any, machine: Machine) -> Outcome:
        """The ``init`` signal of a new machine (``machine`` has no history yet); raise
        ``InvalidArgs`` to refuse bad arguments (nothing is stored)."""
        return Result()

    def call(self, args: Any, machine: Machine) -> Outcome:
        """A client's call; ``Result.response`` goes back to the client."""
        raise NotImplementedError(f"{type(self).__name__} does not handle calls")

    def repair(self, args: Any, machine: Machine) -> Outcome:
        """A client's repair of a failed machine; raise ``RepairRefused`` to refuse it."""
        raise RepairRefused(f"{type(self).__name__} does not implement repair")

    def timeout(self, machine: Machine) -> Outcome:
        """The machine's timer fired (it is already cleared: set another in the result)."""
        return Result()

    def notification(self, args: Any, machine: Machine) -> Outcome:
        """A notification sent to the machine with ``notify``."""
        return Result()

    # --- format versions -------------------------------------------------------------------

    def upcast(self, event: Event) -> Event:
        """``event`` lifted to ``format_version`` through the declared upcasters."""
        steps = {version: partial(step, self) for version, step in self._upcasters.items()}
        return upcast(event, self.format_version, self.unversioned, steps)

    def modernize(self, ns: str, machine_id: str, event: Event) -> Content:
        """The modernizer's answer for a stored event: by default, the event upcast."""
        lifted = self.upcast(event)
        return Content(lifted.data, lifted.format_version)

    # --- dispatch --------------------------------------------------------------------------

    async def handle(self, request: ProcessorRequest) -> Result:
        """Run the handler for ``request`` on its machine, history upcast first."""
        machine = request.machine
        if self.format_version is not None and machine.history:
            machine = replace(machine, history=tuple(self.upcast(e) for e in machine.history))
        outcome: Outcome
        if request.kind is Kind.TIMEOUT:
            outcome = self.timeout(machine)
        else:
            handler = {
                Kind.INIT: self.init,
                Kind.CALL: self.call,
                Kind.REPAIR: self.repair,
                Kind.NOTIFICATION: self.notification,
            }[request.kind]
            outcome = handler(request.args, machine)
        result = await outcome if inspect.isawaitable(outcome) else outcome
        if not isinstance(result, Result):
            raise TypeError(
                f"{type(self).__name__}.{request.kind.value} returned "
                f"{type(result).__name__}, not a Result"
            )
        return result
