"""``mg serve`` as users run it: a real process, an embedded Postgres it starts itself, and a
clean stop on SIGTERM."""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from tests.support.cli import environment, mg_process
from tests.support.processes import NodeProcess, write_config
from tests.support.processor import FakeProcessor


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    # Under root, Postgres runs as nobody: the data dir must be reachable for it.
    path = Path(tempfile.mkdtemp(prefix="mg-serve-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(180)
async def test_serve_runs_on_an_embedded_postgres_and_stops_it_on_sigterm(
    reachable_dir: Path, processor: FakeProcessor
) -> None:
    data_dir = reachable_dir / "postgres"
    config = write_config(
        reachable_dir / "mg.toml",
        {
            "server": {"port": 0},
            "database": {"embedded": {"data_dir": str(data_dir)}},
            "namespaces": {"orders": {"processor": {"url": processor.url}}},
        },
    )
    async with trio.open_nursery() as nursery:
        node = NodeProcess(config, env={"MG_DATABASE_URL": ""})
        url = await node.start(nursery)
        async with httpx.AsyncClient(base_url=url, trust_env=False) as client:
            started = await client.post(
                "/v1/namespaces/orders/machines/o1/start", json={"args": {"amount": 5}}
            )
            assert started.status_code == 201
            got = await client.get("/v1/namespaces/orders/machines/o1")
            assert got.json()["history"][0]["data"] == {"amount": 5}
        lock = json.loads(Path(f"{data_dir}.lock").read_text())
        postmaster = (data_dir / "postmaster.pid").read_text().split("\n")[0]
        # The database's URL, from the running node's lock file, and psql on it.
        env = environment(MG_DATABASE_URL="")
        named = await mg_process("db", "url", "--config", str(config), env=env)
        assert (named.code, named.out.strip()) == (0, lock["url"])
        counted = await mg_process(
            "psql",
            "--config",
            str(config),
            "-At",
            "-c",
            "SELECT count(*) FROM mg_machines",
            env=env,
        )
        assert (counted.code, counted.out.strip(), counted.err) == (0, "1", "")
        node.signal(signal.SIGTERM)
        assert await node.wait() == 0
    assert not (data_dir / "postmaster.pid").exists()
    assert not Path(f"/proc/{postmaster}").exists()
    assert "embedded Postgres is running at" in " ".join(node.messages())
    assert "mg stopped, and its embedded Postgres" in node.messages()[-1]
    assert lock["pid"] > 0
