"""Load mg and check that it kept its promises.

Against running nodes (``--url``, repeatable, plus ``--database-url`` for the checks) or a
cluster it starts itself (``--cluster K``: an embedded Postgres and K ``mg serve`` processes, of
``--workers W`` each; ``--databases D``: D embedded Postgres clusters, each holding a namespace
of its own and the sink it feeds), it starts N machines, then runs a mix of start / call / get /
notify / timer operations at a given concurrency for a given time, with a live progress line.
Then it waits for the cluster to go quiet (timers fired, notifications delivered, sinks caught
up) and checks the invariants on every database (tools/stress_support/invariants.py). It prints
per-operation latency percentiles and throughput, writes everything to JSON, and exits non-zero
on any violation. ``--kill-worker SECONDS`` kills a worker of a node with SIGKILL that often
during the load (its parent starts it again).

    python tools/stress.py --cluster 2 --machines 200 --concurrency 32 --duration 30
    python tools/stress.py --cluster 2 --workers 2 --databases 2 --kill-worker 15 --duration 60
    python tools/stress.py --url http://127.0.0.1:8022 --database-url postgresql://... \\
        --processor-port 9000         # the nodes' namespace "stress" must use this processor
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mg.client import AsyncClient
from mg.postgres.bridge.factory import make_bridge
from mg.postgres.bridge.interface import Bridge
from mg.postgres.migrations import migrate
from mg.processor import serve
from tests.support.processes import NodeProcess, write_config
from tools.stress_support import QUIET
from tools.stress_support.invariants import StressDatabase, check_databases
from tools.stress_support.workload import NS, Ledger, Mix, StressProcessor, run_workers

# The parent of a node of several workers logs each worker it starts (mg/workers/supervisor.py).
WORKER_STARTED = re.compile(r"^started worker (\d+) \(pid (\d+)\)$")


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


@dataclass(frozen=True)
class Placed:
    """One database of the run: its URL, the namespaces placed on it (``None``: not known, for
    nodes given) and the sinks they feed."""

    url: str
    namespaces: list[str] | None
    sinks: list[str]


@dataclass
class Cluster:
    """What the load runs against: the nodes' URLs, the databases, and the node processes when
    the tool started them (none for nodes given)."""

    urls: list[str]
    placed: list[Placed]
    nodes: list[NodeProcess] = field(default_factory=list)


def placements(databases: int) -> list[tuple[str, str]]:
    """The namespace and the sink of each database: the first holds ``stress`` and ``main``, as
    a run on one database always did; database k holds ``stress-k`` and ``main-k``. A sink is
    fed only by the namespaces of its own database (PROTOCOL.md section 8 refuses one across
    two)."""
    return [(NS, "main")] + [(f"{NS}-{k}", f"main-{k}") for k in range(2, databases + 1)]


def node_config(path: Path, args: argparse.Namespace, processor_url: str, urls: list[str]) -> Path:
    """The nodes' config: every namespace but the first names its database (the first is the
    default one, given to the nodes as MG_DATABASE_URL)."""
    namespaces: dict[str, Any] = {}
    for index, (ns, sink) in enumerate(placements(len(urls))):
        namespaces[ns] = {"processor": {"url": processor_url}, "sinks": [sink]}
        if index:
            namespaces[ns]["database"] = {"url": urls[index]}
    return write_config(
        path,
        {
            "server": {"port": 0, "workers": args.workers},
            # Per database: each has a pool of its own.
            "database": {"pool_size": 40},
            "limits": {"max_steps_in_flight": 32},
            "timers": {"lease": "5s"},
            "notifications": {"lease": "5s"},
            "sinks": {sink: {} for _, sink in placements(len(urls))},
            "namespaces": namespaces,
        },
    )


@asynccontextmanager
async def own_databases(args: argparse.Namespace, workdir: Path) -> AsyncIterator[list[str]]:
    """``args.databases`` Postgres clusters, migrated (the first may be ``--database-url``; the
    others are always embedded), stopped at the end."""
    from mg.embedded.server import EmbeddedPostgres

    servers = [
        EmbeddedPostgres(workdir / f"postgres-{k}", settings={"max_connections": "300"})
        for k in range(1, args.databases + 1)
    ]
    try:
        urls = [
            args.database_url if index == 0 and args.database_url else server.start()
            for index, server in enumerate(servers)
        ]
        for url in urls:
            bridge = make_bridge("thread", url, min_size=1, max_size=2, connect_timeout=10)
            await bridge.open()
            await migrate(bridge)
            await bridge.close()
        yield urls
    finally:
        for server in servers:
            server.stop()


@asynccontextmanager
async def own_cluster(args: argparse.Namespace, processor_url: str) -> AsyncIterator[Cluster]:
    """``args.databases`` embedded Postgres clusters and ``args.cluster`` node processes (of
    ``args.workers`` each) serving the namespaces of all of them."""
    workdir = Path(tempfile.mkdtemp(prefix="mg-stress-"))
    workdir.chmod(0o755)  # under root the servers run as nobody
    try:
        async with _cluster_in(workdir, args, processor_url) as cluster:
            yield cluster
    finally:
        # Each database's files are tens of megabytes: a run leaves nothing behind unless asked.
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


@asynccontextmanager
async def _cluster_in(
    workdir: Path, args: argparse.Namespace, processor_url: str
) -> AsyncIterator[Cluster]:
    async with own_databases(args, workdir) as database_urls:
        config = node_config(workdir / "mg.toml", args, processor_url, database_urls)
        placed = [
            # A database given with --database-url may hold other namespaces: no placement
            # check on it.
            Placed(url, None if index == 0 and args.database_url else [ns], [sink])
            for index, (url, (ns, sink)) in enumerate(
                zip(database_urls, placements(len(database_urls)), strict=True)
            )
        ]
        async with trio.open_nursery() as nursery:
            nodes = [
                NodeProcess(config, env={"MG_DATABASE_URL": database_urls[0]})
                for _ in range(args.cluster)
            ]
            urls = [await node.start(nursery) for node in nodes]
            try:
                yield Cluster(urls, placed, nodes)
            finally:
                for node in nodes:
                    node.signal(15)
                for node in nodes:
                    await node.wait()
                nursery.cancel_scope.cancel()


@asynccontextmanager
async def bridges(urls: list[str]) -> AsyncIterator[list[Bridge]]:
    """A small pool on each database, for the checks."""
    async with AsyncExitStack() as stack:
        opened = []
        for url in urls:
            bridge = make_bridge("thread", url, min_size=1, max_size=2, connect_timeout=10)
            await bridge.open()
            stack.push_async_callback(bridge.close)
            opened.append(bridge)
        yield opened


def worker_pids(node: NodeProcess) -> list[int]:
    """The current pid of each of the node's workers, from its parent's log."""
    pids: dict[int, int] = {}
    for message in node.messages():
        if found := WORKER_STARTED.match(message):
            pids[int(found[1])] = int(found[2])
    return list(pids.values())


async def kill_workers(
    nodes: list[NodeProcess], every: float, seed: int, killed: list[int]
) -> None:
    """Every ``every`` seconds, kill -9 one worker of one node: the requests it held are lost
    mid-way (their outcome unknown to the client), its steps' transactions roll back when its
    connections drop, and its parent starts it again while the other workers serve."""
    rng = random.Random(seed)
    while True:
        await trio.sleep(every)
        pids = worker_pids(rng.choice(nodes))
        if pids:
            pid = rng.choice(pids)
            # Already gone (restarting after the previous kill): nothing to count.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)


async def wait_quiet(bridges: list[Bridge], seconds: float) -> bool:
    """Every database quiet at once, within ``seconds`` in all."""
    with trio.move_on_after(seconds):
        while True:
            pending = 0
            for bridge in bridges:
                pending += await bridge.run(lambda conn: conn.fetchval(QUIET), timeout=30)
            if not pending:
                return True
            await trio.sleep(0.2)
    return False


async def run(args: argparse.Namespace) -> dict[str, Any]:
    processor = StressProcessor()
    ledger = Ledger()
    mix = Mix.parse(args.mix)
    killed: list[int] = []
    async with trio.open_nursery() as outer:
        base = await outer.start(serve, processor, "127.0.0.1", args.processor_port)
        processor_url = base + "/processor"
        cluster = own_cluster(args, processor_url) if args.cluster else _given(args)
        async with cluster as ran:
            clients = [AsyncClient(url, default_timeout=args.timeout) for url in ran.urls]
            namespaces = [ns for ns, _ in placements(len(ran.placed))]
            began = trio.current_time()
            async with trio.open_nursery() as nursery:
                if not args.quiet:
                    nursery.start_soon(progress, ledger, args.duration, began)
                if args.kill_worker:
                    nursery.start_soon(kill_workers, ran.nodes, args.kill_worker, args.seed, killed)
                await run_workers(
                    clients,
                    ledger,
                    mix,
                    args.machines,
                    args.concurrency,
                    args.duration,
                    args.seed,
                    namespaces,
                )
                nursery.cancel_scope.cancel()
            elapsed = trio.current_time() - began
            sys.stderr.write("\n")
            async with bridges([one.url for one in ran.placed]) as opened:
                quiet = await wait_quiet(opened, args.settle)
                report = await check_databases(
                    [
                        StressDatabase(bridge, one.sinks, one.namespaces, name=str(index + 1))
                        for index, (bridge, one) in enumerate(zip(opened, ran.placed, strict=True))
                    ],
                    ledger,
                )
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
            "nodes": len(ran.urls),
            "workers": args.workers if args.cluster else None,
            "databases": {
                str(index + 1): {"namespaces": one.namespaces, "sinks": one.sinks}
                for index, one in enumerate(ran.placed)
            },
            "kill_worker_every": args.kill_worker,
            "machines": args.machines,
            "concurrency": args.concurrency,
            "duration": args.duration,
            "mix": mix.weights,
            "seed": args.seed,
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
        "workers_killed": len(killed),
        "outcome_unknown": len(ledger.unknown),
        "timers_set": ledger.timers_set,
        "timeouts_handled": processor.timeouts,
        "checked": report.checked,
        "violations": report.violations,
        "ok": report.ok,
    }


@asynccontextmanager
async def _given(args: argparse.Namespace) -> AsyncIterator[Cluster]:
    if not args.url or not args.database_url:
        raise SystemExit("without --cluster, give --url (one or more) and --database-url")
    if args.databases != 1 or args.kill_worker:
        raise SystemExit("--databases and --kill-worker act on what the tool starts: --cluster")
    yield Cluster(args.url, [Placed(args.database_url, None, ["main"] if args.sink else [])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cluster", type=int, default=0, help="start this many nodes")
    parser.add_argument(
        "--workers", type=int, default=1, help="[server] workers of each node (--cluster)"
    )
    parser.add_argument(
        "--databases",
        type=int,
        default=1,
        help="embedded Postgres clusters, a namespace and a sink on each (--cluster)",
    )
    parser.add_argument(
        "--kill-worker",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="kill -9 a worker of a node every SECONDS of the load (--cluster, --workers 2+)",
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
    parser.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep the temporary directory of --cluster (databases, config) after the run",
    )
    args = parser.parse_args(argv)
    if args.databases < 1:
        parser.error("--databases must be 1 or more")
    if args.kill_worker and args.workers < 2:
        parser.error("--kill-worker needs nodes of --workers 2 or more (one worker is the node)")
    result = trio.run(run, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    columns = ("count", "per_second", "p50", "p90", "p99", "max")
    print(f"{'operation':<10}" + "".join(f"{name:>11}" for name in columns))
    for op, figures in result["operations"].items():
        print(f"{op:<10}" + "".join(f"{figures.get(name, '-'):>11}" for name in columns))
    print(f"total {result['total_per_second']}/s; errors {result['errors'] or 'none'}")
    if args.kill_worker:
        unknown = result["outcome_unknown"]
        print(f"workers killed: {result['workers_killed']}; outcomes unknown: {unknown}")
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
