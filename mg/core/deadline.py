"""Deadlines as explicit values, passed from the request down to every wait and sent on to the
processor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mg.core.clock import utc_now


@dataclass(frozen=True, slots=True)
class Deadline:
    at: datetime

    @classmethod
    def after(cls, seconds: float, now: datetime | None = None) -> Deadline:
        return cls((now or utc_now()) + timedelta(seconds=seconds))

    def remaining(self, now: datetime | None = None) -> float:
        """Seconds left; zero or less once passed."""
        return (self.at - (now or utc_now())).total_seconds()

    def passed(self, now: datetime | None = None) -> bool:
        return self.remaining(now) <= 0

    def earlier(self, other: Deadline | None) -> Deadline:
        if other is None or self.at <= other.at:
            return self
        return other
