"""The demo's order processor, handler by handler, with no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mg.core.processor_wire import Kind
from mg.demo.orders import Orders
from mg.processor import (
    UNSET_TIMER,
    Content,
    Event,
    InvalidArgs,
    Machine,
    ProcessorRequest,
    Result,
    SetTimer,
)

NOW = datetime(2026, 1, 2, tzinfo=UTC)


def order(*events: Any, version: int | None = 2) -> Machine:
    history = tuple(Event(n, NOW, version, data) for n, data in enumerate(events, start=1))
    return Machine(ns="orders", id="o-1", history=history)


CREATED = {"kind": "created", "item": "a pen", "cents": 300, "ship_within": 60}
PAID = {"kind": "paid", "cents": 300}


def test_a_new_order_waits_for_payment_under_a_timer_and_takes_its_reference_as_tag() -> None:
    result = Orders().init(
        {"item": "a pen", "cents": 300, "pay_within": 5, "reference": "r"}, order()
    )
    assert result.events == [
        {"kind": "created", "item": "a pen", "cents": 300, "ship_within": 86400}
    ]
    assert result.timer == SetTimer(timeout=5)
    assert result.tag == "r"
    assert result.aux_state == {"state": "awaiting_payment", "paid_cents": 0}


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ("a pen", "an order is an object"),
        ({"cents": 300}, "an order needs item"),
        ({"item": "a pen"}, "an order needs cents"),
        ({"item": "a pen", "cents": "3"}, "cents must be a non-negative integer"),
        ({"item": "a pen", "cents": -1}, "cents must be a non-negative integer"),
        ({"item": "a pen", "cents": 3, "pay_within": -1}, "pay_within: a duration must be"),
    ],
)
def test_a_start_that_is_not_an_order_is_refused_with_a_reason(args: Any, reason: str) -> None:
    with pytest.raises(InvalidArgs) as refused:
        Orders().init(args, order())
    assert str(refused.value.reason).startswith(reason)


def test_paying_the_price_arms_the_shipping_timer_and_shipping_disarms_it() -> None:
    paid = Orders().call({"pay": 300}, order(CREATED))
    assert isinstance(paid, Result)
    assert paid.events == [PAID]
    assert paid.timer == SetTimer(timeout=60)
    assert paid.aux_state == {"state": "awaiting_shipment", "paid_cents": 300}
    shipped = Orders().call({"ship": "T-1"}, order(CREATED, PAID))
    assert isinstance(shipped, Result)
    assert shipped.timer is UNSET_TIMER
    assert shipped.response == {"state": "shipped"}


@pytest.mark.parametrize(
    ("args", "history", "refusal"),
    [
        ({"pay": 299}, (CREATED,), "the price is 300 cents"),
        ({"pay": 300}, (CREATED, PAID), "cannot pay an order that is awaiting_shipment"),
        ({"ship": "T"}, (CREATED,), "cannot ship an order that is awaiting_payment"),
    ],
)
def test_calls_that_do_not_fit_the_state_are_refused_without_events(
    args: Any, history: tuple[Any, ...], refusal: str
) -> None:
    result = Orders().call(args, order(*history))
    assert isinstance(result, Result)
    assert result.response == {"refused": refusal}
    assert result.events == ()


def test_an_unknown_call_fails_the_machine() -> None:
    with pytest.raises(ValueError, match="unknown call 'refund'"):
        Orders().call("refund", order(CREATED))


def test_the_timer_expires_an_unpaid_order_and_cancels_an_unshipped_one() -> None:
    expired = Orders().timeout(order(CREATED))
    assert isinstance(expired, Result)
    assert expired.events == [{"kind": "expired"}]
    cancelled = Orders().timeout(order(CREATED, PAID))
    assert isinstance(cancelled, Result)
    assert cancelled.events == [{"kind": "cancelled", "refund_cents": 300}]
    assert cancelled.aux_state == {"state": "cancelled", "paid_cents": 300}


async def test_an_order_created_by_version_1_is_paid_in_cents() -> None:
    old = order({"kind": "created", "item": "a pen", "price": "12.50"}, version=1)
    paid = await Orders().handle(ProcessorRequest(Kind.CALL, {"pay": 1250}, old))
    assert paid.response == {"state": "awaiting_shipment"}
    assert paid.timer == SetTimer(timeout=86400)  # version 1 had no ship_within


def test_version_1_prices_are_read_as_cents() -> None:
    old = Event(1, NOW, 1, {"kind": "created", "item": "a pen", "price": "12.50"})
    assert Orders().upcast(old) == Event(
        1, NOW, 2, {"kind": "created", "item": "a pen", "cents": 1250}
    )
    assert Orders().modernize("orders", "o-1", old) == Content(
        {"kind": "created", "item": "a pen", "cents": 1250}, 2
    )
