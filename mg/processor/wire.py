"""The processor protocol seen from the processor's side (PROTOCOL section 4): mg's requests
parsed into typed values, and ``Result`` written as the answer mg accepts. Pure; the inverse
of ``mg.core.processor_wire``, which is mg's side."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mg.core.clock import format_time, parse_time
from mg.core.model import WHOLE_HISTORY, Content, Event, HistoryBounds, Range
from mg.core.processor_wire import Kind
from mg.core.shapes import (
    ShapeError,
    check_machine_id,
    content_value,
    parse_bounds,
    parse_content,
    parse_event,
    parse_range,
    range_value,
)
from mg.processor.results import KEEP, Result, SetTimer, UnsetTimer


@dataclass(frozen=True, slots=True)
class Machine:
    """The machine as a handler sees it: its history (cut by the request's range, and
    upcast to the processor's format version), aux state, timer and tags, plus the request's
    ``deadline`` and ``traceparent``. ``history_bounds``: the events the machine holds,
    ``first..last`` (``None`` from an mg older than contract v1.1); ids below ``first`` were
    trimmed."""

    ns: str
    id: str
    history: tuple[Event, ...] = ()
    history_range: Range = WHOLE_HISTORY
    history_bounds: HistoryBounds | None = None
    aux_state: Content | None = None
    timer: datetime | None = None
    tags: tuple[str, ...] = ()
    deadline: datetime | None = None
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class ProcessorRequest:
    kind: Kind
    args: Any
    machine: Machine


def _machine(value: Any, deadline: datetime | None, traceparent: str | None) -> Machine:
    if not isinstance(value, dict):
        raise ShapeError("machine must be an object")
    history = value.get("history") or []
    if not isinstance(history, list):
        raise ShapeError("machine.history must be a list")
    aux = value.get("aux_state")
    timer = value.get("timer")
    tags = value.get("tags") or []
    if not isinstance(tags, list):
        raise ShapeError("machine.tags must be a list")
    try:
        fire_at = parse_time(timer) if timer is not None else None
    except ValueError as error:
        raise ShapeError(f"machine.timer: {error}") from error
    return Machine(
        ns=check_machine_id(value.get("ns"), "machine.ns"),
        id=check_machine_id(value.get("id"), "machine.id"),
        history=tuple(
            parse_event(item, f"machine.history[{index}]") for index, item in enumerate(history)
        ),
        history_range=parse_range(value.get("history_range"), "machine.history_range"),
        history_bounds=parse_bounds(value.get("history_bounds"), "machine.history_bounds"),
        aux_state=parse_content(aux, "machine.aux_state") if aux is not None else None,
        timer=fire_at,
        tags=tuple(check_machine_id(tag, "machine.tags[]") for tag in tags),
        deadline=deadline,
        traceparent=traceparent,
    )


def parse_request(
    value: Any, *, deadline: datetime | None = None, traceparent: str | None = None
) -> ProcessorRequest:
    """mg's request body, or ``ShapeError`` saying what is wrong with it."""
    if not isinstance(value, dict):
        raise ShapeError("the request must be an object")
    kind_name = value.get("kind")
    if kind_name == "signal":
        signal = value.get("signal")
        if not isinstance(signal, dict):
            raise ShapeError("signal must be an object")
        kind_name, args = signal.get("type"), signal.get("args")
        if kind_name not in ("init", "timeout", "notification"):
            raise ShapeError(f"unknown signal type {kind_name!r}")
    elif kind_name in ("call", "repair"):
        args = value.get("args")
    else:
        raise ShapeError(f"unknown kind {kind_name!r}")
    machine = _machine(value.get("machine"), deadline, traceparent)
    return ProcessorRequest(Kind(kind_name), args, machine)


def stamped(value: Any, format_version: int | None) -> Content:
    """``value`` as Content: a ``Content`` as it is, anything else with ``format_version``."""
    return value if isinstance(value, Content) else Content(value, format_version)


def _timer_value(timer: SetTimer | UnsetTimer) -> dict[str, Any]:
    if isinstance(timer, UnsetTimer):
        return {"unset": True}
    spec: dict[str, Any] = {}
    if timer.timeout is not None:
        spec["timeout"] = timer.timeout
    if timer.deadline is not None:
        spec["deadline"] = format_time(timer.deadline)
    if timer.range is not None:
        spec["range"] = range_value(timer.range)
    if timer.handling_timeout is not None:
        spec["handling_timeout"] = timer.handling_timeout
    return {"set": spec}


def reply_value(result: Result, format_version: int | None) -> dict[str, Any]:
    """The ``200`` body for ``result``; plain values are stamped with ``format_version``."""
    if not isinstance(result, Result):
        raise TypeError(f"a handler must return a Result, not {type(result).__name__}")
    reply: dict[str, Any] = {
        "response": result.response,
        "events": [content_value(stamped(item, format_version)) for item in result.events],
    }
    if result.aux_state is not KEEP:
        reply["aux_state"] = content_value(stamped(result.aux_state, format_version))
    action: dict[str, Any] = {}
    if result.timer is not None:
        action["timer"] = _timer_value(result.timer)
    if result.tag is not None:
        action["tag"] = result.tag
    if result.remove:
        action["remove"] = True
    if result.trim_before is not None:
        action["trim"] = {"before": result.trim_before}
    if action:
        reply["action"] = action
    return reply


def parse_modernize_request(value: Any) -> tuple[str, str, Event]:
    """``{"ns", "id", "event"}`` from mg's modernizer call."""
    if not isinstance(value, dict):
        raise ShapeError("the request must be an object")
    ns = check_machine_id(value.get("ns"), "ns")
    machine_id = check_machine_id(value.get("id"), "id")
    return ns, machine_id, parse_event(value.get("event"), "event")
