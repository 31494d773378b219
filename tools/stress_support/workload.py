"""The stress workload: a processor whose every event carries the token of the operation that
caused it, and workers that drive a mix of operations and remember what was acknowledged."""

from __future__ import annotations

import random
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.lowlevel

from mg.client import AsyncClient
from mg.errors import DeadlineExceeded, MgError, Overloaded, TransientError
from mg.processor import Processor, Result, SetTimer, Transient
from mg.processor.wire import Machine

NS = "stress"
OPERATIONS = ("start", "call", "get", "notify", "timer")


class StressProcessor(Processor):
    """Every event is ``{"token": ..., "op": ...}``; ``fail`` calls raise (the machine fails).

    ``away`` makes every step answer 503 (a processor down for maintenance); ``delay`` slows
    calls down (seconds)."""

    def __init__(self) -> None:
        self.timeouts = 0
        self.refused_timeouts = 0
        # By namespace and id: one id in two namespaces is two machines.
        self.in_flight: dict[tuple[str, str], int] = defaultdict(int)
        self.overlaps = 0
        self.away = False
        self.delay = 0.0

    def _check_here(self) -> None:
        if self.away:
            raise Transient("away for maintenance")

    def _enter(self, machine: Machine) -> None:
        self.in_flight[machine.ns, machine.id] += 1
        if self.in_flight[machine.ns, machine.id] > 1:
            self.overlaps += 1

    def _leave(self, machine: Machine) -> None:
        self.in_flight[machine.ns, machine.id] -= 1

    def init(self, args: Any, machine: Machine) -> Result:
        self._check_here()
        return Result(events=[{"token": args["token"], "op": "start"}])

    async def call(self, args: Any, machine: Machine) -> Result:
        self._enter(machine)
        try:
            # A checkpoint (or a delay) inside the step: a second step of this machine running
            # meanwhile would be seen as an overlap.
            if self.delay:
                await trio.sleep(self.delay)
            else:
                await trio.lowlevel.checkpoint()
            self._check_here()
            if args.get("fail"):
                raise RuntimeError("made to fail")
            timer = SetTimer(timeout=args["timer"]) if args.get("timer") is not None else None
            event = {"token": args["token"], "op": "timer" if timer else "call"}
            return Result(response=args["token"], events=[event], timer=timer)
        finally:
            self._leave(machine)

    def timeout(self, machine: Machine) -> Result:
        if self.away:
            self.refused_timeouts += 1
        self._check_here()
        self.timeouts += 1
        return Result(events=[{"token": f"timeout-{uuid.uuid4().hex}", "op": "timeout"}])

    def notification(self, args: Any, machine: Machine) -> Result:
        self._check_here()
        return Result(events=[{"token": args["token"], "op": "notify"}])


@dataclass
class Ledger:
    """What the workers were told: tokens acknowledged, tokens refused (nothing applied) and
    tokens whose outcome is unknown; latencies per operation. Machine ids are unique across
    namespaces; ``homes`` says which namespace holds each."""

    acknowledged: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    machines: list[str] = field(default_factory=list)
    homes: dict[str, str] = field(default_factory=dict)
    made_to_fail: set[str] = field(default_factory=set)
    timers_set: int = 0
    done: int = 0

    def record(self, op: str, seconds: float) -> None:
        self.latencies[op].append(seconds)
        self.done += 1


@dataclass(frozen=True)
class Mix:
    weights: dict[str, float]

    @classmethod
    def parse(cls, text: str) -> Mix:
        weights = {}
        for part in text.split(","):
            name, _, weight = part.partition("=")
            if name not in (*OPERATIONS, "fail"):
                raise ValueError(f"unknown operation {name!r} in the mix")
            weights[name] = float(weight or 1)
        return cls(weights)

    def pick(self, rng: random.Random) -> str:
        names = list(self.weights)
        return rng.choices(names, weights=[self.weights[n] for n in names])[0]


