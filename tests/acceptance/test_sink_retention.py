"""Sink retention (PROTOCOL section 7) through live nodes: pruning by count and by age under
write load, the sink's bounds and anchor, the chain verified from the anchor, 410 for reads of
a pruned span (long-polls included), and the pruner's fail-over when its node is killed."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from mg.embedded.server import EmbeddedPostgres, run_psql
from mg.node import Node
from mg.postgres.bridge.factory import make_bridge
from mg.postgres.sinks import PostgresSinks
from mg.postgres.sql_files import sql_dir
from mg.service.sink_verify import verify_chain
from tests.acceptance.test_sink import sink_events, sink_read
from tests.acceptance.test_sink_replication import subscriber  # noqa: F401  (a fixture)
from tests.acceptance.test_sink_verify import verify as run_verify
from tests.support.api import Api, body
from tests.support.cluster import NodeFactory, api_for
from tests.support.processes import NodeProcess, write_config
from tests.support.processor import FakeProcessor
from tests.support.sql import Sql, sql

PRUNER = (
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.classid = 1296520012 AND l.objsubid = 2 AND l.granted"
)


def retained(**retention: Any) -> dict[str, Any]:
    """Namespace settings: the sink ``main`` with this retention, pruning quickly."""
    options = {"batch_size": 50, "interval": "100ms", **retention}
    return {"sinks": ["main"], "sinks_config": {"main": {"retention": options}}}


async def bounds(api: Api, sink: str = "main") -> dict[str, Any]:
    answer = await api.http.get(f"/v1/sinks/{sink}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = body(answer)
    return found


async def write(api: Api, machines: int, calls: int) -> None:
    async def one(n: int) -> None:
        assert (await api.start(f"m{n}", n)).status_code == 201
        for call in range(calls):
            assert (await api.call(f"m{n}", call)).status_code == 200

    async with trio.open_nursery() as nursery:
        for n in range(machines):
            nursery.start_soon(one, n)


async def until(api: Api, check: Any, timeout: float = 30) -> dict[str, Any]:
    with trio.fail_after(timeout):
        while True:
            found = await bounds(api)
            if check(found):
                return found
            await trio.sleep(0.05)


async def verify(database_url: str, start: int | None = None) -> Any:
    bridge = make_bridge("thread", database_url, min_size=1, max_size=2, connect_timeout=10)
    await bridge.open()
    try:
        return await verify_chain(PostgresSinks(bridge), "main", start)
    finally:
        await bridge.close()


async def test_an_empty_sink_holds_nothing_from_one(nodes: NodeFactory) -> None:
    node: Node = await nodes(**retained(max_events=10))
    async with api_for(node) as api:
        assert await bounds(api) == {"sink": "main", "first": 1, "last": 0, "anchor": "0" * 64}
        assert (await api.http.get("/v1/sinks/nope")).status_code == 404


async def test_max_events_prunes_under_write_load_and_the_chain_verifies_from_the_anchor(
    nodes: NodeFactory, database_url: str
) -> None:
    node: Node = await nodes(**retained(max_events=30))
    async with api_for(node) as api:
        await write(api, machines=8, calls=24)  # 200 events
        span = await until(api, lambda b: b["last"] == 200 and b["first"] == 171)
        assert span["anchor"] != "0" * 64
        held = await sink_events(api, after=170)
        assert [e["id"] for e in held] == list(range(171, 201))
        # The anchor is the hash of position first - 1: what position 171 chains from.
        verdict = await verify(database_url)
        assert verdict.intact
        assert (verdict.start, verdict.checked) == (171, 30)
        assert (await verify(database_url, start=180)).intact
        # Reads of the pruned span are refused, not silently shortened.
        gone = await sink_read(api, after=5)
        assert gone.status_code == 410
        assert body(gone)["error"] == "sink_events_pruned"
        assert body(gone)["first"] == 171
        assert (await sink_read(api, after=169)).status_code == 410
        assert [e["id"] for e in await sink_events(api, after=170, limit=2)] == [171, 172]
        # Without after, a read starts at what is held; backward reads are clipped.
        assert [e["id"] for e in await sink_events(api, limit=1)] == [171]
        backward = await sink_events(api, after=173, direction="backward")
        assert [e["id"] for e in backward] == [172, 171]
        metrics = (await api.http.get("/metrics")).text
        assert 'mg_sink_pruned_events_total{sink="main"} 170.0' in metrics
        assert 'mg_sink_first_position{sink="main"} 171.0' in metrics
    async with sql(database_url) as db:
        view = await db.fetch("SELECT * FROM mg_sink_retention")
        assert [(r["sink"], r["first"], r["last"], r["held"]) for r in view] == [
            ("main", 171, 200, 30)
        ]
        assert view[0]["anchor"] == span["anchor"]


async def test_max_age_prunes_what_is_older_and_keeps_the_newest_event(
    nodes: NodeFactory, database_url: str
) -> None:
    node: Node = await nodes(**retained(max_age="1s"))
    async with api_for(node) as api:
        await write(api, machines=4, calls=4)  # 20 events
        await until(api, lambda b: b["last"] == 20)
        # Once they are older than a second, all but the newest go.
        span = await until(api, lambda b: b["first"] == 20, timeout=20)
        assert span["last"] == 20
        await api.call("m0", "late")
        span = await until(api, lambda b: b["last"] == 21)
        assert span["first"] <= 21
        assert (await verify(database_url)).intact


async def test_a_long_poll_behind_a_prune_gets_410(nodes: NodeFactory) -> None:
    """A reader that stopped at position 2 and long-polls from there while retention prunes
    past it is refused, never moved on silently."""
    node: Node = await nodes(**retained(max_events=3))
    async with api_for(node) as api:
        await write(api, machines=1, calls=1)
        await until(api, lambda b: b["last"] == 2)
        for call in range(6):
            await api.call("m0", f"more-{call}")
        await until(api, lambda b: b["first"] > 3)
        answer = await sink_read(api, after=2, wait=5)
        assert answer.status_code == 410
        assert body(answer)["first"] > 3


async def test_a_sink_without_retention_is_not_pruned(nodes: NodeFactory) -> None:
    node: Node = await nodes(sinks=["main"], sinks_config={"main": {}})
    assert node.pruners == ()
    async with api_for(node) as api:
        await write(api, machines=2, calls=2)
        span = await until(api, lambda b: b["last"] == 6)
        assert span["first"] == 1


async def pruner_pid(db: Sql, other_than: int = 0) -> int:
    """The mg process pruning the sink (from its pruner's application_name), once it is not
    ``other_than`` (a killed one's backend takes a moment to end)."""
    with trio.fail_after(30):
        while True:
            name = await db.fetchval(PRUNER)
            if name is not None and int(name.split()[1]) != other_than:  # "mg <pid> pruner main"
                return int(name.split()[1])
            await trio.sleep(0.05)


@pytest.mark.timeout(240)
async def test_killing_the_pruners_node_lets_the_other_prune(
    database_url: str, processor: FakeProcessor
) -> None:
    directory = Path(tempfile.mkdtemp(prefix="mg-pruner-"))
    retention = {"max_events": 20, "batch_size": 10, "interval": "100ms"}
    config = write_config(
        directory / "mg.toml",
        {
            "server": {"port": 0},
            "database": {"pool_size": 8},
            "logging": {"level": "info"},
            "sinks": {"main": {"retention": retention, "poll_interval": "200ms"}},
            "namespaces": {"test": {"processor": {"url": processor.url}, "sinks": ["main"]}},
        },
    )
    env = {"MG_DATABASE_URL": database_url}
    async with sql(database_url) as db, trio.open_nursery() as nursery:
        nodes = [NodeProcess(config, env), NodeProcess(config, env)]
        for node in nodes:
            await node.start(nursery)
        pid = await pruner_pid(db)
        pruning = next(n for n in nodes if n.process is not None and n.process.pid == pid)
        survivor = next(n for n in nodes if n is not pruning)
        async with httpx.AsyncClient(base_url=survivor.url, timeout=30, trust_env=False) as http:
            machine = "/v1/namespaces/test/machines/m"
            assert (await http.post(machine + "/start", json={"args": 0})).status_code == 201
            for n in range(60):
                assert (await http.post(machine + "/call", json={"args": n})).status_code == 200

            async def span() -> dict[str, Any]:
                found: dict[str, Any] = (await http.get("/v1/sinks/main")).json()
                return found

            with trio.fail_after(30):
                while (await span())["first"] != 42:
                    await trio.sleep(0.05)
            pruning.kill()
            await pruning.wait()
            # The survivor's pruner takes over: it now holds the lock and prunes new events.
            assert await pruner_pid(db, other_than=pid) == survivor.process.pid  # type: ignore[union-attr]
            for n in range(30):
                assert (await http.post(machine + "/call", json={"args": n})).status_code == 200
            with trio.fail_after(30):
                while ((found := await span())["first"], found["last"]) != (72, 91):
                    await trio.sleep(0.05)
        assert (await verify(database_url)).intact
        survivor.signal(15)
        await survivor.wait()
        nursery.cancel_scope.cancel()


@pytest.mark.timeout(180)
async def test_a_downstream_replica_keeps_what_retention_prunes(
    nodes: NodeFactory,
    database_url: str,
    subscriber: EmbeddedPostgres,  # noqa: F811  (the fixture imported above)
) -> None:
    node: Node = await nodes(**retained(max_events=5))
    replica_url = subscriber.url("mg")
    table = (sql_dir() / "replica" / "sink_table.sql").read_text()
    await trio.to_thread.run_sync(run_psql, subscriber.bin_dir, replica_url, table)
    subscribe = f"CREATE SUBSCRIPTION mg_sink_copy CONNECTION '{database_url}' PUBLICATION mg_sink"
    await trio.to_thread.run_sync(run_psql, subscriber.bin_dir, replica_url, subscribe)
    try:
        async with api_for(node) as api:
            await write(api, machines=5, calls=5)  # 30 events
            await until(api, lambda b: (b["first"], b["last"]) == (26, 30))
        async with sql(replica_url) as replica:
            with trio.fail_after(60):
                while await replica.fetchval("SELECT count(*) FROM mg_sink_events") < 30:
                    await trio.sleep(0.1)
            await trio.sleep(0.5)  # a published delete would have arrived by now
            assert await replica.fetchval("SELECT min(id) FROM mg_sink_events") == 1
        async with make_bridge("thread", replica_url, min_size=1, max_size=2) as bridge:
            verdict = await verify_chain(PostgresSinks(bridge), "main")
            assert (verdict.intact, verdict.start, verdict.checked) == (True, 1, 30)
    finally:
        drop = "DROP SUBSCRIPTION IF EXISTS mg_sink_copy"
        await trio.to_thread.run_sync(run_psql, subscriber.bin_dir, replica_url, drop)


async def test_mg_sink_verify_checks_a_pruned_sink_from_its_anchor(
    nodes: NodeFactory, database_url: str
) -> None:
    node: Node = await nodes(**retained(max_events=8))
    async with api_for(node) as api:
        await write(api, machines=3, calls=5)  # 18 events
        await until(api, lambda b: (b["first"], b["last"]) == (11, 18))
    code, out = await run_verify(database_url, "main")
    assert (code, out.strip()) == (0, "sink 'main': chain intact, 8 events, positions 11..18")
    code, out = await run_verify(database_url, "main", "--from", "14")
    assert (code, "positions 14..18" in out) == (0, True)
    code, out = await run_verify(database_url, "main", "--from", "3")
    assert code == 2
    assert "pruned" in out
