"""The story ``mg demo`` tells, through ``mg.client`` against a running node: one order paid
and shipped in time, one left unpaid until its timer expires it, then both histories, the sink
and its verified hash chain. It prints what the CLI would show for the same things."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from mg.client import AsyncClient, Direction, Range, SinkEvent, Status
from mg.commands.output import inline, machine_text, sink_table, when
from mg.service.sink_verify import Verdict

NS, SINK = "orders", "main"
PAID, UNPAID = "order-A", "order-B"


class DemoFailed(RuntimeError):
    """The node did not do what the story expects (a bug, or a machine far too slow)."""


def say(text: str = "") -> None:
    print(text, flush=True)


def _args(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


async def _start(client: AsyncClient, machine_id: str, args: dict[str, Any]) -> None:
    await client.start(NS, machine_id, args)
    machine = await client.get(NS, machine_id, range=Range(limit=0))
    say(f"  start {machine_id} {_args(args)}")
    say(f"        -> {machine.status.value}, timer due at {when(machine.timer)}")


async def _call(client: AsyncClient, machine_id: str, args: Any) -> None:
    response = await client.call(NS, machine_id, args)
    say(f"  call  {machine_id} {_args(args)}")
    say(f"        -> {_args(response)}")


async def _wait_for_timer(client: AsyncClient, machine_id: str, patience: float) -> None:
    """Watch the machine until its timer's step has committed, then say when it fired."""
    before = await client.get(NS, machine_id, range=Range(limit=0))
    due, after = before.timer, before
    say(f"  {machine_id} waits for its payment; its timer is due at {when(due)}")
    with trio.move_on_after(patience):
        while True:
            after = await client.get(
                NS, machine_id, range=Range(limit=1, direction=Direction.BACKWARD)
            )
            if after.status is not Status.WAITING:
                break
            await trio.sleep(0.05)
    if due is None or after.status is not Status.SLEEPING or not after.history:
        raise DemoFailed(f"the timer of {machine_id} did not fire within {patience:g} s")
    fired = after.history[-1]
    late = (fired.created_at - due).total_seconds() * 1000
    say(
        f"  timer fired: {machine_id}'s timer was due at {when(due)}; the timeout step "
        f"committed at {when(fired.created_at)} (+{late:.0f} ms): {inline(fired.data)}"
    )


async def _read_sink(client: AsyncClient, expected: int, patience: float) -> list[SinkEvent]:
    """The sink's events, once the sequencer has published the ``expected`` ones."""
    events: list[SinkEvent] = []
    with trio.move_on_after(patience):
        while len(events) < expected:
            after = events[-1].id if events else 0
            events += await client.read_sink(SINK, range=Range(after=after), wait=1.0)
    if len(events) < expected:
        raise DemoFailed(f"the sink has {len(events)} events after {patience:g} s, not {expected}")
    return events


async def tell(
    client: AsyncClient, verify: Callable[[], Awaitable[Verdict]], timer: float
) -> Verdict:
    """Run the story; returns the sink's verdict."""
    say(f"1. {PAID} is created, paid and shipped before its timers fire")
    await _start(client, PAID, {"item": "a book", "cents": 1250, "pay_within": timer * 4})
    await _call(client, PAID, {"pay": 1250})
    await _call(client, PAID, {"ship": "TRACK-1"})
    say()
    say(f"2. {UNPAID} is created and never paid: its timer fires and expires it")
    await _start(client, UNPAID, {"item": "a lamp", "cents": 4900, "pay_within": timer})
    await _wait_for_timer(client, UNPAID, patience=timer + 20)
    say()
    say("3. The machines (as `mg machines get` shows them)")
    total = 0
    for machine_id in (PAID, UNPAID):
        machine = await client.get(NS, machine_id)
        total += len(machine.history)
        say(_indent(machine_text(machine)))
        say()
    say(f"4. The sink {SINK!r} (as `mg sink tail {SINK} --after 0` shows it)")
    say(_indent(sink_table(await _read_sink(client, total, patience=20))))
    verdict = await verify()
    say(f"  {verdict.summary()}")
    return verdict


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())
