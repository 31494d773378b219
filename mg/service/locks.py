"""Per-machine in-memory locks: same-node requests for one machine queue here, in arrival
order, before any of them takes a database connection for the cluster-wide lock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from mg.core.deadline import Deadline
from mg.errors import DeadlineExceeded, Overloaded


@dataclass
class _Entry:
    lock: trio.Lock = field(default_factory=trio.Lock)
    users: int = 0


class MachineLocks:
    """One ``trio.Lock`` per busy machine; idle machines cost nothing."""

    def __init__(self, max_queue: int) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._max_queue = max_queue

    def queue_length(self, ns: str, machine_id: str) -> int:
        entry = self._entries.get((ns, machine_id))
        return entry.users if entry else 0

    @property
    def busy_machines(self) -> int:
        return len(self._entries)

    @property
    def waiting(self) -> int:
        """Requests queued behind another step of the same machine (for metrics)."""
        return sum(e.users - (1 if e.lock.locked() else 0) for e in self._entries.values())

    @asynccontextmanager
    async def hold(self, ns: str, machine_id: str, deadline: Deadline) -> AsyncIterator[None]:
        key = (ns, machine_id)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        if entry.users >= self._max_queue:
            raise Overloaded(
                f"{entry.users} requests are already queued for this machine", retry_after=1.0
            )
        entry.users += 1
        try:
            with trio.move_on_after(max(deadline.remaining(), 0)) as scope:
                await entry.lock.acquire()
            if scope.cancelled_caught:
                raise DeadlineExceeded(
                    "the deadline passed while queued behind this machine's steps"
                )
            try:
                yield
            finally:
                entry.lock.release()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]
