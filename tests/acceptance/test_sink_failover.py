"""The sequencer's node is killed (SIGKILL) while writes go on through the other node: the other
node's sequencer takes over and the sink goes on with no gap and no duplicate."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pytest
import trio

from mg.postgres.bridge.factory import make_bridge
from mg.postgres.sinks import PostgresSinks
from mg.service.sink_verify import verify_chain
from tests.support.processes import NodeProcess, write_config
from tests.support.processor import FakeProcessor
from tests.support.sql import Sql, sql

LEADER = (
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.classid = 1296520011 AND l.objsubid = 2 AND l.granted"
)
MACHINES = 12


async def leader_pid(db: Sql) -> int:
    """The mg process leading the sink, from its sequencer's application_name."""
    with trio.fail_after(30):
        while (name := await db.fetchval(LEADER)) is None:
            await trio.sleep(0.05)
    return int(name.split()[1])  # "mg <pid> sequencer <sink>"


@pytest.mark.timeout(240)
async def test_killing_the_sequencers_node_lets_the_other_continue_without_gap_or_duplicate(
    database_url: str, processor: FakeProcessor
) -> None:
    directory = Path(tempfile.mkdtemp(prefix="mg-failover-"))
    config = write_config(
        directory / "mg.toml",
        {
            "server": {"port": 0},
            "database": {"pool_size": 8},
            "logging": {"level": "info"},
            "sinks": {"main": {"batch_size": 20, "poll_interval": "200ms"}},
            "namespaces": {"test": {"processor": {"url": processor.url}, "sinks": ["main"]}},
        },
    )
    env = {"MG_DATABASE_URL": database_url}
    calls_after_kill = 0
    killed = trio.Event()
    async with sql(database_url) as db, trio.open_nursery() as nursery:
        nodes = [NodeProcess(config, env), NodeProcess(config, env)]
        for node in nodes:
            await node.start(nursery)
        pid = await leader_pid(db)
        leader = next(n for n in nodes if n.process is not None and n.process.pid == pid)
        survivor = next(n for n in nodes if n is not leader)
        clients = {n: httpx.AsyncClient(base_url=n.url, timeout=30, trust_env=False) for n in nodes}
        enough = trio.Event()

        async def write(machine: int) -> None:
            nonlocal calls_after_kill
            name = f"/v1/namespaces/test/machines/m{machine}"
            node = nodes[machine % 2]
            started = False
            n = 0
            while not enough.is_set():
                if killed.is_set():
                    node = survivor
                try:
                    if not started:
                        answer = await clients[node].post(name + "/start", json={"args": 0})
                        started = answer.status_code in (201, 409)
                    else:
                        n += 1
                        answer = await clients[node].post(name + "/call", json={"args": n})
                        if killed.is_set() and answer.status_code == 200:
                            calls_after_kill += 1
                except httpx.TransportError:
                    pass  # the killed node: the outcome is unknown, the database will tell
                if calls_after_kill >= 300:
                    enough.set()

        async with trio.open_nursery() as writers:
            for machine in range(MACHINES):
                writers.start_soon(write, machine)
            await trio.sleep(1.5)  # the leader has sequenced plenty by now
            leader.kill()
            await leader.wait()
            killed.set()
            before = await db.fetchval("SELECT count(*) FROM mg_sink_events")

        with trio.fail_after(60):  # the survivor took over and drained the outbox
            while await db.fetchval("SELECT count(*) FROM mg_sink_outbox"):
                await trio.sleep(0.1)
        assert await leader_pid(db) == survivor.process.pid  # type: ignore[union-attr]
        sink = await db.fetch(
            "SELECT id, machine_id, incarnation, event_id FROM mg_sink_events "
            "WHERE sink = 'main' ORDER BY id"
        )
        stored = await db.fetch(
            "SELECT e.machine_id, m.incarnation, e.event_id FROM mg_events e "
            "JOIN mg_machines m ON m.ns = e.ns AND m.id = e.machine_id"
        )
        for client in clients.values():
            await client.aclose()
        survivor.signal(15)
        await survivor.wait()

    assert 0 < before < len(sink) - 300  # sequenced by the leader, then by the survivor
    assert [r["id"] for r in sink] == list(range(1, len(sink) + 1))  # no gap
    keys = [(r["machine_id"], r["incarnation"], r["event_id"]) for r in sink]
    assert len(keys) == len(set(keys))  # no duplicate
    assert set(keys) == {(r["machine_id"], r["incarnation"], r["event_id"]) for r in stored}
    for machine in range(MACHINES):
        ids = [r["event_id"] for r in sink if r["machine_id"] == f"m{machine}"]
        assert ids == list(range(1, len(ids) + 1))
    assert any("is leading" in m for m in survivor.messages())
    bridge = make_bridge("thread", database_url, min_size=1, max_size=2)
    async with bridge:
        assert (await verify_chain(PostgresSinks(bridge), "main")).intact
