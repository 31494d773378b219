"""Modernizing a machine's history: the part of the ``modernize`` operation that runs under the
machine's lock, between reading the history and rewriting it.

Every outdated event in the range goes to the modernizer, one at a time and in order, so a
modernizer sees the same sequence a processor would. Nothing is written until every answer is
in and accepted: one refused answer leaves the whole history as it was.
"""

from __future__ import annotations

from mg.core.deadline import Deadline
from mg.core.model import Event, Machine
from mg.core.modernize import VersionLowered, is_outdated, modernized
from mg.errors import ModernizerFailed
from mg.service.ports import Modernizer
from mg.settings import Namespace


async def modernize_history(
    modernizer: Modernizer,
    namespace: Namespace,
    machine: Machine,
    deadline: Deadline,
    trace: str | None,
) -> list[Event]:
    """The events of ``machine.history`` whose content the modernizer changed."""
    if namespace.modernizer is None:
        return []
    current = namespace.modernizer.current_format_version
    changed: list[Event] = []
    for event in machine.history:
        if not is_outdated(event, current):
            continue
        content = await modernizer.modernize(namespace, machine.record.id, event, deadline, trace)
        try:
            new = modernized(event, content)
        except VersionLowered as error:
            raise ModernizerFailed(f"{error}; nothing was changed") from error
        if new is not None:
            changed.append(new)
    return changed
