"""Trimming as pure rules (PROTOCOL section 7): the trim action's schema, the first event a
machine holds after a step, ranges on the held span, and the state cache's stash."""

from datetime import UTC, datetime
from typing import Any

import pytest

from mg.core import step
from mg.core.model import Content, Direction, HistoryBounds, Range
from mg.core.processor_wire import Kind, Reply, parse_reply, request_value
from mg.core.ranges import select_span
from mg.core.shapes import ShapeError, parse_bounds
from mg.postgres.state_cache import stash_from

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def trim_reply(before: Any, events: int = 0) -> dict[str, Any]:
    return {"events": [{"data": n} for n in range(events)], "action": {"trim": {"before": before}}}


@pytest.mark.parametrize("before", [0, -1, 1.5, "3", True, None])
def test_a_trim_before_that_is_not_a_positive_integer_breaks_the_schema(before: Any) -> None:
    if before is None:
        # {"before": null} is not absent: the trim object must name a point.
        with pytest.raises(ShapeError, match="before"):
            parse_reply({"action": {"trim": {}}}, last_event_id=5)
        return
    with pytest.raises(ShapeError, match="before"):
        parse_reply(trim_reply(before), last_event_id=5)


def test_a_trim_that_is_not_an_object_breaks_the_schema() -> None:
    with pytest.raises(ShapeError, match=r"action\.trim"):
        parse_reply({"action": {"trim": 3}}, last_event_id=5)


def test_a_trim_may_reach_the_new_last_plus_one_and_no_further() -> None:
    assert parse_reply(trim_reply(6), last_event_id=5).trim_before == 6
    assert parse_reply(trim_reply(8, events=2), last_event_id=5).trim_before == 8
    with pytest.raises(ShapeError, match="past the machine's new last event"):
        parse_reply(trim_reply(7), last_event_id=5)
    with pytest.raises(ShapeError, match="past"):
        parse_reply(trim_reply(9, events=2), last_event_id=5)


def test_no_trim_leaves_trim_before_unset() -> None:
    assert parse_reply({"events": []}).trim_before is None
    assert parse_reply({"action": {"trim": None}}).trim_before is None


@pytest.mark.parametrize(
    ("first", "last", "before", "max_events", "expected"),
    [
        (1, 10, None, None, 1),  # nothing asked
        (1, 10, 4, None, 4),  # ids 1..3 go
        (5, 10, 3, None, 5),  # at or below first: nothing changes
        (5, 10, 11, None, 11),  # everything goes: first = last + 1
        (1, 10, None, 3, 8),  # the newest three stay
        (1, 2, None, 3, 1),  # fewer than the cap
        (1, 10, 4, 3, 8),  # the stricter of the two wins
        (1, 10, 9, 3, 9),
        (9, 10, None, 5, 9),  # never moves back
        (1, 0, None, 1, 1),  # no events at all
    ],
)
def test_first_held(
    first: int, last: int, before: int | None, max_events: int | None, expected: int
) -> None:
    assert step.first_held(first, last, before, max_events) == expected


def test_a_step_trims_its_own_new_events_too() -> None:
    record = step.start("ns", "m", Reply(events=(Content("a"),) * 3), NOW, None, 1).record
    assert (record.first_event_id, record.last_event_id) == (1, 3)
    reply = Reply(events=(Content("b"),) * 2, trim_before=5)
    transition = step.advance(record, Kind.CALL, reply, NOW, None)
    assert (transition.record.first_event_id, transition.record.last_event_id) == (5, 5)
    # Every new event is still part of the transition: the sinks receive them all.
    assert [e.id for e in transition.events] == [4, 5]


def test_max_events_applies_on_start_and_every_step() -> None:
    record = step.start("ns", "m", Reply(events=(Content("a"),) * 5), NOW, None, 1, 2).record
    assert (record.first_event_id, record.last_event_id) == (4, 5)
    later = step.advance(record, Kind.CALL, Reply(events=(Content("b"),)), NOW, None, 2).record
    assert (later.first_event_id, later.last_event_id) == (5, 6)
    # A failure or a retry keeps what is held.
    assert step.fail(later, "x", NOW).record.first_event_id == 5


def test_the_processor_request_carries_history_bounds() -> None:
    value = request_value(Kind.INIT, None, "ns", "m", None)
    assert value["machine"]["history_bounds"] == {"first": 1, "last": 0}


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (Range(), list(range(5, 11))),
        (Range(after=2), list(range(5, 11))),  # after below first clips
        (Range(after=2, limit=2), [5, 6]),
        (Range(after=6, limit=2, direction=Direction.BACKWARD), [5]),
        (Range(after=3, direction=Direction.BACKWARD), []),
        (Range(limit=2, direction=Direction.BACKWARD), [10, 9]),
        (Range(after=11, limit=1), []),
    ],
)
def test_ranges_work_on_the_held_span(selection: Range, expected: list[int]) -> None:
    span = select_span(selection, 5, 10)
    assert (span.ids() if span is not None else []) == expected


def test_nothing_held_selects_nothing() -> None:
    assert select_span(Range(), 11, 10) is None
    assert select_span(Range(direction=Direction.BACKWARD), 11, 10) is None


def test_the_stash_leaves_out_trimmed_events() -> None:
    events = [(n, NOW, None, b"\xc0") for n in range(1, 11)]
    assert [e[0] for e in stash_from(10, events, 20, first_event_id=7)] == [7, 8, 9, 10]
    assert stash_from(10, events, 20, first_event_id=11) == ()


def test_bounds_parse_strictly() -> None:
    assert parse_bounds({"first": 3, "last": 2}) == HistoryBounds(3, 2)
    assert parse_bounds(None) is None
    for bad in ({"first": 0, "last": 2}, {"first": 5, "last": 2}, {"first": "1", "last": 2}):
        with pytest.raises(ShapeError):
            parse_bounds(bad)
