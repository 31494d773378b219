"""Admission: a bound on the client requests a node handles at once. Past it a request is
answered ``429 overloaded`` before its body is read, so a flood costs little memory.

Sink long-polls have a budget of their own (``limits.max_long_polls``): they wait for up to a
minute each, and in the general budget a fleet of readers would shut every step out."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from mg.errors import Overloaded

LONG_POLL_ROUTE = "sink_events"


class Admission:
    def __init__(self, limit: int, what: str = "requests") -> None:
        self.limit = limit
        self.what = what
        self.active = 0

    @contextmanager
    def enter(self) -> Iterator[None]:
        if self.active >= self.limit:
            raise Overloaded(f"this node is handling {self.active} {self.what} already")
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


def is_long_poll(route: str, wait: str | None) -> bool:
    """Whether a request is a sink read that may wait (``wait`` a positive number). A malformed
    ``wait`` is not: it is refused (400) in the general budget."""
    if route != LONG_POLL_ROUTE or wait is None:
        return False
    try:
        seconds = float(wait)
    except ValueError:
        return False
    return math.isfinite(seconds) and seconds > 0
