"""The order processor of ``mg demo`` and of the tutorial (docs/tutorial.md), written with
``mg.processor``. ``examples/orders/processor.py`` serves this same class.

An order is created with a price and waits for payment under a timer. Paid, it waits for
shipping under a new timer; shipped, it is done. If the payment timer fires first the order
expires; if the shipping timer fires first it is cancelled and refunded.

    created --pay--> paid --ship--> shipped
       |               |
     timer           timer
       v               v
    expired        cancelled

Decisions are made from the history (the events are the truth); the aux state is a summary kept
for people and tools that read the machine (``mg machines get``) without replaying it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from mg.processor import (
    UNSET_TIMER,
    Event,
    InvalidArgs,
    Machine,
    Processor,
    Result,
    SetTimer,
    upcaster,
)

PAY_WITHIN = 3600  # seconds an order waits for its payment, unless the order says otherwise
SHIP_WITHIN = 86400  # seconds a paid order waits to be shipped, likewise

# The state an order is in after an event of each kind.
AFTER_EVENT = {
    "created": "awaiting_payment",
    "paid": "awaiting_shipment",
    "shipped": "shipped",
    "expired": "expired",
    "cancelled": "cancelled",
}


def seconds(value: Any) -> int | float:
    """A duration in seconds from the order's args, kept as given (``2`` stays ``2``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"a duration must be a non-negative number of seconds, not {value!r}")
    return value


def check_order(args: Any) -> None:
    """Refuse a start whose arguments are not an order: the start stores nothing."""
    if not isinstance(args, dict):
        raise InvalidArgs('an order is an object: {"item": ..., "cents": ...}')
    missing = [key for key in ("item", "cents") if key not in args]
    if missing:
        raise InvalidArgs(f"an order needs {' and '.join(missing)}")
    cents = args["cents"]
    if isinstance(cents, bool) or not isinstance(cents, int) or cents < 0:
        raise InvalidArgs(f"cents must be a non-negative integer, not {cents!r}")
    for key in ("pay_within", "ship_within"):
        if key in args:
            try:
                seconds(args[key])
            except ValueError as error:
                raise InvalidArgs(f"{key}: {error}") from None


def state_of(history: tuple[Event, ...]) -> str:
    """The order's state: the state its last state-changing event left it in."""
    state = "new"
    for event in history:
        state = AFTER_EVENT.get(event.data.get("kind"), state)
    return state


def created(history: tuple[Event, ...]) -> dict[str, Any]:
    """The order as it was created (the first event)."""
    first: dict[str, Any] = history[0].data
    return first


def summary(state: str, history: tuple[Event, ...], *new: dict[str, Any]) -> dict[str, Any]:
    """The aux state after a step that adds the events ``new``: the state and what was paid."""
    every = [event.data for event in history] + list(new)
    paid = sum(data["cents"] for data in every if data.get("kind") == "paid")
    return {"state": state, "paid_cents": paid}


class Orders(Processor):
    # Version 2 writes prices as integer cents; version 1 wrote them as decimal strings.
    format_version = 2

    @upcaster(from_version=1)
    def prices_in_cents(self, data: Any) -> Any:
        """Version-1 events said ``"price": "12.50"``; handlers only ever see ``"cents": 1250``."""
        if not isinstance(data, dict) or "price" not in data:
            return data
        lifted = {key: value for key, value in data.items() if key != "price"}
        lifted["cents"] = int(Decimal(data["price"]) * 100)
        return lifted

    def init(self, args: Any, machine: Machine) -> Result:
        """``{"item", "cents", "pay_within"?, "ship_within"?, "reference"?}``: a new order,
        tagged with its reference if it has one. Bad arguments are refused (``InvalidArgs``):
        the client gets ``422 invalid_args`` with the reason, and nothing is stored."""
        check_order(args)
        event = {
            "kind": "created",
            "item": str(args["item"]),
            "cents": int(args["cents"]),
            "ship_within": seconds(args.get("ship_within", SHIP_WITHIN)),
        }
        return Result(
            events=[event],
            aux_state=summary("awaiting_payment", ()),
            timer=SetTimer(timeout=seconds(args.get("pay_within", PAY_WITHIN))),
            tag=args.get("reference"),
        )

    def call(self, args: Any, machine: Machine) -> Result:
        """``{"pay": cents}``, ``{"ship": tracking}`` or ``"status"``. A call that does not fit
        the order's state is answered with a refusal and changes nothing; a call this
        processor does not know raises, which fails the machine (see ``repair``)."""
        history = machine.history
        state = state_of(history)
        if args == "status":
            return Result(response={"state": state})
        if isinstance(args, dict) and "pay" in args:
            return self._pay(int(args["pay"]), state, history)
        if isinstance(args, dict) and "ship" in args:
            if state != "awaiting_shipment":
                return Result(response={"refused": f"cannot ship an order that is {state}"})
            shipped = {"kind": "shipped", "tracking": str(args["ship"])}
            return Result(
                response={"state": "shipped"},
                events=[shipped],
                aux_state=summary("shipped", history, shipped),
                timer=UNSET_TIMER,
            )
        raise ValueError(f"unknown call {args!r}")

    def _pay(self, cents: int, state: str, history: tuple[Event, ...]) -> Result:
        if state != "awaiting_payment":
            return Result(response={"refused": f"cannot pay an order that is {state}"})
        order = created(history)
        if cents != order["cents"]:
            return Result(response={"refused": f"the price is {order['cents']} cents"})
        paid = {"kind": "paid", "cents": cents}
        return Result(
            response={"state": "awaiting_shipment"},
            events=[paid],
            aux_state=summary("awaiting_shipment", history, paid),
            timer=SetTimer(timeout=seconds(order.get("ship_within", SHIP_WITHIN))),
        )

    def timeout(self, machine: Machine) -> Result:
        """The timer of the current state fired: unpaid orders expire, unshipped ones are
        cancelled with a refund."""
        history = machine.history
        state = state_of(history)
        if state == "awaiting_payment":
            event = {"kind": "expired"}
            return Result(events=[event], aux_state=summary("expired", history, event))
        if state == "awaiting_shipment":
            refund = created(history)["cents"]
            event = {"kind": "cancelled", "refund_cents": refund}
            return Result(events=[event], aux_state=summary("cancelled", history, event))
        return Result()  # a timer left over from an older version: nothing to do

    def notification(self, args: Any, machine: Machine) -> Result:
        """A note from elsewhere (a carrier, support) is kept in the history."""
        return Result(events=[{"kind": "noted", "note": args}])

    def repair(self, args: Any, machine: Machine) -> Result:
        """A failed order goes back to work as it was; the repair is recorded with its args."""
        return Result(
            response={"state": state_of(machine.history)},
            events=[{"kind": "repaired", "note": args}],
        )
