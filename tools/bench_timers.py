"""timers: fire lag of N timers due over a window, on top of P pending far-future timers.

Loads the machines directly with SQL (``sql/bench/load.sql``), serves a minimal processor in
this process, starts K ``mg serve`` nodes as separate processes, and measures for every timer
the lag between its due time and the moment the processor received its ``timeout`` signal.

    python tools/bench.py timers                    # 10,000 timers at 1,000/s, 100,000 pending
    python tools/bench.py timers --timers 2000 --rate 500 --pending 0 --nodes 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import bench_cpu
import msgpack
import trio
from bench_pgbench import bench_queries
from bench_servers_control import ENV
from hypercorn.config import Config
from hypercorn.trio import serve

from mg.postgres.bridge.factory import make_bridge
from mg.postgres.migrations import migrate
from tests.support.processes import NodeProcess, write_config


class Recorder:
    """The processor: answers every timeout with nothing to do, and notes when it came."""

    def __init__(self) -> None:
        self.received: dict[str, float] = {}
        self.done = trio.Event()
        self.expected = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        arrived = time.time()
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        request = msgpack.unpackb(b"".join(chunks), raw=False)
        machine_id = request["machine"]["id"]
        self.received.setdefault(machine_id, arrived)
        if len(self.received) >= self.expected:
            self.done.set()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/msgpack")],
            }
        )
        await send({"type": "http.response.body", "body": msgpack.packb({})})


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="mg-bench-timers-"))
    load_timers = bench_queries()["load_timers"]
    bridge = make_bridge("thread", url, min_size=1, max_size=2, connect_timeout=10)
    await bridge.open()
    await migrate(bridge)
    start_at = datetime.now(UTC) + timedelta(seconds=args.lead)
    step_us = int(1_000_000 / args.rate)

    async def load(conn: Any) -> None:
        if args.pending:
            far = datetime.now(UTC) + timedelta(days=1)
            await conn.execute(load_timers, "bench", "pending-", far, args.pending, 1000)
        await conn.execute(load_timers, "bench", "t-", start_at, args.timers, step_us)
        await conn.execute(bench_queries()["analyze"])

    await bridge.run(load, timeout=600)
    await bridge.close()

    recorder = Recorder()
    recorder.expected = args.timers
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, recorder, config))
        node_config = write_config(
            workdir / "mg.toml",
            {
                "server": {"port": 0, "workers": args.workers},
                "database": {"pool_size": args.pool},
                "limits": {"max_steps_in_flight": args.pool - 4},
                "timers": {"concurrency": args.concurrency, "batch": args.batch},
                "logging": {"level": "info"},
                "namespaces": {"bench": {"processor": {"url": binds[0] + "/processor"}}},
            },
        )
        env = {"MG_DATABASE_URL": url, "PYTHONPATH": ENV["PYTHONPATH"]}
        nodes = [NodeProcess(node_config, env=env) for _ in range(args.nodes)]
        for node in nodes:
            await node.start(nursery)
        pids = {
            f"mg_{number}": node.process.pid
            for number, node in enumerate(nodes)
            if node.process is not None
        }
        # Idle with the pending timers stored: what the nodes spend before any is due.
        idle_from = time.time() + 2.0
        idle_until = start_at.timestamp() - 0.5
        await trio.sleep(max(0.0, idle_from - time.time()))
        idle_before = bench_cpu.snapshot(pids)
        await trio.sleep(max(0.0, idle_until - time.time()))
        idle_after = bench_cpu.snapshot(pids)
        idle_seconds = time.time() - idle_from
        busy_before = idle_after
        window = args.timers / args.rate
        with trio.move_on_after(max(0.0, start_at.timestamp() - time.time()) + window + args.grace):
            await recorder.done.wait()
        busy_after = bench_cpu.snapshot(pids)
        for node in nodes:
            node.signal(15)
        for node in nodes:
            await node.wait()
        nursery.cancel_scope.cancel()

    due = {
        f"t-{i}": start_at.timestamp() + (i - 1) * step_us / 1e6 for i in range(1, args.timers + 1)
    }
    lags = [(recorder.received[k] - due[k]) * 1000 for k in due if k in recorder.received]
    fired = [recorder.received[k] for k in due if k in recorder.received]
    early = sum(1 for lag in lags if lag < 0)
    # The first second pays the node's cold start (its pool opens connections and prepares
    # statements on demand, processor connections are opened): the rest is the steady state.
    steady = [
        (recorder.received[k] - due[k]) * 1000
        for k in due
        if k in recorder.received and due[k] >= start_at.timestamp() + 1.0
    ]
    span = (max(fired) - min(fired)) if len(fired) > 1 else 0.0
    idle_cpu = sum(idle_after[name] - idle_before[name] for name in pids)
    busy_cpu = sum(busy_after[name] - busy_before[name] for name in pids)
    return {
        "tool": "bench_timers",
        "when": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "conditions": {
            "timers": args.timers,
            "rate_per_second": args.rate,
            "pending": args.pending,
            "nodes": args.nodes,
            "timer_concurrency": args.concurrency,
            "batch": args.batch,
            "pool_size": args.pool,
            "postgres": "embedded 18.6, fsync on",
            "processor": "in the bench process, msgpack, answers {}",
        },
        "fired": len(lags),
        "missing": args.timers - len(lags),
        "early": early,
        "lag_ms": {
            "p50": round(percentile(lags, 0.50), 2) if lags else None,
            "p99": round(percentile(lags, 0.99), 2) if lags else None,
            "max": round(max(lags), 2) if lags else None,
            "mean": round(statistics.fmean(lags), 2) if lags else None,
        },
        "steady_lag_ms": {
            "p50": round(percentile(steady, 0.50), 2) if steady else None,
            "p99": round(percentile(steady, 0.99), 2) if steady else None,
            "max": round(max(steady), 2) if steady else None,
        },
        "fired_per_second": round(len(fired) / span, 1) if span else None,
        # Share of one core the nodes used while idle with the pending timers, and the node
        # CPU per fired timer (firing window and grace, every node and worker).
        "idle_cpu_percent": round(100 * idle_cpu / idle_seconds, 2) if idle_seconds > 0 else None,
        "idle_seconds": round(idle_seconds, 1),
        "node_cpu_ms_per_timer": round(1000 * busy_cpu / len(lags), 3) if lags else None,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timers", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="timers due per second")
    parser.add_argument(
        "--pending", type=int, default=100_000, help="far-future timers also stored"
    )
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="[server] workers of each node")
    parser.add_argument("--concurrency", type=int, default=32, help="timers.concurrency per node")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--pool", type=int, default=48)
    parser.add_argument(
        "--lead",
        type=float,
        default=15.0,
        help="seconds before the first is due (the nodes' idle CPU is measured meanwhile)",
    )
    parser.add_argument("--grace", type=float, default=30.0)


def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    result: dict[str, Any] = trio.run(measure, args, url)
    lag = result["lag_ms"]
    steady = result["steady_lag_ms"]
    print(
        f"timers {result['fired']}/{args.timers} fired (early: {result['early']}), "
        f"{args.pending} pending, {args.nodes} node(s), due at {args.rate:g}/s\n"
        f"fire lag ms: p50 {lag['p50']}  p99 {lag['p99']}  max {lag['max']}\n"
        f"  after the first second: p50 {steady['p50']}  p99 {steady['p99']}  "
        f"max {steady['max']}\n"
        f"fired per second: {result['fired_per_second']}\n"
        f"node CPU: {result['node_cpu_ms_per_timer']} ms per timer; idle with {args.pending} "
        f"pending: {result['idle_cpu_percent']} % of a core over {result['idle_seconds']} s"
    )
    return result
