"""The database's own limit for ``tools/bench.py steps``: ``pgbench`` (shipped with the embedded
binaries) running a script of exactly the SQL one mg call step sends (``sql/bench/*.pgbench``),
one round trip per statement (``-M prepared``, as asyncpg does), on machines with 10 events.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from mg.embedded.server import install_dir, split_password
from mg.postgres.sql_files import parse_queries, sql_dir

NAMESPACE = "pgbench"
PREFIX = "pgb-"


def bench_queries() -> dict[str, str]:
    path = sql_dir() / "bench" / "load.sql"
    return parse_queries(path.read_text(encoding="utf-8"), path.name)


def script(name: str) -> Path:
    return sql_dir() / "bench" / f"{name}.pgbench"


async def load(conn: Any, machines: int, events: int) -> None:
    """``machines`` machines of ``events`` events each for pgbench's script (asyncio side)."""
    queries = bench_queries()
    await conn.execute("DELETE FROM mg_events WHERE ns = $1", NAMESPACE)
    await conn.execute("DELETE FROM mg_machines WHERE ns = $1", NAMESPACE)
    await conn.execute(queries["load_machines"], NAMESPACE, PREFIX, machines, events)
    await conn.execute(queries["load_events"], NAMESPACE, PREFIX, machines, events)
    await conn.execute(queries["analyze"])


def run(
    url: str, script_name: str, concurrency: int, seconds: float, machines: int
) -> dict[str, Any]:
    """One pgbench run; transactions/s and latency percentiles from its per-transaction log."""
    with tempfile.TemporaryDirectory(prefix="mg-pgbench-") as logs:
        prefix = Path(logs) / "tx"
        # The password through the environment: a command line is readable by every user.
        url, password = split_password(url)
        env = {**os.environ, **({"PGPASSWORD": password} if password else {})}
        command = [
            str(install_dir() / "bin" / "pgbench"),
            "--no-vacuum",
            "--protocol=prepared",
            f"--client={concurrency}",
            f"--jobs={min(concurrency, 2)}",
            f"--time={max(1, round(seconds))}",
            f"--file={script(script_name)}",
            f"--define=machines={machines}",
            "--log",
            f"--log-prefix={prefix}",
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed: {done.stderr.strip()[-2000:]}")
        found = re.search(r"^tps = ([0-9.]+)", done.stdout, re.MULTILINE)
        failed = re.search(r"^number of failed transactions: (\d+)", done.stdout, re.MULTILINE)
        latencies: list[float] = []
        for path in Path(logs).glob("tx*"):
            for line in path.read_text().splitlines():
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():
                    latencies.append(int(fields[2]) / 1e6)
    latencies.sort()

    def at(q: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {
        "per_s": float(found.group(1)) if found else 0.0,
        "requests": len(latencies),
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "errors": {"failed": int(failed.group(1))} if failed and failed.group(1) != "0" else {},
    }
