"""The claim loop survives odd due times: it neither raises nor spins."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mg.loops.claims import ClaimLoop
from mg.settings import Loop


class _Waiter:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return False


class _Waker:
    def arm(self, topic: str) -> _Waiter:
        return _Waiter()

    def wake_local(self, topic: str) -> None:
        pass


@pytest.mark.parametrize(
    "due", [datetime(1, 1, 1), datetime.max, datetime(2020, 1, 1), datetime.min.replace(tzinfo=UTC)]
)
async def test_sleep_takes_any_next_due_time_without_raising_or_spinning(due: datetime) -> None:
    async def claim(now: datetime, room: int) -> list[int]:
        return []

    async def next_due(now: datetime) -> datetime:
        return due

    async def handle(item: int) -> None:
        pass

    loop = ClaimLoop("timers", claim, next_due, handle, _Waker(), Loop(poll_interval=5.0))
    waiter = _Waiter()
    await loop._sleep(waiter)
    [slept] = waiter.waits
    assert 0 <= slept <= 5.0
