"""Admission: a bound on the client requests a node handles at once. Past it a request is
answered ``429 overloaded`` before its body is read, so a flood costs little memory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mg.errors import Overloaded


class Admission:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextmanager
    def enter(self) -> Iterator[None]:
        if self.active >= self.limit:
            raise Overloaded(f"this node is handling {self.active} requests already")
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
