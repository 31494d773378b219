"""Pieces for the chaos tests: a Postgres of their own that can be stopped and started again on
the same port, nodes as real processes serving the stress workload, and the stress checks."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from mg.embedded.server import EmbeddedPostgres
from mg.postgres.bridge.factory import make_bridge
from mg.processor import serve
from tests.support.processes import NodeProcess, write_config
from tools.stress_support import QUIET
from tools.stress_support.invariants import Report, check
from tools.stress_support.workload import NS, Ledger, StressProcessor


class RestartablePostgres:
    def __init__(self, base: Path) -> None:
        self.server = EmbeddedPostgres(base / "data", settings={"max_connections": "300"})
        self.url = self.server.start()
        # From now on the same port: nodes keep their database URL across restarts.
        self.server.requested_port = self.server.port

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()


@pytest.fixture
def own_postgres() -> Iterator[RestartablePostgres]:
    base = Path(tempfile.mkdtemp(prefix="mg-chaos-"))
    base.chmod(0o755)  # under root the server runs as nobody
    server = RestartablePostgres(base)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def node_config(directory: Path, processor_url: str, **tables: Any) -> Path:
    config: dict[str, Any] = {
        "server": {"port": 0, "graceful_timeout": "10s"},
        "database": {"pool_size": 24},
        "timers": {"lease": "2s"},
        "notifications": {"lease": "2s"},
        "sinks": {"main": {}},
        "namespaces": {
            NS: {
                "processor": {"url": processor_url},
                "sinks": ["main"],
                "retries": {
                    "timers": {"type": "linear", "timeout": "200ms", "max_retries": "infinity"},
                    "notifications": {
                        "type": "linear",
                        "timeout": "200ms",
                        "max_retries": "infinity",
                    },
                },
            }
        },
    }
    config.update(tables)
    return write_config(directory / "mg.toml", config)


@asynccontextmanager
async def stress_processor(nursery: trio.Nursery) -> AsyncIterator[tuple[StressProcessor, str]]:
    processor = StressProcessor()
    base = await nursery.start(serve, processor, "127.0.0.1", 0)
    yield processor, base + "/processor"


async def start_nodes(
    nursery: trio.Nursery, config: Path, database_url: str, count: int
) -> list[NodeProcess]:
    nodes = [NodeProcess(config, env={"MG_DATABASE_URL": database_url}) for _ in range(count)]
    for node in nodes:
        await node.start(nursery)
    return nodes


async def settle_and_check(database_url: str, ledger: Ledger, seconds: float = 60) -> Report:
    """Wait until timers, notifications and the sink are done, then check the invariants."""
    bridge = make_bridge("thread", database_url, min_size=0, max_size=2, connect_timeout=10)
    await bridge.open()
    try:
        quiet = False
        with trio.move_on_after(seconds):
            while await bridge.run(lambda conn: conn.fetchval(QUIET), timeout=30):
                await trio.sleep(0.2)
            quiet = True
        report = await check(bridge, ledger, ["main"])
        if not quiet:
            report.fail(f"not quiet after {seconds}s (timers, notifications or sink pending)")
        return report
    finally:
        await bridge.close()
