"""mg keeps its promises when things break: Postgres restarted under load, a processor away,
a node SIGKILLed or SIGTERMed under load, one machine hammered through three nodes, a flood.
Each test ends with the stress invariants: nothing acknowledged lost or doubled, histories
contiguous, the sink complete, in order and chained, no machine failed unexpectedly."""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
from pathlib import Path

import pytest
import trio

from mg.client import AsyncClient
from mg.errors import MgError
from tests.support.chaos import (
    RestartablePostgres,
    node_config,
    own_postgres,
    settle_and_check,
    start_nodes,
    stress_processor,
)
from tests.support.processes import NodeProcess
from tools.stress_support.workload import NS, Ledger, Mix, run_workers

__all__ = ["own_postgres"]  # the fixture, imported for the tests below

MIX = Mix.parse("call=5,get=2,notify=1,timer=1,start=0.2")
# What a request may be answered while things break: nothing else is acceptable.
TOLERATED = {"unavailable", "deadline_exceeded", "overloaded", "connection_lost"}


def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="mg-chaos-node-"))
    path.chmod(0o755)
    return path


def unexpected_errors(ledger: Ledger) -> dict[str, int]:
    return {
        key: count for key, count in ledger.errors.items() if key.split(":", 1)[1] not in TOLERATED
    }


@pytest.mark.timeout(180)
async def test_postgres_restarted_under_load(own_postgres: RestartablePostgres) -> None:
    ledger = Ledger()
    async with trio.open_nursery() as nursery, stress_processor(nursery) as (_, url):
        [node] = await start_nodes(nursery, node_config(workdir(), url), own_postgres.url, 1)
        client = AsyncClient(node.url, default_timeout=5)
        outage = {"503": 0}

        async def break_postgres() -> None:
            await trio.sleep(2)
            await trio.to_thread.run_sync(own_postgres.stop)
            async with AsyncClient(node.url, default_timeout=2) as probe:
                for _ in range(5):
                    try:
                        await probe.get(NS, "m-1-0")
                    except MgError as error:
                        if error.code == "unavailable":
                            outage["503"] += 1
                    await trio.sleep(0.2)
                assert not await probe.ready()
            await trio.to_thread.run_sync(own_postgres.start)

        async with trio.open_nursery() as load:
            load.start_soon(break_postgres)
            await run_workers([client], ledger, MIX, 30, 8, 8.0, seed=1)
        # Back within seconds: a request succeeds and the node is ready again.
        with trio.fail_after(20):
            while not await client.ready():
                await trio.sleep(0.2)
        await client.get(NS, ledger.machines[0])
        assert node.process is not None
        assert node.process.returncode is None
        await client.aclose()
        report = await settle_and_check(own_postgres.url, ledger)
        node.signal(signal.SIGTERM)
        assert await node.wait() == 0
        nursery.cancel_scope.cancel()
    assert outage["503"] >= 1, "requests during the outage get 503"
    assert not unexpected_errors(ledger), ledger.errors
    assert ledger.errors, "the outage must have been felt"
    assert report.ok, report.violations


@pytest.mark.timeout(120)
async def test_a_processor_away_for_a_while_fails_no_machine(
    own_postgres: RestartablePostgres,
) -> None:
    ledger = Ledger()
    async with trio.open_nursery() as nursery, stress_processor(nursery) as (processor, url):
        [node] = await start_nodes(nursery, node_config(workdir(), url), own_postgres.url, 1)
        client = AsyncClient(node.url, default_timeout=5)

        async def away_for_a_while() -> None:
            await trio.sleep(1.5)
            processor.away = True
            await trio.sleep(3)
            processor.away = False

        async with trio.open_nursery() as load:
            load.start_soon(away_for_a_while)
            await run_workers(
                [client], ledger, Mix.parse("call=3,timer=2,notify=1"), 20, 6, 7.0, seed=2
            )
        await client.aclose()
        report = await settle_and_check(own_postgres.url, ledger)
        node.signal(signal.SIGTERM)
        await node.wait()
        nursery.cancel_scope.cancel()
    refused = ledger.errors.get("call:unavailable", 0) + ledger.errors.get("timer:unavailable", 0)
    assert refused > 0, ledger.errors
    assert processor.refused_timeouts > 0, "timers came due while the processor was away"
    assert not unexpected_errors(ledger), ledger.errors
    assert report.ok, report.violations