async def run_workers(
    clients: list[AsyncClient],
    ledger: Ledger,
    mix: Mix,
    machines: int,
    concurrency: int,
    duration: float,
    seed: int,
    namespaces: Sequence[str] = (NS,),
) -> None:
    """``namespaces``: the machines are spread over them in turn (and new ones at random), so
    that every namespace (and the database holding it) takes its share of the load."""
    ledger.machines = [f"m-{seed}-{n}" for n in range(machines)]
    for n, machine_id in enumerate(ledger.machines):
        ledger.homes[machine_id] = namespaces[n % len(namespaces)]
    stop_at = trio.current_time() + duration
    started: set[str] = set()

    async def start(client: AsyncClient, machine_id: str) -> None:
        token = uuid.uuid4().hex
        ns = ledger.homes[machine_id]
        await _attempt(ledger, "start", token, client.start(ns, machine_id, {"token": token}))
        started.add(machine_id)

    # Every machine exists before the mix begins (starts in the mix create more).
    async with trio.open_nursery() as nursery:
        limiter = trio.CapacityLimiter(concurrency)

        async def bounded(client: AsyncClient, machine_id: str) -> None:
            async with limiter:
                await start(client, machine_id)

        for index, machine_id in enumerate(ledger.machines):
            nursery.start_soon(bounded, clients[index % len(clients)], machine_id)

    async def worker(worker_id: int) -> None:
        local = random.Random(seed * 1000 + worker_id)
        while trio.current_time() < stop_at:
            client = clients[local.randrange(len(clients))]
            op = mix.pick(local)
            machine_id = local.choice(ledger.machines)
            ns = ledger.homes[machine_id]
            token = uuid.uuid4().hex
            if op == "start":
                machine_id = f"m-{seed}-new-{uuid.uuid4().hex[:8]}"
                ns = local.choice(namespaces)
                ledger.homes[machine_id] = ns
                if await _attempt(
                    ledger, op, token, client.start(ns, machine_id, {"token": token})
                ):
                    ledger.machines.append(machine_id)
            elif op == "call":
                await _attempt(ledger, op, token, client.call(ns, machine_id, {"token": token}))
            elif op == "timer":
                delay = round(local.uniform(0.1, 1.0), 3)
                args = {"token": token, "timer": delay}
                if await _attempt(ledger, op, token, client.call(ns, machine_id, args)):
                    ledger.timers_set += 1
            elif op == "notify":
                await _attempt(ledger, op, token, client.notify(ns, machine_id, {"token": token}))
            elif op == "fail":
                ledger.made_to_fail.add(machine_id)
                await _attempt(
                    ledger, op, token, client.call(ns, machine_id, {"token": token, "fail": True})
                )
            else:
                began = time.perf_counter()
                try:
                    await client.get(ns, machine_id)
                    ledger.record(op, time.perf_counter() - began)
                except MgError as error:
                    ledger.errors[f"{op}:{error.code}"] += 1

    async with trio.open_nursery() as nursery:
        for worker_id in range(concurrency):
            nursery.start_soon(worker, worker_id)


async def _attempt(ledger: Ledger, op: str, token: str, request: Any) -> bool:
    """Run one request and file its token by what mg answered."""
    began = time.perf_counter()
    try:
        await request
    except DeadlineExceeded as error:
        ledger.unknown.add(token)
        ledger.errors[f"{op}:{error.code}"] += 1
        return False
    except (TransientError, Overloaded) as error:
        ledger.refused.add(token)
        ledger.errors[f"{op}:{error.code}"] += 1
        return False
    except MgError as error:
        # Logic errors (machine failed, ...) apply nothing either.
        ledger.refused.add(token)
        ledger.errors[f"{op}:{error.code}"] += 1
        return False
    ledger.record(op, time.perf_counter() - began)
    ledger.acknowledged.add(token)
    return True
