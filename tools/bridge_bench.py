"""Transactions per second through each Postgres bridge, at several concurrencies.

One transaction has the shape of an mg step (DESIGN.md): advisory transaction lock, SELECT ...
FOR UPDATE of the machine row, INSERT of an event, UPDATE of the machine, INSERT of an outbox row.
Every client runs the same transactions; "asyncio" is asyncpg on a plain asyncio loop with no
bridge, as the ceiling the bridges are measured against. "full" is asyncpg's reset query on every
release, "cheap" skips it (the bridges' default). Rounds interleave the clients so that
drift on a shared machine spreads over all of them; the table shows the median round.

    python tools/bridge_bench.py --dsn postgresql://mg@127.0.0.1:5432/mg
    python tools/bridge_bench.py            # starts the embedded Postgres in a temporary dir
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import asyncpg
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mg.postgres.bridge.factory import make_bridge

MACHINES = 1000
SETUP = """
DROP TABLE IF EXISTS bench_outbox, bench_events, bench_machines;
CREATE TABLE bench_machines (id int PRIMARY KEY, version int NOT NULL, state bytea NOT NULL);
CREATE TABLE bench_events (machine_id int NOT NULL, event_id bigint NOT NULL, body bytea NOT NULL,
                           PRIMARY KEY (machine_id, event_id));
CREATE TABLE bench_outbox (id bigserial PRIMARY KEY, machine_id int NOT NULL,
                           event_id bigint NOT NULL);
INSERT INTO bench_machines SELECT i, 0, '\\x00' FROM generate_series(1, 1000) AS i;
"""
LOCK = "SELECT pg_advisory_xact_lock(7001, $1)"
READ = "SELECT version, state FROM bench_machines WHERE id = $1 FOR UPDATE"
EVENT = "INSERT INTO bench_events (machine_id, event_id, body) VALUES ($1, $2, $3)"
UPDATE = "UPDATE bench_machines SET version = $2, state = $3 WHERE id = $1"
OUTBOX = "INSERT INTO bench_outbox (machine_id, event_id) VALUES ($1, $2)"
BODY = os.urandom(200)


async def step(conn: asyncpg.Connection) -> None:
    machine = random.randint(1, MACHINES)
    async with conn.transaction():
        await conn.execute(LOCK, machine)
        row = await conn.fetchrow(READ, machine)
        assert row is not None
        version = row["version"] + 1
        await conn.execute(EVENT, machine, version, BODY)
        await conn.execute(UPDATE, machine, version, BODY)
        await conn.execute(OUTBOX, machine, version)


async def _drive_trio(run: Callable[[], Awaitable[None]], count: int, concurrency: int) -> float:
    left = count

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await run()

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    return time.perf_counter() - started


async def bench_bridge(kind: str, reset: str, dsn: str, count: int, concurrency: int) -> float:
    bridge = make_bridge(
        kind, dsn, min_size=concurrency, max_size=concurrency, connect_timeout=10, reset=reset
    )
    await bridge.open()
    try:
        await _drive_trio(lambda: bridge.run(step), max(50, count // 10), concurrency)  # warm-up
        return count / await _drive_trio(lambda: bridge.run(step), count, concurrency)
    finally:
        await bridge.close()


async def _no_reset(conn: asyncpg.Connection) -> None:
    """What the bridges' "cheap" reset does on top of asyncpg's rollback of an open transaction."""


async def bench_asyncio(reset: str, dsn: str, count: int, concurrency: int) -> float:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=concurrency,
        max_size=concurrency,
        reset=_no_reset if reset == "cheap" else None,
    )

    async def once() -> None:
        async with pool.acquire() as conn:
            await step(cast(asyncpg.Connection, conn))

    async def drive(n: int) -> float:
        left = n

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await once()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started

    try:
        await drive(max(50, count // 10))
        return count / await drive(count)
    finally:
        await pool.close()


def measure_here(client: str, dsn: str, count: int, concurrency: int) -> float:
    kind, _, reset = client.partition("/")
    if kind == "asyncio":
        return asyncio.run(bench_asyncio(reset, dsn, count, concurrency))
    return trio.run(bench_bridge, kind, reset, dsn, count, concurrency)


def measure(client: str, dsn: str, count: int, concurrency: int) -> float:
    """One measurement in a fresh interpreter: ``import trio_asyncio`` patches asyncio for the
    rest of a process, which would tax every client measured after it."""
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--dsn",
            dsn,
            "--transactions",
            str(count),
            "--measure",
            f"{client}@{concurrency}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(done.stdout.strip())


def server_facts(dsn: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(SETUP)
            return {
                "server_version": await conn.fetchval("SHOW server_version"),
                "fsync": await conn.fetchval("SHOW fsync"),
                "synchronous_commit": await conn.fetchval("SHOW synchronous_commit"),
            }
        finally:
            await conn.close()

    return asyncio.run(read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", help="database to use (default: start the embedded Postgres)")
    parser.add_argument("--out", default="bench-results/bridge.json")
    parser.add_argument("--transactions", type=int, default=3000, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument(
        "--clients",
        default="asyncio/full,asyncio/cheap,thread/cheap,thread/full,trio-asyncio/cheap,"
        "trio-asyncio/full",
        help="KIND/RESET pairs; kind 'asyncio' is asyncpg with no bridge, reset 'cheap' or 'full'",
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # CLIENT@CONCURRENCY, internal
    args = parser.parse_args()
    if args.measure:
        client, _, level = args.measure.partition("@")
        print(measure_here(client, args.dsn, args.transactions, int(level)))
        return 0
    clients = args.clients.split(",")
    levels = [int(c) for c in args.concurrency.split(",")]

    with tempfile.TemporaryDirectory(prefix="mg-bench-") as tmp:
        server = None
        dsn = args.dsn
        if dsn is None:
            from mg.embedded.server import EmbeddedPostgres

            server = EmbeddedPostgres(Path(tmp) / "data", max_connections=200)
            dsn = server.start()
        try:
            facts = server_facts(dsn)
            rounds: dict[tuple[str, int], list[float]] = {}
            for r in range(args.rounds):
                for level in levels:
                    for client in clients:
                        tps = measure(client, dsn, args.transactions, level)
                        rounds.setdefault((client, level), []).append(tps)
                        print(
                            f"round {r + 1} {client:20} c={level:<3} {tps:8.0f} tx/s",
                            file=sys.stderr,
                        )
        finally:
            if server is not None:
                server.stop()

    results = [
        {
            "client": client,
            "concurrency": level,
            "tx_per_s": round(statistics.median(v)),
            "rounds": [round(x) for x in v],
        }
        for (client, level), v in rounds.items()
    ]
    print(f"\n{'client':22}" + "".join(f"{'c=' + str(c):>9}" for c in levels))
    for client in clients:
        cells = [statistics.median(rounds[(client, c)]) for c in levels]
        print(f"{client:22}" + "".join(f"{x:9.0f}" for x in cells))
    report = {
        "shape": "advisory xact lock, select for update, insert event, update machine, "
        "insert outbox (one transaction)",
        "conditions": {
            **facts,
            "embedded": args.dsn is None,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "asyncpg": asyncpg.__version__,
            "transactions_per_measurement": args.transactions,
            "rounds": args.rounds,
            "pool_size": "equal to the concurrency",
        },
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
