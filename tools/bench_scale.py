"""scale: does a big database slow a step down, and does a node's memory stay bounded?

1. Two databases on the same server: ``--small`` machines and ``--large`` machines, each with
   ``--events`` events (loaded with SQL, ``sql/bench/load.sql``). Against each, an ``mg serve``
   process with the minimal processor; ``--clients`` closed-loop clients ``get`` (last 10
   events) and then ``call`` machines picked at random, so that nearly every request finds a
   machine the node has not cached: the database's indexes do the work.
2. The node on the large database then ``get``s ``--touch`` distinct machines, and its resident
   memory (``VmRSS``) is read before and after, with the state cache's own estimate.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack
import trio
from bench_load import closed_loop
from bench_pgbench import bench_queries
from bench_progress import Progress
from bench_servers_control import MgNode, free_port, server

from mg.embedded.server import install_dir, run_psql
from mg.postgres.bridge.factory import make_bridge
from mg.postgres.migrations import migrate
from tests.support.processes import write_config

NAMESPACE = "bench"
PREFIX = "m"
CHUNK = 100_000
LAST_10 = {"after": None, "limit": 10, "direction": "backward"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--small", type=int, default=10_000, help="machines, small database")
    parser.add_argument("--large", type=int, default=1_000_000, help="machines, large database")
    parser.add_argument("--events", type=int, default=10, help="events per machine")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured operation")
    parser.add_argument("--touch", type=int, default=100_000, help="machines read for RSS")
    parser.add_argument("--cache-bytes", type=int, default=64 * 1024 * 1024)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def load(url: str, machines: int, events: int, progress: Progress) -> None:
    queries = bench_queries()
    async with make_bridge("thread", url, min_size=1, max_size=2) as bridge:
        await migrate(bridge)
        for first in range(0, machines, CHUNK):
            count = min(CHUNK, machines - first)
            # Machines m<first+1>..m<first+count>: the load queries number from 1.
            prefix = f"{PREFIX}{first // CHUNK}-"

            async def chunk(conn: Any, prefix: str = prefix, count: int = count) -> None:
                await conn.execute(queries["load_machines"], NAMESPACE, prefix, count, events)
                await conn.execute(queries["load_events"], NAMESPACE, prefix, count, events)

            await bridge.run(chunk, timeout=3600)
            progress.note(f"loaded {first + count:,} of {machines:,} machines")

        async def analyze(conn: Any) -> None:
            await conn.execute(queries["analyze"])

        await bridge.run(analyze, timeout=3600)


def machine_id(machines: int, rng: random.Random) -> str:
    number = rng.randrange(machines)
    return f"{PREFIX}{number // CHUNK}-{number % CHUNK + 1}"


async def against(
    url: str,
    machines: int,
    args: argparse.Namespace,
    processor: str,
    progress: Progress,
    label: str,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="mg-bench-scale-"))
    port = free_port()
    config = write_config(
        workdir / "mg.toml",
        {
            "server": {"port": port},
            "logging": {"level": "warning"},
            "cache": {"max_bytes": args.cache_bytes},
            "namespaces": {NAMESPACE: {"processor": {"url": processor + "/processor"}}},
        },
    )
    node = MgNode(config, port, workdir / "mg.log", url)
    await node.start()
    assert node.process is not None
    at_start = rss_bytes(node.process.pid)
    rng = random.Random(7)
    base = f"/v1/namespaces/{NAMESPACE}/machines/"
    get_path = "?limit=10&direction=backward"
    results: dict[str, Any] = {"machines": machines}
    try:

        def get(worker: int, turn: int) -> tuple[str, str, bytes]:
            return "GET", base + machine_id(machines, rng) + get_path, b""

        def call(worker: int, turn: int) -> tuple[str, str, bytes]:
            body = msgpack.packb({"args": turn, "range": LAST_10})
            return "POST", base + machine_id(machines, rng) + "/call", body

        for name, make in (("get", get), ("call", call)):
            await closed_loop(node.url, args.clients, 2.0, make, expect=200)  # warm-up
            tally = await closed_loop(
                node.url,
                args.clients,
                args.seconds,
                make,
                expect=200,
                progress=progress.ticker(f"{label}: {name}"),
            )
            results[name] = tally.summary()
            progress.done(f"{label}: {name}", results[name])
        if machines >= args.touch:
            results["rss"] = await touch(node, args, progress)
            results["rss"]["rss_at_start_mb"] = at_start / 2**20
    finally:
        await node.stop()
    return results


async def touch(node: MgNode, args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    assert node.process is not None
    pid = node.process.pid
    before = rss_bytes(pid)
    base = f"/v1/namespaces/{NAMESPACE}/machines/"
    per_client = args.touch // 32

    def get(worker: int, turn: int) -> tuple[str, str, bytes]:
        number = worker * per_client + turn % per_client
        name = f"{PREFIX}{number // CHUNK}-{number % CHUNK + 1}"
        return "GET", base + name + "?limit=10&direction=backward", b""

    # Every client goes through its own share of machines once.
    tally = await closed_loop(
        node.url,
        32,
        3600,
        get,
        expect=200,
        progress=progress.ticker("touching"),
        stop_after=per_client,
    )
    after = rss_bytes(pid)
    found = {
        "touched": tally.summary()["requests"],
        "rss_before_touching_mb": before / 2**20,
        "rss_after_mb": after / 2**20,
        "cache_max_bytes": args.cache_bytes,
    }
    progress.note(
        f"RSS after touching {found['touched']:,} machines: {found['rss_after_mb']:.0f} MB "
        f"(before touching: {found['rss_before_touching_mb']:.0f} MB)"
    )
    return found


async def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    progress = Progress(4)
    processor_process, processor = await server("processor")
    results: dict[str, Any] = {"events_per_machine": args.events, "clients": args.clients}
    try:
        for label, machines in (("small", args.small), ("large", args.large)):
            queries = bench_queries()
            run_psql(install_dir() / "bin", url, queries[f"drop_scale_{label}"])
            run_psql(install_dir() / "bin", url, queries[f"create_scale_{label}"])
            target = url.rsplit("/", 1)[0] + f"/mg_scale_{label}"
            began = time.perf_counter()
            await load(target, machines, args.events, progress)
            loaded = time.perf_counter() - began
            results[label] = await against(target, machines, args, processor, progress, label)
            results[label]["load_seconds"] = loaded
    finally:
        await processor_process.stop()
    return results


def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    results: dict[str, Any] = trio.run(measure, args, url)
    small, large = results["small"], results["large"]
    print()
    for name in ("get", "call"):
        s, big = small[name], large[name]
        print(
            f"{name:5} p50 / p99 ms: {args.small:,} machines {s['p50_ms']:.1f} / {s['p99_ms']:.1f}"
            f"; {args.large:,} machines {big['p50_ms']:.1f} / {big['p99_ms']:.1f}"
            f" (p99 ratio {big['p99_ms'] / s['p99_ms']:.2f})"
        )
    if "rss" in large:
        rss = large["rss"]
        print(
            f"RSS after touching {rss['touched']:,} machines: {rss['rss_after_mb']:.0f} MB "
            f"(at start {rss['rss_at_start_mb']:.0f} MB; cache budget "
            f"{rss['cache_max_bytes'] / 2**20:.0f} MiB)"
        )
    return results
