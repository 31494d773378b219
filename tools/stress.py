"""Load mg and check that it kept its promises.

Against running nodes (``--url``, repeatable, plus ``--database-url`` for the checks) or a
cluster it starts itself (``--cluster K``: an embedded Postgres and K ``mg serve`` processes),
it starts N machines, then runs a mix of start / call / get / notify / timer operations at a
given concurrency for a given time, with a live progress line. Then it waits for the cluster to
go quiet (timers fired, notifications delivered, sinks caught up) and checks the invariants
(tools/stress_support/invariants.py). It prints per-operation latency percentiles and
throughput, writes everything to JSON, and exits non-zero on any violation.

    python tools/stress.py --cluster 2 --machines 200 --concurrency 32 --duration 30
    python tools/stress.py --url http://127.0.0.1:8022 --database-url postgresql://... \\
        --processor-port 9000         # the nodes' namespace "stress" must use this processor
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mg.client import AsyncClient
from mg.postgres.bridge.factory import make_bridge
from mg.postgres.migrations import migrate
from mg.processor import serve
from tests.support.processes import NodeProcess, write_config
from tools.stress_support import QUIET
from tools.stress_support.invariants import check
from tools.stress_support.workload import NS, Ledger, Mix, StressProcessor, run_workers


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 2)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1] * 1000, 2)}


async def progress(ledger: Ledger, duration: float, began: float) -> None:
    """A live line: a bar of elapsed time, operations done, rate and errors."""
    while True:
        elapsed = trio.current_time() - began
        share = min(elapsed / duration, 1.0) if duration else 1.0
        bar = "=" * int(share * 30)
        errors = sum(ledger.errors.values())
        rate = ledger.done / elapsed if elapsed > 0 else 0.0
        line = f"[{bar:<30}] {share * 100:5.1f}%  {ledger.done} ops  {rate:7.1f}/s"
        sys.stderr.write(f"\r{line}  errors {errors}  ")
        sys.stderr.flush()
        await trio.sleep(0.5)


@asynccontextmanager
async def own_cluster(
    args: argparse.Namespace, processor_url: str
) -> AsyncIterator[tuple[list[str], str]]:
    """An embedded Postgres and ``args.cluster`` node processes (of ``args.workers`` each)."""
    from mg.embedded.server import EmbeddedPostgres

    workdir = Path(tempfile.mkdtemp(prefix="mg-stress-"))
    workdir.chmod(0o755)
    server = EmbeddedPostgres(workdir / "postgres", settings={"max_connections": "300"})
    database_url = args.database_url or server.start()
    try:
        bridge = make_bridge("thread", database_url, min_size=1, max_size=2, connect_timeout=10)
        await bridge.open()
        await migrate(bridge)
        await bridge.close()
        config = write_config(
            workdir / "mg.toml",
            {
                "server": {"port": 0, "workers": args.workers},
                "database": {"pool_size": 40},
                "limits": {"max_steps_in_flight": 32},
                "timers": {"lease": "5s"},
                "notifications": {"lease": "5s"},
                "sinks": {"main": {}},
                "namespaces": {NS: {"processor": {"url": processor_url}, "sinks": ["main"]}},
            },
        )
        async with trio.open_nursery() as nursery:
            nodes = [
                NodeProcess(config, env={"MG_DATABASE_URL": database_url})
                for _ in range(args.cluster)
            ]
            urls = [await node.start(nursery) for node in nodes]
            try:
                yield urls, database_url
            finally:
                for node in nodes:
                    node.signal(15)
                for node in nodes:
                    await node.wait()
                nursery.cancel_scope.cancel()
    finally:
        server.stop()


async def wait_quiet(bridge: Any, seconds: float) -> bool:
    with trio.move_on_after(seconds):
        while await bridge.run(lambda conn: conn.fetchval(QUIET), timeout=30):  # noqa: ASYNC110
            await trio.sleep(0.2)
        return True
    return False


async def run(args: argparse.Namespace) -> dict[str, Any]:
    processor = StressProcessor()
    ledger = Ledger()
    mix = Mix.parse(args.mix)
    async with trio.open_nursery() as outer:
        base = await outer.start(serve, processor, "127.0.0.1", args.processor_port)
        processor_url = base + "/processor"
        cluster = own_cluster(args, processor_url) if args.cluster else _given(args)
        async with cluster as (urls, database_url):
            clients = [AsyncClient(url, default_timeout=args.timeout) for url in urls]
            began = trio.current_time()
            async with trio.open_nursery() as nursery:
                if not args.quiet:
                    nursery.start_soon(progress, ledger, args.duration, began)
                await run_workers(
                    clients, ledger, mix, args.machines, args.concurrency, args.duration, args.seed
                )
                nursery.cancel_scope.cancel()
            elapsed = trio.current_time() - began
            sys.stderr.write("\n")
            bridge = make_bridge("thread", database_url, min_size=1, max_size=2, connect_timeout=10)
            await bridge.open()
            try:
                quiet = await wait_quiet(bridge, args.settle)
                report = await check(bridge, ledger, ["main"] if args.cluster or args.sink else [])
            finally:
                await bridge.close()
            for client in clients:
                await client.aclose()
        outer.cancel_scope.cancel()
    if not quiet:
        report.fail(
            f"the cluster did not go quiet within {args.settle}s (timers, notifications, sinks)"
        )
    if processor.overlaps:
        report.fail(f"the processor saw {processor.overlaps} overlapping steps of one machine")
    return {
        "tool": "stress",
        "when": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "conditions": {
            "nodes": len(urls),
            "machines": args.machines,
            "concurrency": args.concurrency,
            "duration": args.duration,
            "mix": mix.weights,
        },
        "operations": {
            op: {
                "count": len(values),
                "per_second": round(len(values) / elapsed, 1),
                **percentiles(values),
            }
            for op, values in sorted(ledger.latencies.items())
        },
        "total_per_second": round(ledger.done / elapsed, 1),
        "errors": dict(ledger.errors),
        "timers_set": ledger.timers_set,
        "timeouts_handled": processor.timeouts,
        "checked": report.checked,
        "violations": report.violations,
        "ok": report.ok,
    }


@asynccontextmanager
async def _given(args: argparse.Namespace) -> AsyncIterator[tuple[list[str], str]]:
    if not args.url or not args.database_url:
        raise SystemExit("without --cluster, give --url (one or more) and --database-url")
    yield args.url, args.database_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cluster", type=int, default=0, help="start this many nodes")
    parser.add_argument(
        "--workers", type=int, default=1, help="[server] workers of each node (--cluster)"
    )
    parser.add_argument("--url", action="append", help="a running node (repeatable)")
    parser.add_argument("--database-url", help="the nodes' database, for the checks")
    parser.add_argument("--processor-port", type=int, default=0)
    parser.add_argument("--sink", action="store_true", help="check sink 'main' (given nodes)")
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of mixed load")
    parser.add_argument("--mix", default="call=5,get=3,notify=1,timer=1,start=0.2")
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline of each request")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds to go quiet after")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.add_argument("--out", type=Path, default=Path("bench-results/stress.json"))
    args = parser.parse_args(argv)
    result = trio.run(run, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    columns = ("count", "per_second", "p50", "p90", "p99", "max")
    print(f"{'operation':<10}" + "".join(f"{name:>11}" for name in columns))
    for op, figures in result["operations"].items():
        print(f"{op:<10}" + "".join(f"{figures.get(name, '-'):>11}" for name in columns))
    print(f"total {result['total_per_second']}/s; errors {result['errors'] or 'none'}")
    print(f"checked: {result['checked']}")
    if result["ok"]:
        print("invariants: all hold")
        return 0
    print("INVARIANTS VIOLATED:")
    for violation in result["violations"]:
        print(f"  - {violation}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
