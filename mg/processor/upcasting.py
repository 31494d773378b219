"""Event upcasters: functions that lift an event's data one format version up.

A processor declares one per version it can read (``@upcaster(from_version=1)`` turns
version-1 data into version-2 data); to reach its ``format_version`` an event passes through
each in turn. Events stored without a version count as ``Processor.unversioned``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from mg.core.model import Event

F = TypeVar("F", bound=Callable[..., Any])

MARK = "__mg_upcaster_from__"


class UpcastError(ValueError):
    """An event this processor cannot read: newer than it, or no upcaster for a step."""


def upcaster(from_version: int) -> Callable[[F], F]:
    """Declare a method ``(self, data) -> data`` that turns data of ``from_version`` into
    data of ``from_version + 1``."""
    if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 0:
        raise ValueError("from_version must be a non-negative integer")

    def mark(function: F) -> F:
        function.__dict__[MARK] = from_version
        return function

    return mark


def collect(namespace: Mapping[str, Any]) -> dict[int, Callable[..., Any]]:
    """The upcasters declared among a class's attributes, by the version they read."""
    found: dict[int, Callable[..., Any]] = {}
    for name, member in namespace.items():
        version = getattr(member, MARK, None)
        if version is None:
            continue
        if version in found:
            raise TypeError(f"two upcasters from format version {version} ({name} is the second)")
        found[version] = member
    return found


def upcast(
    event: Event,
    target: int | None,
    unversioned: int,
    steps: Mapping[int, Callable[[Any], Any]],
) -> Event:
    """``event`` lifted to ``target`` (unchanged when ``target`` is None or reached)."""
    if target is None:
        return event
    version = unversioned if event.format_version is None else event.format_version
    if version > target:
        raise UpcastError(
            f"event {event.id} has format version {version}, newer than this processor's {target}"
        )
    if version == target and event.format_version is not None:
        return event
    data = event.data
    while version < target:
        step = steps.get(version)
        if step is None:
            raise UpcastError(
                f"event {event.id}: no upcaster from format version {version} (target {target})"
            )
        data = step(data)
        version += 1
    return replace(event, data=data, format_version=target)
