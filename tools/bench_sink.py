"""sink: sequencer throughput with many writers, and visibility lag end to end.

Three measurements, each on a sink of its own (a fresh name per run, so positions start at 1):

1. **concurrent**: ``--writers`` tasks commit outbox rows (``--events-per-tx`` per transaction,
   through the outbox INSERT of a step's write, ``sql/bench/insert_outbox.sql``) as fast as
   they can while the real ``Sequencer`` runs; events/s = events / (first write -> last
   event sequenced).
2. **drain**: a backlog of ``--drain-events`` outbox rows, then the sequencer alone.
3. **retention**: as 1., on two fresh sinks, once without and once with the sink's pruner
   running (``retention.max_events = --keep``, batch ``--prune-batch``): events/s sequenced
   with the pruner versus without, and the prune rate (events deleted per second, until the
   sink holds ``--keep`` again).
4. **lag**: ``--nodes`` real ``mg serve`` processes with a fake processor answering
   ``--events-per-step`` events per step; ``--clients`` HTTP clients call machines for
   ``--seconds`` (at most ``--rate`` steps/s in all, 0: as fast as they can), and a reader in a
   process of its own (so that the load generator's own CPU does not delay it) long-polls the
   sink over HTTP. The lag of an event is the time the reader received it minus its
   ``created_at`` (stamped just before its step's commit). The first ``--warmup`` seconds
   (machines started, pools filled, statements prepared) are left out of the figures.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgpack
import trio

from mg.core import values
from mg.core.facts import Fact, SinkPruned, SinkSequenced
from mg.core.sink import sequencer_topic
from mg.postgres.bridge.factory import make_bridge
from mg.postgres.migrations import migrate
from mg.postgres.pruner import Pruner
from mg.postgres.sequencer import Sequencer
from mg.postgres.sql_files import sql_dir
from mg.postgres.wakeups import Wakeups
from mg.settings import Retention, Sink
from tests.support.processes import NodeProcess, write_config
from tests.support.processor import Answer, FakeProcessor, Seen, serving

PAYLOAD = values.pack({"amount": 12345, "currency": "EUR", "memo": "x" * 64, "raw": b"\x00" * 16})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--writers", type=int, default=32, help="concurrent outbox writers")
    parser.add_argument("--events", type=int, default=200_000, help="events written (1.)")
    parser.add_argument("--events-per-tx", type=int, default=5, help="events per transaction")
    parser.add_argument("--batch-size", type=int, default=1000, help="sequencer batch size")
    parser.add_argument("--drain-events", type=int, default=200_000, help="backlog (2.)")
    parser.add_argument("--nodes", type=int, default=1, help="mg serve processes (3.)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients (3.)")
    parser.add_argument("--machines", type=int, default=200, help="machines called (3.)")
    parser.add_argument("--events-per-step", type=int, default=4, help="(3.)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the lag run (3.)")
    parser.add_argument("--rate", type=float, default=0, help="steps/s in all, 0: unpaced (3.)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds not measured (3.)")
    parser.add_argument("--no-sink", action="store_true", help="(3.) without a sink, to compare")
    parser.add_argument("--keep", type=int, default=10_000, help="retention max_events (3.)")
    parser.add_argument("--prune-batch", type=int, default=1000, help="retention batch (3.)")
    parser.add_argument(
        "--phases",
        default="sequencer,retention,lag",
        help="comma-separated: sequencer (1. and 2.), retention (3.), lag (4.)",
    )


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50_ms": at(0.50) * 1000,
        "p99_ms": at(0.99) * 1000,
        "max_ms": ordered[-1] * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
    }


class Batches:
    """What the sequencer reported, and when it reached a position."""

    def __init__(self, goal: int) -> None:
        self.facts: list[SinkSequenced] = []
        self.goal = goal
        self.reached = trio.Event()
        self.reached_at = 0.0

    def observe(self, fact: Fact) -> None:
        if isinstance(fact, SinkSequenced):
            self.facts.append(fact)
            if fact.position >= self.goal and not self.reached.is_set():
                self.reached_at = time.perf_counter()
                self.reached.set()

    def summary(self) -> dict[str, Any]:
        sizes = [f.count for f in self.facts]
        return {
            "batches": len(sizes),
            "mean_batch": statistics.fmean(sizes) if sizes else 0,
            "batch_lag": percentiles([f.lag_seconds for f in self.facts]),
        }


INSERT_OUTBOX = (sql_dir() / "bench" / "insert_outbox.sql").read_text()


async def write_outbox(bridge: Any, sink: str, name: str, count: int, wakeups: Wakeups) -> None:
    """``count`` events of one machine ``name``, in one transaction, as a step writes them."""
    now = datetime.now(UTC)

    async def work(conn: Any) -> None:
        await conn.execute(
            INSERT_OUTBOX,
            "bench",
            name,
            1,
            [sink],
            list(range(1, count + 1)),
            [now] * count,
            [1] * count,
            [PAYLOAD] * count,
        )

    await bridge.run(work)
    wakeups.poke(sequencer_topic(sink))


async def sequencer_phases(args: argparse.Namespace, url: str) -> dict[str, Any]:
    stamp = datetime.now().strftime("%H%M%S")
    results: dict[str, Any] = {}
    async with make_bridge("thread", url, min_size=2, max_size=args.writers + 2) as bridge:
        await migrate(bridge)
        wakeups = Wakeups(bridge)
        async with trio.open_nursery() as nursery:
            await nursery.start(wakeups.run)

            # 1. concurrent writers and sequencer
            sink = f"bench{stamp}c"
            per_tx = args.events_per_tx
            transactions = args.events // per_tx
            batches = Batches(transactions * per_tx)
            options = Sink(sink, batch_size=args.batch_size)
            sequencer = Sequencer(bridge, wakeups, options, observer=batches.observe)
            await nursery.start(sequencer.run)
            while not sequencer.leading:  # noqa: ASYNC110 - leadership has no event to wait on
                await trio.sleep(0.01)
            left = transactions

            async def writer(number: int) -> None:
                nonlocal left
                serial = 0
                while left > 0:
                    left -= 1
                    serial += 1
                    await write_outbox(bridge, sink, f"w{number}-{serial}", per_tx, wakeups)

            began = time.perf_counter()
            async with trio.open_nursery() as writers:
                for number in range(args.writers):
                    writers.start_soon(writer, number)
            written = time.perf_counter()
            await batches.reached.wait()
            total = transactions * per_tx
            results["concurrent"] = {
                "events": total,
                "writers": args.writers,
                "events_per_tx": per_tx,
                "batch_size": args.batch_size,
                "written_per_s": total / (written - began),
                "sequenced_per_s": total / (batches.reached_at - began),
                "behind_when_writers_finished_s": max(0.0, batches.reached_at - written),
                **batches.summary(),
            }

            # 2. a backlog drained by the sequencer alone
            sink = f"bench{stamp}d"
            chunk = 1000
            for start in range(0, args.drain_events, chunk):
                await write_outbox(bridge, sink, f"d{start}", chunk, wakeups)
            drained = Batches(args.drain_events // chunk * chunk)
            options = Sink(sink, batch_size=args.batch_size)
            began = time.perf_counter()
            await nursery.start(Sequencer(bridge, wakeups, options, observer=drained.observe).run)
            await drained.reached.wait()
            results["drain"] = {
                "events": drained.goal,
                "batch_size": args.batch_size,
                "sequenced_per_s": drained.goal / (drained.reached_at - began),
                **drained.summary(),
            }
            nursery.cancel_scope.cancel()
    return results


class Pruning:
    def __init__(self) -> None:
        self.pruned = 0
        self.first = 1
        self.at = 0.0

    def observe(self, fact: Fact) -> None:
        if isinstance(fact, SinkPruned):
            self.pruned += fact.count
            self.first = fact.first
            self.at = time.perf_counter()


async def retention_phase(args: argparse.Namespace, url: str) -> dict[str, Any]:
    stamp = datetime.now().strftime("%H%M%S")
    per_tx = args.events_per_tx
    transactions = args.events // per_tx
    total = transactions * per_tx
    results: dict[str, Any] = {}
    async with make_bridge("thread", url, min_size=2, max_size=args.writers + 4) as bridge:
        await migrate(bridge)
        wakeups = Wakeups(bridge)
        async with trio.open_nursery() as nursery:
            await nursery.start(wakeups.run)
            for label, prune in (("without_pruner", False), ("with_pruner", True)):
                sink = f"bench{stamp}{'p' if prune else 'n'}"
                batches = Batches(total)
                options = Sink(
                    sink,
                    batch_size=args.batch_size,
                    retention=Retention(
                        max_events=args.keep, batch_size=args.prune_batch, interval=0.05
                    ),
                )
                sequencer = Sequencer(bridge, wakeups, options, observer=batches.observe)
                await nursery.start(sequencer.run)
                pruning = Pruning()
                if prune:
                    await nursery.start(Pruner(bridge, options, observer=pruning.observe).run)
                while not sequencer.leading:  # noqa: ASYNC110 - no event to wait on
                    await trio.sleep(0.01)
                left = transactions

                async def writer(number: int, sink: str = sink) -> None:
                    nonlocal left
                    serial = 0
                    while left > 0:
                        left -= 1
                        serial += 1
                        await write_outbox(bridge, sink, f"w{number}-{serial}", per_tx, wakeups)

                began = time.perf_counter()
                async with trio.open_nursery() as writers:
                    for number in range(args.writers):
                        writers.start_soon(writer, number)
                await batches.reached.wait()
                figure: dict[str, Any] = {
                    "events": total,
                    "sequenced_per_s": total / (batches.reached_at - began),
                }
                if prune:
                    pruned_while_writing = pruning.pruned
                    with trio.fail_after(600):
                        while pruning.first < total - args.keep + 1:  # noqa: ASYNC110
                            await trio.sleep(0.05)
                    figure.update(
                        {
                            "keep": args.keep,
                            "prune_batch": args.prune_batch,
                            "pruned_while_writing": pruned_while_writing,
                            "pruned": pruning.pruned,
                            "pruned_per_s": pruning.pruned / (pruning.at - began),
                        }
                    )
                results[label] = figure
            nursery.cancel_scope.cancel()
    base = results["without_pruner"]["sequenced_per_s"]
    results["with_pruner"]["relative_to_without"] = results["with_pruner"]["sequenced_per_s"] / base
    return {"retention": results}


async def lag_phase(args: argparse.Namespace, url: str) -> dict[str, Any]:
    sink = f"bench{datetime.now().strftime('%H%M%S')}e"
    events = args.events_per_step

    async def answer(seen: Seen) -> Answer:
        return Answer(body={"events": [{"data": {"n": k, "pad": "y" * 64}} for k in range(events)]})

    steps = 0
    interval = args.clients / args.rate if args.rate else 0.0  # per client
    async with serving(FakeProcessor(answer)) as processor, trio.open_nursery() as nursery:
        config = write_config(
            Path(tempfile.mkdtemp(prefix="mg-bench-")) / "mg.toml",
            {
                "server": {"port": 0},
                "database": {"pool_size": 32},
                "limits": {"max_steps_in_flight": 32},
                "sinks": {sink: {}},
                "namespaces": {
                    "bench": {
                        "processor": {"url": processor.url},
                        "sinks": [] if args.no_sink else [sink],
                    }
                },
            },
        )
        nodes = [NodeProcess(config, {"MG_DATABASE_URL": url}) for _ in range(args.nodes)]
        for node in nodes:
            await node.start(nursery)
        clients = [httpx.AsyncClient(base_url=n.url, timeout=60, trust_env=False) for n in nodes]
        stop = trio.Event()

        async def caller(number: int) -> None:
            nonlocal steps
            client = clients[number % len(clients)]
            mine = [m for m in range(args.machines) if m % args.clients == number]
            for m in mine:
                await client.post(f"/v1/namespaces/bench/machines/m{m}/start", json={"args": 0})
            turn = 0
            due = trio.current_time()
            while not stop.is_set() and mine:
                m = mine[turn % len(mine)]
                turn += 1
                got = await client.post(f"/v1/namespaces/bench/machines/m{m}/call", json={})
                steps += got.status_code == 200
                due += interval
                await trio.sleep_until(due)

        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        stop_reading = context.Event()
        reader = context.Process(
            target=read_process, args=(nodes[-1].url, sink, stop_reading, results)
        )
        reader.start()
        async with trio.open_nursery() as callers:
            for number in range(args.clients):
                callers.start_soon(caller, number)
            await trio.sleep(args.warmup)
            steps_before, measured_from = steps, time.time()
            began = time.perf_counter()
            await trio.sleep(args.seconds)
            stop.set()
            elapsed = time.perf_counter() - began
            steps_measured = steps - steps_before
            measured_to = time.time()
        await trio.sleep(2)  # the reader catches up
        stop_reading.set()
        received = await trio.to_thread.run_sync(results.get)
        reader.join()
        lags = [lag for created, lag in received if measured_from <= created < measured_to]
        for client in clients:
            await client.aclose()
        for node in nodes:
            node.signal(15)
            await node.wait()
        nursery.cancel_scope.cancel()
    return {
        "lag": {
            "nodes": args.nodes,
            "clients": args.clients,
            "rate_asked": args.rate or "unpaced",
            "machines": args.machines,
            "events_per_step": events,
            "seconds": elapsed,
            "warmup_seconds": args.warmup,
            "steps_per_s": steps_measured / elapsed,
            "events_read": len(lags),
            "events_per_s": len(lags) / elapsed,
            "visibility_lag": percentiles(lags),
        }
    }


def read_process(url: str, sink: str, stop: Any, results: Any) -> None:
    """The reader, in a process of its own: long-polls and timestamps what arrives."""
    lags: list[tuple[float, float]] = []

    async def follow() -> None:
        after = 0
        async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
            while not stop.is_set():
                got = await client.get(
                    f"/v1/sinks/{sink}/events",
                    params={"after": after, "wait": 1},
                    headers={"accept": "application/msgpack"},
                )
                received = time.time()
                for event in msgpack.unpackb(got.content)["events"]:
                    created = datetime.fromisoformat(event["event"]["created_at"]).timestamp()
                    lags.append((created, received - created))
                    after = event["id"]

    trio.run(follow)
    results.put(lags)


def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    phases = set(args.phases.split(","))
    results: dict[str, Any] = {}
    if "sequencer" in phases:
        results.update(trio.run(sequencer_phases, args, url))
        c, d = results["concurrent"], results["drain"]
        print(
            f"1. concurrent: {c['events']} events by {c['writers']} writers, {c['events_per_tx']}"
            f"/tx, batch {c['batch_size']}: written {c['written_per_s']:,.0f}/s, sequenced "
            f"{c['sequenced_per_s']:,.0f}/s ({c['batches']} batches, mean {c['mean_batch']:.0f};"
            f" batch lag p50 {c['batch_lag']['p50_ms']:.1f} ms, "
            f"p99 {c['batch_lag']['p99_ms']:.1f} ms)"
        )
        print(
            f"2. drain: {d['events']} events, batch {d['batch_size']}: sequenced "
            f"{d['sequenced_per_s']:,.0f}/s ({d['batches']} batches)"
        )
    if "retention" in phases:
        results.update(trio.run(retention_phase, args, url))
        off, on = results["retention"]["without_pruner"], results["retention"]["with_pruner"]
        print(
            f"3. retention: {off['events']} events, keep {on['keep']}: sequenced "
            f"{off['sequenced_per_s']:,.0f}/s without the pruner, {on['sequenced_per_s']:,.0f}/s "
            f"with it ({on['relative_to_without']:.0%}); pruned {on['pruned']} at "
            f"{on['pruned_per_s']:,.0f}/s ({on['pruned_while_writing']} while writing)"
        )
    if "lag" in phases:
        results.update(trio.run(lag_phase, args, url))
        lag = results["lag"]
        vis = lag["visibility_lag"]
        print(
            f"4. lag: {lag['nodes']} node(s), {lag['clients']} clients, {lag['machines']} "
            f"machines, {lag['events_per_step']} events/step, {lag['seconds']:.0f} s: "
            f"{lag['steps_per_s']:,.0f} steps/s (asked: {lag['rate_asked']}), "
            f"{lag['events_per_s']:,.0f} events/s read; "
            f"commit -> readable p50 {vis.get('p50_ms', 0):.1f} ms, "
            f"p99 {vis.get('p99_ms', 0):.1f} ms, max {vis.get('max_ms', 0):.1f} ms"
        )
    return results
