"""The processor protocol (PROTOCOL section 4) as pure functions: the request mg sends and the
reply it accepts. Anything in a reply that breaks the schema is a permanent failure."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mg.core import values
from mg.core.clock import (
    EARLIEST,
    MAX_HANDLING_TIMEOUT,
    MAX_TIMER_TIMEOUT,
    format_time,
    parse_time,
)
from mg.core.model import Content, HistoryBounds, Machine, Range
from mg.core.shapes import (
    ShapeError,
    bounds_value,
    check_machine_id,
    content_value,
    event_value,
    is_int,
    parse_content,
    parse_range,
    range_value,
)


class Kind(enum.StrEnum):
    INIT = "init"
    CALL = "call"
    REPAIR = "repair"
    TIMEOUT = "timeout"
    NOTIFICATION = "notification"

    @property
    def is_signal(self) -> bool:
        return self in (Kind.INIT, Kind.TIMEOUT, Kind.NOTIFICATION)


@dataclass(frozen=True, slots=True)
class TimerSpec:
    """A ``timer.set`` action: exactly one of ``timeout`` (seconds) and ``deadline``."""

    timeout: float | None
    deadline: datetime | None
    range: Range
    handling_timeout: float | None


class Unset(enum.Enum):
    TIMER = "unset"


@dataclass(frozen=True, slots=True)
class Reply:
    response: Any = None
    events: tuple[Content, ...] = ()
    aux_state: Content | None = None  # None keeps the previous one
    timer: TimerSpec | Unset | None = None  # None keeps the current timer
    tag: str | None = None
    remove: bool = False
    trim_before: int | None = None  # action.trim.before: drop events with smaller ids


def machine_value(ns: str, machine_id: str, machine: Machine | None) -> dict[str, Any]:
    """The ``machine`` member of a request; ``None`` is the empty machine of ``init``."""
    if machine is None:
        return {
            "ns": ns,
            "id": machine_id,
            "history": [],
            "history_range": range_value(Range()),
            "history_bounds": bounds_value(HistoryBounds(1, 0)),
            "aux_state": None,
            "timer": None,
            "tags": [],
        }
    timer = machine.record.timer
    return {
        "ns": ns,
        "id": machine_id,
        "history": [event_value(event) for event in machine.history],
        "history_range": range_value(machine.history_range),
        "history_bounds": bounds_value(machine.history_bounds),
        "aux_state": content_value(machine.record.aux_state),
        "timer": format_time(timer.fire_at) if timer is not None else None,
        "tags": list(machine.tags),
    }


def request_value(
    kind: Kind, args: Any, ns: str, machine_id: str, machine: Machine | None
) -> dict[str, Any]:
    body: dict[str, Any]
    if kind.is_signal:
        body = {"kind": "signal", "signal": {"type": kind.value, "args": args}}
    else:
        body = {"kind": kind.value, "args": args}
    body["machine"] = machine_value(ns, machine_id, machine)
    return body


def parse_reply(value: Any, *, max_events: int | None = None, last_event_id: int = 0) -> Reply:
    """A processor's ``200`` body, or ``ShapeError`` saying what is wrong with it. Every value
    in it (response, event data, aux_state) must pass the one value rule (``values.check``),
    so nothing is committed that a reader, a sink or a processor request could not carry, and
    no step commits an answer that cannot be encoded for its client. ``last_event_id`` is the
    machine's before the step: a trim may reach up to the new ``last + 1`` (events appended by
    this step count), no further."""
    if not isinstance(value, dict):
        raise ShapeError("the reply must be an object")
    events_value = value.get("events")
    events: tuple[Content, ...] = ()
    if events_value is not None:
        if not isinstance(events_value, list):
            raise ShapeError("events must be a list")
        if max_events is not None and len(events_value) > max_events:
            raise ShapeError(
                f"the reply holds {len(events_value)} events; the limit is {max_events} "
                "(processor.max_events)"
            )
        events = tuple(
            _checked(parse_content(item, f"events[{index}]"), f"events[{index}].data")
            for index, item in enumerate(events_value)
        )
    aux_value = value.get("aux_state")
    aux_state = (
        _checked(parse_content(aux_value, "aux_state"), "aux_state.data")
        if aux_value is not None
        else None
    )
    _check_value(value.get("response"), "response")
    action = value.get("action")
    timer: TimerSpec | Unset | None = None
    tag: str | None = None
    remove = False
    trim_before: int | None = None
    if action is not None:
        if not isinstance(action, dict):
            raise ShapeError("action must be an object")
        if action.get("timer") is not None:
            timer = _parse_timer(action["timer"])
        if action.get("tag") is not None:
            tag = check_machine_id(action["tag"], "action.tag")
        remove_value = action.get("remove", False)
        if remove_value is None:
            remove_value = False
        if not isinstance(remove_value, bool):
            raise ShapeError("action.remove must be a boolean")
        remove = remove_value
        if action.get("trim") is not None:
            trim_before = _parse_trim(action["trim"], last_event_id + len(events) + 1)
    return Reply(
        response=value.get("response"),
        events=events,
        aux_state=aux_state,
        timer=timer,
        tag=tag,
        remove=remove,
        trim_before=trim_before,
    )


def _parse_trim(value: Any, limit: int) -> int:
    if not isinstance(value, dict):
        raise ShapeError("action.trim must be an object")
    before = value.get("before")
    if not isinstance(before, int) or isinstance(before, bool) or before < 1:
        raise ShapeError("action.trim.before must be a positive integer")
    if before > limit:
        raise ShapeError(
            f"action.trim.before is {before}, past the machine's new last event + 1 ({limit})"
        )
    return int(before)


def _check_value(value: Any, where: str) -> None:
    try:
        values.check(value, where)
    except values.ValueRejected as error:
        raise ShapeError(str(error)) from error


def _checked(content: Content, where: str) -> Content:
    _check_value(content.data, where)
    return content


def _seconds(value: Any) -> bool:
    """A finite, non-negative number of seconds (NaN compares false with everything)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value >= 0
    )


