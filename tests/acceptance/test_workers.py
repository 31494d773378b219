"""``mg serve --workers 2``: two processes on one port, supervised by a parent (real processes:
they are killed and signalled)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.support.api import Api
from tests.support.metrics import Scrape
from tests.support.processes import NodeProcess, write_config
from tests.support.processor import FakeProcessor

STARTED = re.compile(r"^started worker (\d+) \(pid (\d+)\)$")


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    # Under root, Postgres runs as nobody: the data dir must be reachable for it.
    path = Path(tempfile.mkdtemp(prefix="mg-workers-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def config(directory: Path, processor: FakeProcessor, **database: Any) -> Path:
    return write_config(
        directory / "mg.toml",
        {
            "server": {"port": 0, "workers": 2, "graceful_timeout": "5s"},
            "database": database,
            "namespaces": {"test": {"processor": {"url": processor.url}}},
        },
    )


def worker_pids(node: NodeProcess) -> dict[int, int]:
    """The latest pid of each worker, from the parent's log."""
    pids: dict[int, int] = {}
    for message in node.messages():
        if found := STARTED.match(message):
            pids[int(found[1])] = int(found[2])
    return pids


async def every_worker_ready(node: NodeProcess, starts: int = 2) -> None:
    """``/health/ready`` says one worker is ready; a request may land on another still starting
    (503 then, as from a node starting): wait until ``starts`` worker starts were ready."""
    with trio.fail_after(60):
        while sum(m == "the node is ready" for m in node.messages()) < starts:
            await trio.sleep(0.05)


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


async def call_on_fresh_connections(url: str, machine: str, args: list[str]) -> list[str]:
    """Each call on a connection of its own (so that the kernel hands them to either worker);
    the args of the calls acknowledged."""
    acknowledged = []
    for arg in args:
        async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as http:
            api = Api(url)
            api.http = http
            try:
                response = await api.call(machine, arg)
            except httpx.TransportError:
                continue
            if response.status_code == 200:
                acknowledged.append(arg)
    return acknowledged


async def test_two_workers_both_serve_and_one_machine_stays_exclusive(
    reachable_dir: Path, database_url: str, processor: FakeProcessor
) -> None:
    node = NodeProcess(config(reachable_dir, processor), env={"MG_DATABASE_URL": database_url})
    async with trio.open_nursery() as nursery:
        url = await node.start(nursery)
        await every_worker_ready(node)
        api = Api(url)
        assert (await api.start("m", "s")).status_code == 201
        acknowledged: list[str] = []

        async def client(n: int) -> None:
            args = [f"c{n}-{i}" for i in range(6)]
            acknowledged.extend(await call_on_fresh_connections(url, "m", args))

        async with trio.open_nursery() as clients:
            for n in range(12):
                clients.start_soon(client, n)
        assert len(acknowledged) == 72  # nothing refused: the queue per machine holds them
        history = (await api.get("m")).json()["history"]
        assert [e["id"] for e in history] == list(range(1, 74))
        assert sorted(e["data"] for e in history[1:]) == sorted(acknowledged)
        assert processor.overlaps == 0
        # Any worker answers /metrics for both, each series labelled with its worker.
        scrape = Scrape((await api.http.get("/metrics")).text)
        for worker in ("0", "1"):
            assert scrape.total("mg_http_requests_total", method="POST", worker=worker) > 0
        assert {line.get("worker") for line in node.lines} >= {0, 1, "parent"}
        await api.aclose()
        node.signal(signal.SIGTERM)
        assert await node.wait() == 0
    assert not any(alive(pid) for pid in worker_pids(node).values())


@pytest.mark.timeout(180)
async def test_a_killed_worker_is_restarted_and_sigterm_stops_all_and_the_embedded_postgres(
    reachable_dir: Path, processor: FakeProcessor
) -> None:
    data_dir = reachable_dir / "postgres"
    node = NodeProcess(
        config(reachable_dir, processor, embedded={"data_dir": str(data_dir)}),
        env={"MG_DATABASE_URL": ""},
    )
    async with trio.open_nursery() as nursery:
        url = await node.start(nursery)
        await every_worker_ready(node)
        api = Api(url)
        machines = [f"m{n}" for n in range(6)]
        for machine in machines:
            assert (await api.start(machine, "s")).status_code == 201
        acknowledged: dict[str, list[str]] = {machine: [] for machine in machines}
        load_done = trio.Event()

        async def load(machine: str) -> None:
            i = 0
            while not load_done.is_set():
                acknowledged[machine] += await call_on_fresh_connections(url, machine, [str(i)])
                i += 1

        async with trio.open_nursery() as clients:
            for machine in machines:
                clients.start_soon(load, machine)
            await trio.sleep(1.0)
            before = worker_pids(node)
            os.kill(before[0], signal.SIGKILL)
            with trio.fail_after(30):
                while worker_pids(node).get(0) == before[0]:
                    await trio.sleep(0.05)
            await every_worker_ready(node, 3)
            await trio.sleep(1.0)
            load_done.set()
        after = worker_pids(node)
        assert after[1] == before[1]
        assert alive(after[0])
        assert any("exited with code -9; starting it again" in m for m in node.messages())
        for machine in machines:
            history = [e["data"] for e in (await api.get(machine)).json()["history"]]
            kept = [arg for arg in history[1:] if arg in acknowledged[machine]]
            assert kept == acknowledged[machine], machine  # every acknowledged step, in order
        assert sum(len(done) for done in acknowledged.values()) > 20
        assert processor.overlaps == 0
        await api.aclose()
        postmaster = (data_dir / "postmaster.pid").read_text().split("\n")[0]
        node.signal(signal.SIGTERM)
        assert await node.wait() == 0
    assert not any(alive(pid) for pid in after.values())
    assert not Path(f"/proc/{postmaster}").exists()
    assert any(m == "every worker has exited" for m in node.messages())


async def test_workers_stop_when_their_parent_is_killed(
    reachable_dir: Path, database_url: str, processor: FakeProcessor
) -> None:
    node = NodeProcess(config(reachable_dir, processor), env={"MG_DATABASE_URL": database_url})
    async with trio.open_nursery() as nursery:
        await node.start(nursery)
        pids = worker_pids(node)
        node.kill()
        await node.wait()
        with trio.fail_after(20):
            while any(alive(pid) for pid in pids.values()):
                await trio.sleep(0.1)
    assert any("the parent process is gone" in m for m in node.messages())


async def test_workers_that_cannot_run_stop_the_parent_with_their_code(
    reachable_dir: Path, postgres_server: Any, processor: FakeProcessor
) -> None:
    node = NodeProcess(
        config(reachable_dir, processor),
        env={"MG_DATABASE_URL": postgres_server.url("no_such_database")},
    )
    async with trio.open_nursery() as nursery:
        await node.start(nursery, ready=False)
        assert await node.wait() == 5  # Postgres refuses the node: no restart can help
    assert any("cannot run (exit code 5" in m for m in node.messages())
    assert not any("starting it again" in m for m in node.messages())
