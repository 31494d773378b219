"""A second example processor: subscriptions that renew on a timer and charge a card each period.

    python examples/subscriptions/processor.py                 # http://127.0.0.1:9001
    mg serve --config examples/subscriptions/mg.toml           # in another shell

What it shows that the order example does not:

- **A side effect that must happen once**: each renewal charges a payment gateway. mg may run
  the same step twice (a timeout, a node that died after the gateway answered), so the charge
  carries an idempotency key made of the machine's id and the id the renewal's event will get:
  a step run again sends the same key, and the gateway answers with the charge it already made.
- **A retried step**: while the gateway is down the timeout handler raises ``Transient``; mg
  keeps the machine ``retrying`` (``mg machines get`` says why) and tries again by the
  namespace's ``retries.timers`` policy.
- **Refused arguments**: ``init`` raises ``InvalidArgs`` for a start that is not a subscription;
  the client gets ``422 invalid_args`` and nothing is stored.
- **Cancel and repair**: ``"cancel"`` unsets the renewal timer; a machine failed by a declined
  card is repaired with ``{"checked": true}`` and renews again at once.
- **A long-lived machine**: the timer's ``range`` sends only the newest event with the
  ``timeout`` signal, and the aux state carries what the handlers need, so a subscription that
  renews for years does not send its whole history on every renewal.

The gateway here is a stand-in kept in memory (``FakeGateway``); a real one is an HTTP API that
takes the same key in an ``Idempotency-Key`` header.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from mg.processor import (
    UNSET_TIMER,
    InvalidArgs,
    Machine,
    Processor,
    Range,
    RepairRefused,
    Result,
    SetTimer,
    Transient,
)

MONTH = 30 * 86400


class GatewayDown(Exception):
    """The gateway did not answer: the charge may or may not have been made."""


class CardDeclined(Exception):
    """The gateway answered: no charge, and trying again will not help."""


@dataclass
class FakeGateway:
    """A payment gateway in memory. ``lose_answers`` times, it makes the charge and then fails
    as if the answer had been lost on the way back; ``decline`` declines every charge."""

    lose_answers: int = 0
    decline: bool = False
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)

    def charge(self, key: str, customer: str, cents: int) -> str:
        if self.decline:
            raise CardDeclined(f"the card of {customer} was declined")
        if key not in self.charges:  # idempotent: a key charges once
            self.charges[key] = {"id": f"ch_{len(self.charges) + 1}", "cents": cents}
        if self.lose_answers > 0:
            self.lose_answers -= 1
            raise GatewayDown("the gateway did not answer in time")
        return str(self.charges[key]["id"])


# The timeout signal only needs the newest event (for its id): the rest is in the aux state.
NEWEST_EVENT = Range(limit=1, direction="backward")


class Subscriptions(Processor):
    format_version = 1

    def __init__(self, gateway: FakeGateway | None = None) -> None:
        self.gateway = gateway or FakeGateway()

    def init(self, args: Any, machine: Machine) -> Result:
        """``{"customer", "plan", "cents", "period"?}``: a subscription, renewed every
        ``period`` seconds (default 30 days) and tagged with its customer."""
        if not isinstance(args, dict) or not {"customer", "plan", "cents"} <= args.keys():
            raise InvalidArgs('a subscription needs {"customer", "plan", "cents"}')
        cents, period = args["cents"], args.get("period", MONTH)
        if isinstance(cents, bool) or not isinstance(cents, int) or cents <= 0:
            raise InvalidArgs(f"cents must be a positive integer, not {cents!r}")
        if isinstance(period, bool) or not isinstance(period, int | float) or period <= 0:
            raise InvalidArgs(f"period must be a positive number of seconds, not {period!r}")
        customer = str(args["customer"])
        terms = {"customer": customer, "plan": str(args["plan"]), "cents": cents, "period": period}
        return Result(
            events=[{"kind": "subscribed", **terms}],
            aux_state={**terms, "state": "active", "renewals": 0},
            timer=SetTimer(timeout=period, range=NEWEST_EVENT),
            tag=f"customer-{customer}",
        )

    def timeout(self, machine: Machine) -> Result:
        """The period is over: charge the next one, with a key that makes a repeated step
        charge nothing more."""
        aux = machine.aux_state.data if machine.aux_state else {}
        if aux.get("state") != "active":
            return Result()  # cancelled meanwhile: a late timer does nothing
        # The id this step's event gets: the same when mg runs the step again.
        next_event_id = machine.history[-1].id + 1
        key = f"{machine.ns}/{machine.id}/{next_event_id}"
        try:
            charge_id = self.gateway.charge(key, aux["customer"], aux["cents"])
        except GatewayDown as error:
            raise Transient(f"payment gateway: {error}") from error  # mg retries the step
        except CardDeclined as error:
            raise RuntimeError(str(error)) from error  # fails the machine; see repair
        renewed = {"kind": "renewed", "period": aux["renewals"] + 1, "charge": charge_id}
        return Result(
            events=[renewed],
            aux_state={**aux, "renewals": aux["renewals"] + 1},
            timer=SetTimer(timeout=aux["period"], range=NEWEST_EVENT),
        )

    def call(self, args: Any, machine: Machine) -> Result:
        """``"status"`` reads; ``"cancel"`` stops the renewals."""
        aux = machine.aux_state.data if machine.aux_state else {}
        if args == "status":
            return Result(response={"state": aux.get("state"), "renewals": aux.get("renewals")})
        if args == "cancel":
            if aux.get("state") != "active":
                return Result(response={"refused": f"the subscription is {aux.get('state')}"})
            return Result(
                response={"state": "cancelled"},
                events=[{"kind": "cancelled"}],
                aux_state={**aux, "state": "cancelled"},
                timer=UNSET_TIMER,
            )
        raise ValueError(f"unknown call {args!r}")

    def notification(self, args: Any, machine: Machine) -> Result:
        """A note from elsewhere (the customer updated their card, say) is kept."""
        return Result(events=[{"kind": "noted", "note": args}])

    def repair(self, args: Any, machine: Machine) -> Result:
        """After a declined card: ``{"checked": true}`` once the customer's card is fixed; the
        renewal is tried again at once."""
        if args != {"checked": True}:
            raise RepairRefused({"why": 'fix the card first, then repair with {"checked": true}'})
        return Result(
            response="renewing",
            events=[{"kind": "repaired"}],
            timer=SetTimer(timeout=0, range=NEWEST_EVENT),
        )


def main() -> None:
    from mg.processor import run

    parser = argparse.ArgumentParser(description="Serve mg's example subscription processor.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument(
        "--lose-answers",
        type=int,
        default=0,
        metavar="N",
        help="the fake gateway loses its first N answers (the machine retries)",
    )
    args = parser.parse_args()
    run(Subscriptions(FakeGateway(lose_answers=args.lose_answers)), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
