"""Parsing processor replies: what fits the schema, and what is a permanent failure."""

import math
from datetime import UTC, datetime

import pytest

from mg.core.clock import format_time, stored_duration, stored_time
from mg.core.model import Content, Direction
from mg.core.processor_wire import (
    Kind,
    TimerSpec,
    Unset,
    parse_refusal,
    parse_reply,
    request_value,
)
from mg.core.shapes import ShapeError


def test_a_full_reply_parses() -> None:
    reply = parse_reply(
        {
            "response": {"ok": True},
            "events": [{"data": b"\x01", "format_version": 2}, {"data": None}],
            "aux_state": {"data": [1], "format_version": None},
            "action": {
                "timer": {
                    "set": {
                        "timeout": 1.5,
                        "range": {"limit": 3, "direction": "backward"},
                        "handling_timeout": 10,
                    }
                },
                "tag": "order-1",
                "remove": False,
            },
        }
    )
    assert reply.response == {"ok": True}
    assert reply.events == (Content(b"\x01", 2), Content(None, None))
    assert reply.aux_state == Content([1], None)
    assert isinstance(reply.timer, TimerSpec)
    assert reply.timer.timeout == 1.5
    assert reply.timer.range.direction is Direction.BACKWARD
    assert reply.timer.handling_timeout == 10.0
    assert reply.tag == "order-1"


def test_an_empty_reply_keeps_everything() -> None:
    reply = parse_reply({})
    assert reply.response is None
    assert reply.events == ()
    assert reply.aux_state is None
    assert reply.timer is None


def test_deadline_with_offset_is_read_as_utc() -> None:
    reply = parse_reply({"action": {"timer": {"set": {"deadline": "2030-01-01T03:00:00+03:00"}}}})
    assert isinstance(reply.timer, TimerSpec)
    assert reply.timer.deadline == datetime(2030, 1, 1, tzinfo=UTC)


def test_unset() -> None:
    assert parse_reply({"action": {"timer": {"unset": True}}}).timer is Unset.TIMER


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"events": {"data": 1}},
        {"events": [{"format_version": 1}]},
        {"events": [{"data": 1, "format_version": "1"}]},
        {"aux_state": 5},
        {"action": {"timer": {"set": {}}}},
        {"action": {"timer": {"set": {"timeout": 1, "deadline": "2030-01-01T00:00:00Z"}}}},
        {"action": {"timer": {"set": {"timeout": -1}}}},
        {"action": {"timer": {"set": {"deadline": "tomorrow"}}}},
        {"action": {"timer": {"unset": False}}},
        {"action": {"tag": ""}},
        {"action": {"tag": 5}},
        {"action": {"remove": "yes"}},
        {"action": {"timer": {"set": {"timeout": 1, "range": {"limit": -1}}}}},
    ],
)
def test_replies_that_break_the_schema_are_refused(body: object) -> None:
    with pytest.raises(ShapeError):
        parse_reply(body)


def test_signal_and_call_requests_have_the_protocol_shape() -> None:
    init = request_value(Kind.INIT, {"a": 1}, "ns", "m1", None)
    assert init["kind"] == "signal"
    assert init["signal"] == {"type": "init", "args": {"a": 1}}
    assert init["machine"]["history"] == []
    assert init["machine"]["aux_state"] is None
    call = request_value(Kind.CALL, 5, "ns", "m1", None)
    assert call["kind"] == "call"
    assert call["args"] == 5
    assert "signal" not in call


def _deep(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("reply", "where"),
    [
        ({"events": [{"data": 1}, {"data": math.nan}]}, r"events\[1\]\.data: float NaN"),
        ({"events": [{"data": {"x": math.inf}}]}, r"events\[0\]\.data: float Infinity"),
        ({"events": [{"data": _deep(600)}]}, r"events\[0\]\.data: value nested deeper"),
        ({"events": [{"data": 2**70}]}, r"events\[0\]\.data: integer out of the 64-bit"),
        ({"aux_state": {"data": "\ud800"}}, r"aux_state\.data: a string holds a lone"),
        ({"response": 2**70}, r"response: integer out of the 64-bit range"),
        ({"response": _deep(101)}, r"response: value nested deeper"),
        ({"action": {"timer": {"set": {"timeout": math.nan}}}}, "timeout must be a finite"),
        ({"action": {"timer": {"set": {"timeout": math.inf}}}}, "timeout must be a finite"),
        ({"action": {"timer": {"set": {"timeout": 1e300}}}}, "more than ten years"),
        (
            {"action": {"timer": {"set": {"timeout": 1, "handling_timeout": math.nan}}}},
            "handling_timeout must be a finite",
        ),
        (
            {"action": {"timer": {"set": {"timeout": 1, "handling_timeout": math.inf}}}},
            "handling_timeout must be a finite",
        ),
        (
            {"action": {"timer": {"set": {"timeout": 1, "handling_timeout": 1e300}}}},
            "handling_timeout is more than 86400 seconds",
        ),
        (
            {"action": {"timer": {"set": {"timeout": 1, "range": {"after": 2**70}}}}},
            "range.after is out of the 64-bit",
        ),
        ({"events": [{"data": 1}] * 11}, r"holds 11 events; the limit is 10"),
    ],
)
def test_bad_values_in_a_reply_are_refused_and_named(reply: object, where: str) -> None:
    with pytest.raises(ShapeError, match=where):
        parse_reply(reply, max_events=10)


def test_a_deadline_before_1970_is_kept_as_due_at_once() -> None:
    for text in ("0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z"):
        reply = parse_reply({"action": {"timer": {"set": {"deadline": text}}}})
        assert isinstance(reply.timer, TimerSpec)
        assert reply.timer.deadline == datetime(1970, 1, 1, tzinfo=UTC)


def test_the_latest_deadline_is_accepted_and_formatted_with_four_digit_years() -> None:
    reply = parse_reply({"action": {"timer": {"set": {"deadline": "9999-12-31T23:59:59Z"}}}})
    assert isinstance(reply.timer, TimerSpec)
    assert reply.timer.deadline is not None
    assert format_time(reply.timer.deadline) == "9999-12-31T23:59:59.000000Z"
    assert format_time(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000000Z"
    assert format_time(datetime(999, 2, 3, 4, 5, 6, 7, tzinfo=UTC)) == "0999-02-03T04:05:06.000007Z"


def test_stored_times_and_durations_read_back_sane() -> None:
    # What the driver gives for Postgres's -infinity and infinity: naive extremes.
    assert stored_time(datetime.min) == datetime(1970, 1, 1, tzinfo=UTC)
    assert stored_time(datetime.max) == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert stored_time(datetime(2020, 1, 1)) == datetime(2020, 1, 1, tzinfo=UTC)
    assert stored_duration(None) is None
    assert stored_duration(math.nan) is None
    assert stored_duration(-1.0) is None
    assert stored_duration(math.inf) == 86_400.0
    assert stored_duration(1e300) == 86_400.0
    assert stored_duration(2.5) == 2.5


def test_a_repair_refusal_whose_reason_breaks_the_value_rule_is_refused() -> None:
    assert parse_refusal({"error": "repair_failed", "reason": {"why": 1}}) == {"why": 1}
    with pytest.raises(ShapeError, match="reason: float NaN"):
        parse_refusal({"error": "repair_failed", "reason": math.nan})
