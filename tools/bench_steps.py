"""steps: mg start and call throughput and latency, next to the ceilings that bound them.

In one run, on one embedded Postgres, at each concurrency of ``--concurrency``:

- **mg start** and **mg call**: an ``mg serve`` process with the minimal processor
  (``tools/bench_servers.py processor``) in a process of its own; ``c`` closed-loop clients over
  keep-alive connections (``tools/bench_load.py``). Each client starts fresh machines, or calls
  its own 4 machines in turn with ``range = {limit 10, backward}``.
- **pgbench**: the SQL of one mg call step (``sql/bench/<script>.pgbench``) on 10,000 machines of
  10 events: what the database alone can do.
- **HTTP ceiling**: a bare quart-trio app on hypercorn, one small MessagePack body each way.
- **DBOS**: a DBOS Transact workflow with one step calling the same processor (``bench_dbos``).

Every point is measured ``--repeats`` times, interleaved (so a slow minute of this shared
machine hits all systems alike); the table gives medians and the spread (min-max). Then mg call
runs open loop at half of its best median rate: the latency a service at half load shows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import bench_cpu
import bench_pgbench
import msgpack
import trio
from bench_load import Tally, closed_loop, open_loop
from bench_progress import Progress
from bench_servers_control import ROOT, LineProcess, MgNode, free_port, server
from bench_table import print_table

from mg.postgres.bridge.factory import make_bridge
from mg.postgres.migrations import migrate
from tests.support.processes import write_config

MACHINES_PER_CLIENT = 4
CALL_RANGE = {"limit": 10, "direction": "backward"}
SYSTEMS = ("mg_call", "mg_start", "http_ceiling", "pgbench", "dbos")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", default="1,8,32,64", help="comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measured point")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured, per system")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset")
    parser.add_argument("--script", default="call_step", help="sql/bench/<script>.pgbench")
    parser.add_argument("--log-level", default="info", help="the mg node's logging.level")
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        help="extra mg settings, e.g. limits.max_steps_in_flight=32",
    )
    parser.add_argument("--profile", type=Path, help="py-spy the node during mg call at c=32")
    parser.add_argument("--no-half-load", action="store_true", help="skip the open-loop run")
    parser.add_argument(
        "--workers",
        default="1",
        help='each node\'s [server] workers (N or "auto"); CPU counts the workers too',
    )
    parser.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="mg serve processes on the database (clients alternate)",
    )


def _settings(args: argparse.Namespace, processor: str, port: int) -> dict[str, Any]:
    config: dict[str, Any] = {
        "server": {
            "port": port,
            "workers": int(args.workers) if args.workers.isdigit() else args.workers,
        },
        "logging": {"level": args.log_level},
        "namespaces": {"bench": {"processor": {"url": processor + "/processor"}}},
    }
    for item in args.config:
        key, _, value = item.partition("=")
        table, _, name = key.partition(".")
        config.setdefault(table, {})[name] = int(value) if value.isdigit() else value
    return config


def _pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value)
    return packed


class Runs:
    """The systems under test, started once, and one measurement of each."""

    def __init__(self, args: argparse.Namespace, progress: Progress) -> None:
        self.args = args
        self.progress = progress
        self.node_url = ""
        self.node_urls: list[str] = []
        self.node_pid = 0
        self.ceiling_url = ""
        self.database_url = ""
        self.dbos_process: LineProcess | None = None
        self.round = 0
        self.pids: dict[str, int] = {"load_generator": os.getpid()}

    async def mg_call(self, c: int, seconds: float, label: str) -> dict[str, Any]:
        def make(worker: int, turn: int) -> tuple[str, str, bytes]:
            machine = f"call-{worker}-{turn % MACHINES_PER_CLIENT}"
            body = _pack({"args": {"n": turn}, "range": CALL_RANGE})
            return "POST", f"/v1/namespaces/bench/machines/{machine}/call", body

        tally = await closed_loop(
            self.node_urls, c, seconds, make, expect=200, progress=self.progress.ticker(label)
        )
        return tally.summary()

    async def mg_start(self, c: int, seconds: float, label: str) -> dict[str, Any]:
        self.round += 1
        stamp = self.round

        def make(worker: int, turn: int) -> tuple[str, str, bytes]:
            machine = f"start-{stamp}-{worker}-{turn}"
            return "POST", f"/v1/namespaces/bench/machines/{machine}/start", _pack({"args": 1})

        tally = await closed_loop(
            self.node_urls, c, seconds, make, expect=201, progress=self.progress.ticker(label)
        )
        return tally.summary()

    async def http_ceiling(self, c: int, seconds: float, label: str) -> dict[str, Any]:
        def make(worker: int, turn: int) -> tuple[str, str, bytes]:
            return "POST", f"/echo/{worker}", _pack({"args": {"n": turn}})

        tally = await closed_loop(
            self.ceiling_url, c, seconds, make, expect=200, progress=self.progress.ticker(label)
        )
        return tally.summary()

    async def pgbench(self, c: int, seconds: float, label: str) -> dict[str, Any]:
        self.progress.note(label)
        return await trio.to_thread.run_sync(
            bench_pgbench.run, self.database_url, self.args.script, c, seconds, 10_000
        )

    async def dbos(self, c: int, seconds: float, label: str) -> dict[str, Any]:
        if self.dbos_process is None:
            return {"error": "not running"}
        self.progress.note(label)
        return await self.dbos_process.ask(f"{c} {seconds}")


async def _prepare(runs: Runs, url: str, systems: set[str], top: int) -> None:
    async with make_bridge("thread", url, min_size=1, max_size=2) as bridge:
        await migrate(bridge)
        if "pgbench" in systems:
            runs.progress.note("loading 10,000 machines x 10 events for pgbench")

            async def load(conn: Any) -> None:
                await bench_pgbench.load(conn, 10_000, 10)

            await bridge.run(load, timeout=600)
    if "mg_call" in systems:
        runs.progress.note(f"starting {top * MACHINES_PER_CLIENT} machines for the calls")

        def make(worker: int, turn: int) -> tuple[str, str, bytes]:
            machine = f"call-{worker}-{turn}"
            return "POST", f"/v1/namespaces/bench/machines/{machine}/start", _pack({"args": 0})

        for turn in range(MACHINES_PER_CLIENT):
            for worker in range(top):
                await _one(runs.node_url, *make(worker, turn))


async def _one(url: str, method: str, path: str, body: bytes) -> None:
    from bench_load import HttpConnection

    # With workers, /health/ready answered by one worker does not mean every worker is ready:
    # a 503 "starting" from another is retried for a while.
    for _ in range(300):
        conn = await HttpConnection.open(url)
        try:
            status, answer = await conn.request(method, path, body, b"application/msgpack")
        finally:
            await conn.aclose()
        if status == 503:
            await trio.sleep(0.1)
            continue
        if status not in (200, 201):
            raise RuntimeError(f"{path}: {status} {answer[:200]!r}")
        return
    raise RuntimeError(f"{path}: still 503 after 30 s")


async def _start_dbos(runs: Runs, url: str, processor: str) -> None:
    from bench_pgbench import bench_queries

    from mg.embedded.server import install_dir, run_psql

    run_psql(install_dir() / "bin", url, bench_queries()["drop_database"])
    run_psql(install_dir() / "bin", url, bench_queries()["create_database"])
    dsn = url.rsplit("/", 1)[0] + "/mg_bench_dbos"
    dbos = await LineProcess.start(
        [
            sys.executable,
            str(ROOT / "tools" / "bench_dbos.py"),
            "--dsn",
            dsn,
            "--processor",
            processor + "/processor",
        ],
        stdin=True,
    )
    first = await dbos.line(120)
    if "error" in first:
        runs.progress.note(first)
        await dbos.stop()
        return
    runs.dbos_process = dbos
    runs.pids["dbos"] = dbos.process.pid


async def _profile(runs: Runs, seconds: float) -> trio.Process | None:
    target = runs.args.profile
    if target is None:
        return None
    target.mkdir(parents=True, exist_ok=True)
    return await trio.lowlevel.open_process(
        [
            "py-spy",
            "record",
            "--pid",
            str(runs.node_pid),
            "--duration",
            str(int(seconds)),
            "--format",
            "raw",
            "--rate",
            "200",
            "--threads",
            # Only the thread holding the GIL: the node is one GIL's worth of work.
            "--gil",
            "--output",
            str(target / "mg-call-c32.txt"),
        ],
    )


async def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    systems = [s for s in SYSTEMS if s in set(args.systems.split(","))]
    total = len(concurrencies) * len(systems) * args.repeats
    progress = Progress(total)
    runs = Runs(args, progress)
    runs.database_url = url
    results: dict[str, dict[int, list[dict[str, Any]]]] = {
        s: {c: [] for c in concurrencies} for s in systems
    }
    workdir = Path(tempfile.mkdtemp(prefix="mg-bench-steps-"))
    processor_process, processor = await server("processor")
    ceiling_process, runs.ceiling_url = await server("ceiling")
    try:
        half = await _measure_all(
            runs,
            args,
            url,
            (processor, processor_process.process.pid),
            ceiling_process.process.pid,
            workdir,
            systems,
            results,
        )
    finally:
        with trio.CancelScope(shield=True):
            for process in (processor_process, ceiling_process, runs.dbos_process):
                if process is not None:
                    await process.stop()
    progress.finish()
    return {"concurrency": concurrencies, "points": _summarise(results), "half_load": half}


async def _measure_all(
    runs: Runs,
    args: argparse.Namespace,
    url: str,
    processor_at: tuple[str, int],
    ceiling_pid: int,
    workdir: Path,
    systems: list[str],
    results: dict[str, dict[int, list[dict[str, Any]]]],
) -> dict[str, Any] | None:
    concurrencies = list(next(iter(results.values())).keys())
    processor, processor_pid = processor_at
    progress = runs.progress
    nodes = []
    for number in range(args.nodes):
        port = free_port()
        config = write_config(workdir / f"mg{number}.toml", _settings(args, processor, port))
        nodes.append(MgNode(config, port, workdir / f"mg{number}.log", url))
    try:
        for number, node in enumerate(nodes):
            await node.start()
            assert node.process is not None
            runs.pids["mg" if number == 0 else f"mg_{number + 1}"] = node.process.pid
        runs.node_urls = [node.url for node in nodes]
        runs.node_url = nodes[0].url
        runs.node_pid = runs.pids["mg"]
        runs.pids["processor"] = processor_pid
        runs.pids["http_ceiling"] = ceiling_pid
        await _prepare(runs, url, set(systems), max(concurrencies))
        if "dbos" in systems:
            await _start_dbos(runs, url, processor)
        # Warm-up: pools filled, statements prepared, code paths hot, on every system.
        for system in systems:
            await getattr(runs, system)(max(concurrencies), args.warmup, f"warm-up {system}")
        for repeat in range(args.repeats):
            for c in concurrencies:
                for system in systems:
                    label = f"{system} c={c} (round {repeat + 1}/{args.repeats})"
                    results[system][c].append(await _point(runs, system, c, repeat, label))
                    progress.done(label, results[system][c][-1])
        half = None
        if "mg_call" in systems and not args.no_half_load:
            half = await _half_load(runs, results["mg_call"], args)
    finally:
        with trio.CancelScope(shield=True):
            for node in nodes:
                await node.stop()
    return half


async def _point(runs: Runs, system: str, c: int, repeat: int, label: str) -> dict[str, Any]:
    """One measurement, with the CPU it cost each process (and a profile, if asked)."""
    spy = None
    if system == "mg_call" and c == 32 and repeat == 0:
        spy = await _profile(runs, runs.args.seconds)
    before = bench_cpu.snapshot(runs.pids)
    found: dict[str, Any] = await getattr(runs, system)(c, runs.args.seconds, label)
    found["cpu_ms_per_request"] = bench_cpu.per_request(
        before, bench_cpu.snapshot(runs.pids), found.get("requests", 0)
    )
    if spy is not None:
        await spy.wait()
    return found


async def _half_load(
    runs: Runs, calls: dict[int, list[dict[str, Any]]], args: argparse.Namespace
) -> dict[str, Any]:
    peak = max(statistics.median(r["per_s"] for r in found) for found in calls.values())
    rate = peak / 2
    top = max(int(c) for c in args.concurrency.split(","))
    rounds: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        label = f"mg call open loop at {rate:,.0f}/s (round {repeat + 1}/{args.repeats})"

        def make(worker: int, turn: int) -> tuple[str, str, bytes]:
            # Only the machines of the top concurrency's clients exist (the open loop numbers
            # its connections up to 64): below 64 the others answered 404, and only the few
            # 200s were timed.
            machine = f"call-{worker % top}-{turn % MACHINES_PER_CLIENT}"
            body = _pack({"args": {"n": turn}, "range": CALL_RANGE})
            return "POST", f"/v1/namespaces/bench/machines/{machine}/call", body

        tally: Tally = await open_loop(
            runs.node_urls,
            rate,
            args.seconds,
            make,
            expect=200,
            progress=runs.progress.ticker(label),
        )
        rounds.append(tally.summary())
        runs.progress.note(
            f"{label}: p50 {rounds[-1]['p50_ms']:.1f} ms, p99 {rounds[-1]['p99_ms']:.1f} ms"
        )
    return {"peak_per_s": peak, "rate_per_s": rate, "rounds": rounds, **_spread(rounds)}


def _spread(found: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("per_s", "p50_ms", "p99_ms"):
        values = [r[key] for r in found if key in r]
        if values:
            out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return out


def _summarise(results: dict[str, dict[int, list[dict[str, Any]]]]) -> dict[str, Any]:
    return {
        system: {str(c): {"rounds": found, **_spread(found)} for c, found in by_c.items()}
        for system, by_c in results.items()
    }


def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    results: dict[str, Any] = trio.run(measure, args, url)
    print_table(results)
    return results