@pytest.mark.timeout(180)
async def test_sigkill_one_of_three_nodes_under_load(own_postgres: RestartablePostgres) -> None:
    ledger = Ledger()
    async with trio.open_nursery() as nursery, stress_processor(nursery) as (_, url):
        nodes = await start_nodes(nursery, node_config(workdir(), url), own_postgres.url, 3)
        clients = [AsyncClient(node.url, default_timeout=5) for node in nodes]

        async def kill_the_sequencer_node() -> None:
            await trio.sleep(2.5)
            leader = await _sequencer_pid(own_postgres.url)
            victim = next(node for node in nodes if node.process and node.process.pid == leader)
            victim.kill()
            await victim.wait()

        async with trio.open_nursery() as load:
            load.start_soon(kill_the_sequencer_node)
            await run_workers(clients, ledger, MIX, 40, 12, 8.0, seed=3)
        for client in clients:
            await client.aclose()
        report = await settle_and_check(own_postgres.url, ledger)
        for node in nodes:
            if node.process and node.process.returncode is None:
                node.signal(signal.SIGTERM)
                await node.wait()
        nursery.cancel_scope.cancel()
    assert not unexpected_errors(ledger), ledger.errors
    assert report.ok, report.violations


async def _sequencer_pid(database_url: str) -> int:
    from tests.support.sql import sql

    async with sql(database_url) as db:
        with trio.fail_after(10):
            while True:
                name = await db.fetchval(
                    "SELECT application_name FROM pg_stat_activity "
                    "WHERE application_name LIKE 'mg % sequencer main' AND wait_event_type "
                    "IS DISTINCT FROM 'Lock' LIMIT 1"
                )
                if name:
                    return int(name.split()[1])
                await trio.sleep(0.1)


@pytest.mark.timeout(120)
async def test_one_machine_hammered_through_three_nodes_never_overlaps(
    own_postgres: RestartablePostgres,
) -> None:
    async with trio.open_nursery() as nursery, stress_processor(nursery) as (processor, url):
        nodes = await start_nodes(nursery, node_config(workdir(), url), own_postgres.url, 3)
        clients = [AsyncClient(node.url, default_timeout=60) for node in nodes]
        await clients[0].start(NS, "hot", {"token": "start"})
        answered: list[object] = []

        async def call(n: int) -> None:
            answered.append(await clients[n % 3].call(NS, "hot", {"token": f"t{n}"}))

        async with trio.open_nursery() as hammer:
            for n in range(150):
                hammer.start_soon(call, n)
        machine = await clients[1].get(NS, "hot")
        for client in clients:
            await client.aclose()
        for node in nodes:
            node.signal(signal.SIGTERM)
        for node in nodes:
            await node.wait()
        nursery.cancel_scope.cancel()
    assert sorted(map(str, answered)) == sorted(f"t{n}" for n in range(150))
    assert [event.id for event in machine.history] == list(range(1, 152))
    assert processor.overlaps == 0


@pytest.mark.timeout(120)
async def test_a_flood_gets_429s_and_no_5xx_and_memory_stays_bounded(
    own_postgres: RestartablePostgres,
) -> None:
    async with trio.open_nursery() as nursery, stress_processor(nursery) as (processor, url):
        processor.delay = 0.2
        config = node_config(
            workdir(),
            url,
            limits={"max_steps_in_flight": 4, "max_waiting_steps": 8, "max_requests_in_flight": 64},
        )
        [node] = await start_nodes(nursery, config, own_postgres.url, 1)
        assert node.process is not None
        client = AsyncClient(node.url, default_timeout=30)
        for n in range(20):
            await client.start(NS, f"m{n}", {"token": f"s{n}"})
        before = _rss_kib(node.process.pid)
        codes: dict[str, int] = {}

        async def one(n: int) -> None:
            try:
                await client.call(NS, f"m{n % 20}", {"token": f"c{n}"})
                codes["ok"] = codes.get("ok", 0) + 1
            except MgError as error:
                codes[error.code] = codes.get(error.code, 0) + 1

        for _ in range(3):
            async with trio.open_nursery() as flood:
                for n in range(400):
                    flood.start_soon(one, n)
        after = _rss_kib(node.process.pid)
        # Nothing is stuck after the flood: the node answers at once.
        await client.get(NS, "m0", timeout=2)
        await client.aclose()
        node.signal(signal.SIGTERM)
        await node.wait()
        nursery.cancel_scope.cancel()
    assert codes.get("overloaded", 0) > 0, codes
    assert codes.get("ok", 0) > 0, codes
    assert set(codes) <= {"ok", "overloaded"}, codes
    assert after - before < 64 * 1024, f"RSS grew from {before} KiB to {after} KiB"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(120)
