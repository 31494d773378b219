"""The pure modernize rules: which events go to the modernizer and what an answer changes."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from mg.core.model import Content, Event
from mg.core.modernize import VersionLowered, is_outdated, modernized, parse_answer, request_value
from mg.core.shapes import ShapeError, parse_event

AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def event(version: int | None, data: object = "old") -> Event:
    return Event(id=7, created_at=AT, format_version=version, data=data)


def test_absent_and_older_versions_are_outdated_current_and_newer_are_not() -> None:
    assert is_outdated(event(None), 2)
    assert is_outdated(event(1), 2)
    assert not is_outdated(event(2), 2)
    assert not is_outdated(event(3), 2)


def test_new_content_keeps_the_id_and_the_time() -> None:
    new = modernized(event(1), Content({"v": 2}, 2))
    assert new == Event(id=7, created_at=AT, format_version=2, data={"v": 2})


def test_the_same_content_is_no_change() -> None:
    assert modernized(event(1, {"a": [1, b"x"]}), Content({"a": [1, b"x"]}, 1)) is None
    assert modernized(event(None), Content("old", None)) is None


def test_the_same_version_with_new_data_is_a_change() -> None:
    assert modernized(event(1), Content("new", 1)) == event(1, "new")


def test_a_lower_or_absent_version_is_refused() -> None:
    with pytest.raises(VersionLowered, match="lower than the stored 2"):
        modernized(event(2), Content("x", 1))
    with pytest.raises(VersionLowered):
        modernized(event(1), Content("x", None))


def test_an_unversioned_event_may_get_any_version() -> None:
    assert modernized(event(None), Content("x", 1)) == event(1, "x")


def test_the_request_carries_the_event_as_the_contract_writes_it() -> None:
    sent = request_value("orders", "o-1", event(1, b"\x00"))
    assert sent == {
        "ns": "orders",
        "id": "o-1",
        "event": {
            "id": 7,
            "created_at": "2026-01-02T03:04:05.678901Z",
            "format_version": 1,
            "data": b"\x00",
        },
    }
    assert parse_event(sent["event"], "event") == event(1, b"\x00")


def test_an_answer_without_an_event_content_is_refused() -> None:
    assert parse_answer({"event": {"data": 1, "format_version": 2}}) == Content(1, 2)
    for bad in (
        None,
        [],
        {},
        {"event": {"format_version": 2}},
        {"event": {"data": 1, "format_version": "2"}},
    ):
        with pytest.raises(ShapeError):
            parse_answer(bad)


def test_an_answer_breaking_the_value_rule_is_refused_with_the_reason() -> None:
    deep: object = 0
    for _ in range(101):
        deep = [deep]
    for data, words in ((math.nan, "float NaN"), (2**64, "64-bit"), (deep, "nested deeper")):
        with pytest.raises(ShapeError, match=f"event.data: .*{words}"):
            parse_answer({"event": {"data": data, "format_version": 2}})
