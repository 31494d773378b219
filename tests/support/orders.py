"""An order-keeping processor written with ``mg.processor``, shared by the framework's tests.

Its events are at format version 2 (amounts in cents); version-1 events (amounts in units)
are upcast, so it also serves as its own modernizer.
"""

from __future__ import annotations

from typing import Any

from mg.processor import (
    UNSET_TIMER,
    Machine,
    Processor,
    RepairRefused,
    Result,
    SetTimer,
    Transient,
    upcaster,
)

REMINDER = 3600.0


class Orders(Processor):
    format_version = 2

    @upcaster(from_version=1)
    def amounts_in_cents(self, data: Any) -> Any:
        if not isinstance(data, dict) or "amount" not in data:
            return data
        upgraded = {k: v for k, v in data.items() if k != "amount"}
        upgraded["cents"] = round(data["amount"] * 100)
        return upgraded

    def init(self, args: Any, machine: Machine) -> Result:
        return Result(
            events=[{"kind": "created", "cents": args["cents"]}],
            aux_state={"paid": 0},
            timer=SetTimer(timeout=REMINDER),
        )

    async def call(self, args: Any, machine: Machine) -> Result:
        if args == "total":
            return Result(response=sum(e.data.get("cents", 0) for e in machine.history))
        if args == "boom":
            raise ValueError("the ledger is on fire")
        if args == "busy":
            raise Transient("the ledger is down")
        if args == "close":
            return Result(response="closed", events=[{"kind": "closed"}], remove=True)
        if args == "quiet":
            return Result(timer=UNSET_TIMER)
        if args == "remind soon":
            return Result(timer=SetTimer(timeout=0))
        if isinstance(args, dict) and "tag" in args:
            return Result(response="tagged", tag=args["tag"])
        if isinstance(args, dict) and "pay" in args:
            paid = (machine.aux_state.data["paid"] if machine.aux_state else 0) + args["pay"]
            return Result(
                response=paid,
                events=[{"kind": "paid", "cents": args["pay"]}],
                aux_state={"paid": paid},
            )
        raise ValueError(f"unknown call {args!r}")

    def repair(self, args: Any, machine: Machine) -> Result:
        if args == "not yet":
            raise RepairRefused({"why": "the ledger is still on fire"})
        return Result(response="repaired", events=[{"kind": "repaired"}])

    async def timeout(self, machine: Machine) -> Result:
        return Result(events=[{"kind": "reminded"}], timer=SetTimer(timeout=REMINDER))

    def notification(self, args: Any, machine: Machine) -> Result:
        return Result(events=[{"kind": "notified", "note": args}])
