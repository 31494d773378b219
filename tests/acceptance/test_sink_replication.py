"""Logical replication of the sink: a second Postgres cluster subscribes to the publication and
ends up with the same rows and hashes, and its copy verifies on its own."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from mg.embedded.server import EmbeddedPostgres, run_psql
from mg.node import Node
from mg.postgres.bridge.factory import make_bridge
from mg.postgres.sinks import PostgresSinks
from mg.postgres.sql_files import sql_dir
from mg.service.sink_verify import verify_chain
from tests.acceptance.test_sink import wait_for
from tests.support.cluster import NodeFactory, api_for
from tests.support.sql import Sql, sql

ROWS = (
    "SELECT sink, id, ns, machine_id, incarnation, event_id, created_at, format_version, data, "
    "hash, sequenced_at FROM mg_sink_events ORDER BY sink, id"
)
SINKS = {"sinks": ["main", "audit"], "sinks_config": {"main": {}, "audit": {}}}


@pytest.fixture
def subscriber() -> Iterator[EmbeddedPostgres]:
    """A second cluster; under root it runs as nobody, so its directory must be reachable."""
    base = Path(tempfile.mkdtemp(prefix="mg-subscriber-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "data", settings={"fsync": "off"})
    try:
        with server:
            yield server
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def count(db: Sql) -> int:
    found: int = await db.fetchval("SELECT count(*) FROM mg_sink_events")
    return found


@pytest.mark.timeout(180)
async def test_a_downstream_cluster_subscribes_and_gets_the_same_rows_and_hashes(
    nodes: NodeFactory, database_url: str, subscriber: EmbeddedPostgres
) -> None:
    node: Node = await nodes(**SINKS)
    replica_url = subscriber.url("mg")
    table = (sql_dir() / "replica" / "sink_table.sql").read_text()
    await trio.to_thread.run_sync(run_psql, subscriber.bin_dir, replica_url, table)
    async with api_for(node) as api:
        # Some rows exist before the subscription (the initial copy), the rest come after.
        await api.start("early", b"\x00\x01")
        await wait_for(api, 1)
        subscribe = (
            f"CREATE SUBSCRIPTION mg_sink_copy CONNECTION '{database_url}' PUBLICATION mg_sink"
        )
        await trio.to_thread.run_sync(run_psql, subscriber.bin_dir, replica_url, subscribe)
        try:
            for machine in range(5):
                await api.start(f"m{machine}", {"machine": machine})
                for n in range(4):
                    await api.call(f"m{machine}", {"n": n, "raw": bytes([machine, n])})
            await api.remove("m0")
            total = 1 + 5 * 5
            await wait_for(api, total, "main")
            await wait_for(api, total, "audit")
            async with sql(database_url) as publisher, sql(replica_url) as replica:
                with trio.fail_after(60):
                    while await count(replica) < await count(publisher):
                        await trio.sleep(0.1)
                published = [tuple(r) for r in await publisher.fetch(ROWS)]
                copied = [tuple(r) for r in await replica.fetch(ROWS)]
            assert len(published) == 2 * total
            assert copied == published
            async with make_bridge("thread", replica_url, min_size=1, max_size=2) as bridge:
                for name in ("main", "audit"):
                    verdict = await verify_chain(PostgresSinks(bridge), name)
                    assert verdict.intact
                    assert verdict.checked == total
        finally:
            # Drops the replication slot in the test's database too, so that it can be dropped.
            drop = "DROP SUBSCRIPTION IF EXISTS mg_sink_copy"
            await trio.to_thread.run_sync(run_psql, subscriber.bin_dir, replica_url, drop)
