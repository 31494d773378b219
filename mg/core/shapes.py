"""Reading and writing the contract's shared shapes (PROTOCOL section 2) as plain values.

Both the client API and the processor protocol carry these shapes; parsing is strict about
types and lenient about unknown keys, so newer peers can add fields.
"""

from __future__ import annotations

from typing import Any

from mg.core.clock import format_time, parse_time
from mg.core.model import Content, Direction, Event, HistoryBounds, Range

MAX_ID_BYTES = 1024


class ShapeError(ValueError):
    """A value that does not fit the contract's shape; the message says where."""


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_range(value: Any, where: str = "range") -> Range:
    if value is None:
        return Range()
    if not isinstance(value, dict):
        raise ShapeError(f"{where} must be an object")
    after = value.get("after")
    limit = value.get("limit")
    direction = value.get("direction", "forward")
    if after is not None and not is_int(after):
        raise ShapeError(f"{where}.after must be an integer or null")
    if limit is not None and not is_int(limit):
        raise ShapeError(f"{where}.limit must be an integer or null")
    # Event ids are 64-bit signed, as the columns that keep a range.
    for name, member in (("after", after), ("limit", limit)):
        if member is not None and not -(2**63) <= member < 2**63:
            raise ShapeError(f"{where}.{name} is out of the 64-bit integer range")
    if limit is not None and limit < 0:
        raise ShapeError(f"{where}.limit must not be negative")
    if direction is None:
        direction = "forward"
    if direction not in ("forward", "backward"):
        raise ShapeError(f'{where}.direction must be "forward" or "backward"')
    return Range(after=after, limit=limit, direction=Direction(direction))


def range_value(selection: Range) -> dict[str, Any]:
    return {
        "after": selection.after,
        "limit": selection.limit,
        "direction": selection.direction.value,
    }


def bounds_value(bounds: HistoryBounds) -> dict[str, int]:
    return {"first": bounds.first, "last": bounds.last}


def parse_bounds(value: Any, where: str = "history_bounds") -> HistoryBounds | None:
    """``{"first", "last"}``; ``None`` when absent (a v1 peer does not send it)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ShapeError(f"{where} must be an object")
    first, last = value.get("first"), value.get("last")
    if not (is_int(first) and is_int(last)):
        raise ShapeError(f"{where}.first and .last must be integers")
    assert isinstance(first, int)
    assert isinstance(last, int)
    if not 1 <= first <= last + 1:
        raise ShapeError(f"{where} must have 1 <= first <= last + 1")
    return HistoryBounds(first, last)


def parse_content(value: Any, where: str) -> Content:
    if not isinstance(value, dict):
        raise ShapeError(f"{where} must be an object with data and format_version")
    if "data" not in value:
        raise ShapeError(f"{where}.data is missing")
    version = value.get("format_version")
    if version is not None and not is_int(version):
        raise ShapeError(f"{where}.format_version must be an integer or null")
    if version is not None and not (-(2**31) <= version < 2**31):
        raise ShapeError(f"{where}.format_version is out of range")
    return Content(data=value["data"], format_version=version)


def content_value(content: Content | None) -> dict[str, Any] | None:
    if content is None:
        return None
    return {"data": content.data, "format_version": content.format_version}


def event_value(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "created_at": format_time(event.created_at),
        "format_version": event.format_version,
        "data": event.data,
    }


def parse_event(value: Any, where: str) -> Event:
    """An ``Event`` as the contract writes it (id, created_at, format_version, data)."""
    if not isinstance(value, dict):
        raise ShapeError(f"{where} must be an object")
    event_id: Any = value.get("id")
    created: Any = value.get("created_at")
    if not is_int(event_id) or event_id < 1:
        raise ShapeError(f"{where}.id must be a positive integer")
    try:
        created_at = parse_time(created)
    except (ValueError, OverflowError) as error:
        raise ShapeError(f"{where}.created_at: {error}") from error
    content = parse_content(value, where)
    return Event(event_id, created_at, content.format_version, content.data)


def check_machine_id(value: Any, what: str = "id") -> str:
    """A machine id or tag: a UTF-8 string of 1..1024 bytes."""
    if not isinstance(value, str):
        raise ShapeError(f"{what} must be a string")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise ShapeError(f"{what} is not valid UTF-8") from error
    if size == 0:
        raise ShapeError(f"{what} must not be empty")
    if size > MAX_ID_BYTES:
        raise ShapeError(f"{what} is {size} bytes long; the limit is {MAX_ID_BYTES}")
    if "\x00" in value:
        raise ShapeError(f"{what} must not contain NUL characters")
    return value
