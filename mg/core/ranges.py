"""Range arithmetic on a machine's event ids (PROTOCOL section 2).

Events of a machine have contiguous ids ``first..last``; a range becomes an inclusive id span
plus a walking direction, which storage turns into one indexed query.
"""

from __future__ import annotations

from dataclasses import dataclass

from mg.core.model import Direction, Range


@dataclass(frozen=True, slots=True)
class IdSpan:
    """Ids ``low..high`` inclusive, walked in ``direction``."""

    low: int
    high: int
    direction: Direction

    def ids(self) -> list[int]:
        span = range(self.low, self.high + 1)
        return list(span) if self.direction is Direction.FORWARD else list(reversed(span))

    def __len__(self) -> int:
        return self.high - self.low + 1


def select_span(selection: Range, first: int, last: int) -> IdSpan | None:
    """The ids ``selection`` keeps out of ``first..last``, or None when it keeps none."""
    if last < first:
        return None
    if selection.limit is not None and selection.limit < 0:
        raise ValueError("limit must not be negative")
    if selection.direction is Direction.FORWARD:
        start = first if selection.after is None else max(first, selection.after + 1)
        end = last
        if selection.limit is not None:
            end = min(end, start + selection.limit - 1)
        if start > end:
            return None
        return IdSpan(start, end, Direction.FORWARD)
    start = last if selection.after is None else min(last, selection.after - 1)
    end = first
    if selection.limit is not None:
        end = max(end, start - selection.limit + 1)
    if start < end:
        return None
    return IdSpan(end, start, Direction.BACKWARD)