def _parse_timer(value: Any) -> TimerSpec | Unset:
    if not isinstance(value, dict):
        raise ShapeError("action.timer must be an object")
    if "unset" in value and "set" not in value:
        if value["unset"] is not True:
            raise ShapeError("action.timer.unset must be true")
        return Unset.TIMER
    spec = value.get("set")
    if not isinstance(spec, dict):
        raise ShapeError("action.timer must hold set or unset")
    has_timeout = spec.get("timeout") is not None
    has_deadline = spec.get("deadline") is not None
    if has_timeout == has_deadline:
        raise ShapeError("action.timer.set needs exactly one of timeout and deadline")
    timeout: float | None = None
    deadline: datetime | None = None
    if has_timeout:
        raw = spec["timeout"]
        if not _seconds(raw):
            raise ShapeError(
                "action.timer.set.timeout must be a finite, non-negative number of seconds"
            )
        if raw > MAX_TIMER_TIMEOUT:
            raise ShapeError("action.timer.set.timeout is more than ten years")
        timeout = float(raw)
    else:
        try:
            deadline = parse_time(spec["deadline"])
        except (ValueError, OverflowError) as error:
            raise ShapeError(f"action.timer.set.deadline: {error}") from error
        # A deadline before the window is simply past: the timer fires at once.
        deadline = max(deadline, EARLIEST)
    handling = spec.get("handling_timeout")
    if handling is not None and (not _seconds(handling) or handling == 0):
        raise ShapeError(
            "action.timer.set.handling_timeout must be a finite, positive number of seconds"
        )
    if handling is not None and handling > MAX_HANDLING_TIMEOUT:
        raise ShapeError(
            f"action.timer.set.handling_timeout is more than {MAX_HANDLING_TIMEOUT:.0f} seconds"
        )
    return TimerSpec(
        timeout=timeout,
        deadline=deadline,
        range=parse_range(spec.get("range"), "action.timer.set.range"),
        handling_timeout=float(handling) if handling is not None else None,
    )


def parse_refusal(value: Any, code: str = "repair_failed") -> Any | None:
    """The reason of a ``422 {"error": code, "reason": ...}`` answer (``repair_failed`` to a
    repair, ``invalid_args`` to an init), else None; ``ShapeError`` if the reason breaks the
    value rule (it goes back to the client)."""
    if isinstance(value, dict) and value.get("error") == code:
        reason = value.get("reason")
        _check_value(reason, "reason")
        return reason
    return None


__all__ = [
    "Kind",
    "Reply",
    "TimerSpec",
    "Unset",
    "is_int",
    "parse_refusal",
    "parse_reply",
    "request_value",
]