async def test_sigterm_under_load_loses_no_acknowledged_step(
    own_postgres: RestartablePostgres,
) -> None:
    ledger = Ledger()
    async with trio.open_nursery() as nursery, stress_processor(nursery) as (processor, url):
        processor.delay = 0.05
        config = node_config(workdir(), url)
        [first] = await start_nodes(nursery, config, own_postgres.url, 1)
        client = AsyncClient(first.url, default_timeout=5)

        async def terminate() -> None:
            await trio.sleep(2)
            first.signal(signal.SIGTERM)
            assert await first.wait() == 0

        async with trio.open_nursery() as load:
            load.start_soon(terminate)
            await run_workers([client], ledger, MIX, 20, 8, 4.0, seed=4)
        await client.aclose()
        # Another node finishes what was left queued (timers, notifications, the sink).
        [second] = await start_nodes(nursery, config, own_postgres.url, 1)
        report = await settle_and_check(own_postgres.url, ledger)
        second.signal(signal.SIGTERM)
        await second.wait()
        nursery.cancel_scope.cancel()
    assert "drain" in " ".join(first.messages())
    assert not unexpected_errors(ledger), ledger.errors
    assert report.ok, report.violations


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "layout",
    [
        ["--cluster", "2"],
        # Two Postgres clusters, a namespace and a sink on each, served by a node of two
        # workers, one of which is killed with SIGKILL every second.
        ["--cluster", "1", "--workers", "2", "--databases", "2", "--kill-worker", "1"],
    ],
    ids=["two nodes", "two workers over two databases, killed"],
)
async def test_a_short_stress_run_holds_every_invariant(layout: list[str]) -> None:
    tool = Path(__file__).resolve().parents[2] / "tools" / "stress.py"
    scratch = workdir()  # the tool's temporary directory goes here, and must be gone after
    result = await trio.run_process(
        [
            sys.executable,
            str(tool),
            *layout,
            "--machines",
            "30",
            "--concurrency",
            "8",
            "--duration",
            "3",
            "--quiet",
            "--out",
            str(workdir() / "stress.json"),
        ],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    output = result.stdout.decode()
    assert result.returncode == 0, output + result.stderr.decode()[-3000:]
    assert "invariants: all hold" in output
    assert not [path for path in scratch.iterdir() if path.name.startswith("mg-stress-")]
    if "--databases" in layout:
        # Each database was checked, its sink included: the load reached both.
        assert "'machines in database 2'" in output
        assert "'sink main-2'" in output
        assert re.search(r"workers killed: [1-9]", output), output


@pytest.mark.timeout(120)
async def test_a_node_started_before_postgres_becomes_ready_when_it_answers(
    own_postgres: RestartablePostgres,
) -> None:
    await trio.to_thread.run_sync(own_postgres.stop)
    async with trio.open_nursery() as nursery, stress_processor(nursery) as (_, url):
        config = node_config(workdir(), url)
        [node] = await start_nodes_serving(nursery, config, own_postgres.url)
        # Readiness takes up to its 2 s bound while Postgres is away (the pool may be waiting on
        # a connection attempt): the client waits longer than that bound, so that the test
        # asserts the answer, not a race with the bound (test_embedded_node checks the bound).
        async with AsyncClient(node.url, default_timeout=5) as client:
            assert await client.live()
            assert not await client.ready()
            with pytest.raises(MgError) as refused:
                await client.start(NS, "early", {"token": "early"})
            assert refused.value.code == "unavailable"
            await trio.sleep(1.5)  # the node keeps waiting, with back-off
            assert node.process is not None
            assert node.process.returncode is None
            await trio.to_thread.run_sync(own_postgres.start)
            with trio.fail_after(30):
                while not await client.ready():
                    await trio.sleep(0.2)
            await client.start(NS, "late", {"token": "late"})
            assert (await client.get(NS, "late")).status.value == "sleeping"
        node.signal(signal.SIGTERM)
        assert await node.wait() == 0
        nursery.cancel_scope.cancel()
    assert any("waiting for Postgres" in message for message in node.messages())


async def start_nodes_serving(
    nursery: trio.Nursery, config: Path, database_url: str
) -> list[NodeProcess]:
    node = NodeProcess(config, env={"MG_DATABASE_URL": database_url})
    await node.start(nursery, ready=False)
    return [node]
