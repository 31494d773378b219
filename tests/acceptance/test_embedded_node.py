"""``mg serve`` on its own embedded Postgres, as a process, when that Postgres misbehaves or mg is
stopped at a bad moment: the postmaster killed (restarted, the node ready again), frozen
(readiness answers 503 within its bound, without the database's address), ``mg sink verify``
beside the running node, and SIGTERM during start-up (no postgres left behind)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from mg.embedded.server import EmbeddedPostgres
from tests.support.processes import NodeProcess, write_config
from tests.support.processor import FakeProcessor

EMBEDDED_ONLY = {**os.environ, "MG_DATABASE_URL": ""}


@pytest.fixture(scope="module")
def shared() -> Iterator[Path]:
    """A directory whose cluster is made once (initdb) for the module's nodes."""
    path = Path(tempfile.mkdtemp(prefix="mg-embedded-node-"))
    path.chmod(0o755)  # under root, Postgres runs as nobody
    with EmbeddedPostgres(path / "postgres"):
        pass
    yield path
    shutil.rmtree(path, ignore_errors=True)


def config(directory: Path, processor_url: str = "http://127.0.0.1:9/", name: str = "mg") -> Path:
    return write_config(
        directory / f"{name}.toml",
        {
            "server": {"port": 0},
            "database": {"embedded": {"data_dir": str(directory / "postgres")}},
            "sinks": {"main": {}},
            "namespaces": {"orders": {"processor": {"url": processor_url}, "sinks": ["main"]}},
        },
    )


def postmaster(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


def postgres_processes(data_dir: Path) -> list[int]:
    """Processes running ``postgres -D <data_dir>`` (the postmaster; its children exit with it)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and b"-D" in argv and os.fsencode(data_dir) in argv:
            found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and parent == str(pid):
            found.append(int(entry.name))
    return found


async def ready_status(client: httpx.AsyncClient) -> int:
    try:
        return (await client.get("/health/ready")).status_code
    except httpx.TransportError:
        return 0


@pytest.mark.timeout(120)
async def test_a_killed_embedded_postgres_is_started_again_and_the_node_gets_ready(
    shared: Path,
) -> None:
    data_dir = shared / "postgres"
    async with trio.open_nursery() as nursery:
        node = NodeProcess(config(shared), env=EMBEDDED_ONLY)
        url = await node.start(nursery)
        first = postmaster(data_dir)
        os.kill(first, signal.SIGKILL)
        async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=5) as client:
            with trio.fail_after(60):
                while await ready_status(client) == 200:
                    await trio.sleep(0.05)
                while await ready_status(client) != 200:
                    await trio.sleep(0.2)
        assert postmaster(data_dir) != first
        node.signal(signal.SIGTERM)
        assert await node.wait() == 0
    log = "\n".join(node.messages())
    assert f"embedded postgres pid {first} on {data_dir} exited" in log
    assert "embedded postgres is running again" in log
    password = (data_dir / "mg.password").read_text().strip()
    assert "embedded Postgres is running at postgresql://mg:***@127.0.0.1:" in log
    assert password not in log
    assert not postgres_processes(data_dir)


@pytest.mark.timeout(120)
async def test_ready_says_503_within_its_bound_while_postgres_is_frozen(shared: Path) -> None:
    data_dir = shared / "postgres"
    async with trio.open_nursery() as nursery:
        node = NodeProcess(config(shared), env=EMBEDDED_ONLY)
        url = await node.start(nursery)
        pid = postmaster(data_dir)
        port = (data_dir / "postmaster.pid").read_text().split("\n")[3]
        frozen = [pid, *children(pid)]
        try:
            for victim in frozen:
                os.kill(victim, signal.SIGSTOP)
            async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=2.5) as client:
                for _ in range(3):  # the first probes too: no pooled connection to hide behind
                    began = time.monotonic()
                    answer = await client.get("/health/ready")
                    assert answer.status_code == 503
                    assert time.monotonic() - began < 2.5
                    assert answer.json()["message"] == "Postgres does not answer"
                    assert "127.0.0.1" not in answer.text
                    assert port not in answer.text
        finally:
            for victim in frozen:
                os.kill(victim, signal.SIGCONT)
        await node.wait_ready()
        node.signal(signal.SIGTERM)
        assert await node.wait() == 0


@pytest.mark.timeout(120)
async def test_sink_verify_checks_the_database_of_a_running_node(
    shared: Path, processor: FakeProcessor
) -> None:
    mg_toml = config(shared, processor.url)

    async def verify(sink: str) -> subprocess.CompletedProcess[bytes]:
        argv = [sys.executable, "-m", "mg", "sink", "verify", sink, "--config", str(mg_toml)]
        return await trio.run_process(
            argv, capture_stdout=True, capture_stderr=True, check=False, env=EMBEDDED_ONLY
        )

    async with trio.open_nursery() as nursery:
        node = NodeProcess(mg_toml, env=EMBEDDED_ONLY)
        url = await node.start(nursery)
        async with httpx.AsyncClient(base_url=url, trust_env=False) as client:
            started = await client.post(
                "/v1/namespaces/orders/machines/o1/start", json={"args": {}}
            )
            assert started.status_code == 201
        intact = await verify("main")
        unknown = await verify("nothing-here")
        node.signal(signal.SIGTERM)
        assert await node.wait() == 0
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert unknown.returncode == 2, unknown.stdout + unknown.stderr
    for run in (intact, unknown):
        assert b"Traceback" not in run.stderr


@pytest.mark.timeout(180)
def test_sigterm_at_any_moment_of_start_up_leaves_no_postgres_running(shared: Path) -> None:
    fresh = Path(tempfile.mkdtemp(prefix="mg-embedded-fresh-"))
    fresh.chmod(0o755)
    try:
        # A fresh directory (SIGTERM during initdb or the first start), then the made cluster;
        # last, a second SIGTERM while the first one's stop runs.
        moments = [(fresh, 1.0), (fresh, 1.0), *((shared, d) for d in (0.5, 1.0, 2.0, 3.0))]
        for number, (directory, delay) in enumerate(moments):
            with subprocess.Popen(
                [sys.executable, "-m", "mg", "serve", "--config", str(config(directory))],
                env=EMBEDDED_ONLY,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            ) as serve:
                time.sleep(delay)
                serve.send_signal(signal.SIGTERM)
                if number == len(moments) - 1:
                    time.sleep(0.3)
                    serve.send_signal(signal.SIGTERM)
                _, err = serve.communicate(timeout=90)
            assert serve.returncode in (0, -signal.SIGTERM), err
            assert b"Traceback" not in err, err
            assert not postgres_processes(directory / "postgres"), (delay, err)
        with EmbeddedPostgres(fresh / "postgres"):  # whatever was interrupted, it starts
            pass
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
