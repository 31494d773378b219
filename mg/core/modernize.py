"""Modernizing stored events (PROTOCOL section 3, Modernize, and section 4, Modernizer) as pure
rules: which events to send, what mg sends, what it accepts back, and what changes.

An event is rewritten in place: same id, same ``created_at``, new data and format version. A
returned version lower than the stored one is refused, so a modernizer can never make history
older; an answer equal to what is stored is not a change.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mg.core import values
from mg.core.model import Content, Event
from mg.core.shapes import ShapeError, event_value, parse_content


class VersionLowered(ValueError):
    """The modernizer returned a lower format version than the stored one."""


def is_outdated(event: Event, current_version: int) -> bool:
    """Whether ``event`` goes to the modernizer: its version is absent or below current."""
    return event.format_version is None or event.format_version < current_version


def request_value(ns: str, machine_id: str, event: Event) -> dict[str, Any]:
    return {"ns": ns, "id": machine_id, "event": event_value(event)}


def parse_answer(value: Any) -> Content:
    """The ``200 {"event": Content}`` body of a modernizer, or ``ShapeError``."""
    if not isinstance(value, dict):
        raise ShapeError("the modernizer's answer must be an object")
    if "event" not in value:
        raise ShapeError("the modernizer's answer has no event")
    content = parse_content(value["event"], "event")
    try:
        values.check(content.data, "event.data")
    except values.ValueRejected as error:
        raise ShapeError(str(error)) from error
    return content


def modernized(event: Event, content: Content) -> Event | None:
    """``event`` carrying ``content``, or ``None`` when that changes nothing.

    Raises ``VersionLowered`` when ``content`` would lower the stored version (an absent
    version counts as lower than any version).
    """
    stored, returned = event.format_version, content.format_version
    if stored is not None and (returned is None or returned < stored):
        raise VersionLowered(
            f"event {event.id}: the modernizer returned format version {returned}, "
            f"lower than the stored {stored}"
        )
    # Compared in the canonical encoding, which is what storage and the sink hash see.
    if returned == stored and values.pack(content.data) == values.pack(event.data):
        return None
    return replace(event, data=content.data, format_version=returned)
