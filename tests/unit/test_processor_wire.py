"""Parsing processor replies: what fits the schema, and what is a permanent failure."""

from datetime import UTC, datetime

import pytest

from mg.core.model import Content, Direction
from mg.core.processor_wire import Kind, TimerSpec, Unset, parse_reply, request_value
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
