"""Range arithmetic: every example of PROTOCOL section 2, and the edges."""

import pytest

from mg.core.model import Direction, Range
from mg.core.ranges import select_span

BACK = Direction.BACKWARD


def ids(selection: Range, first: int, last: int) -> list[int]:
    span = select_span(selection, first, last)
    return [] if span is None else span.ids()


@pytest.mark.parametrize(
    ("selection", "first", "last", "expected"),
    [
        (Range(limit=2), 1, 8, [1, 2]),
        (Range(limit=2, direction=BACK), 1, 8, [8, 7]),
        (Range(after=5, limit=5), 1, 8, [6, 7, 8]),
        (Range(after=6), 1, 8, [7, 8]),
        (Range(after=5, limit=3, direction=BACK), 1, 100, [4, 3, 2]),
        (Range(after=11, limit=1), 5, 10, []),
        (Range(after=11, limit=2, direction=BACK), 5, 10, [10, 9]),
    ],
)
def test_protocol_examples(selection: Range, first: int, last: int, expected: list[int]) -> None:
    assert ids(selection, first, last) == expected


def test_default_range_is_the_whole_history_forward() -> None:
    assert ids(Range(), 1, 4) == [1, 2, 3, 4]


def test_limit_zero_gives_none() -> None:
    assert ids(Range(limit=0), 1, 4) == []
    assert ids(Range(limit=0, direction=BACK), 1, 4) == []


def test_after_before_the_start_clips() -> None:
    assert ids(Range(after=-10, limit=2), 1, 4) == [1, 2]
    assert ids(Range(after=0, direction=BACK), 1, 4) == []
    assert ids(Range(after=1, direction=BACK), 1, 4) == []
    assert ids(Range(after=2, direction=BACK), 1, 4) == [1]


def test_after_at_the_end_is_empty_forward() -> None:
    assert ids(Range(after=4), 1, 4) == []


def test_empty_history_gives_nothing() -> None:
    assert select_span(Range(), 1, 0) is None
    assert select_span(Range(direction=BACK, limit=5), 1, 0) is None


def test_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        select_span(Range(limit=-1), 1, 4)
