"""A rolling upgrade of a two-node cluster (docs/upgrading.md): nodes of the previous release keep
working, and keep starting, against the schema the next release migrated.

The next release is made here, without git history: a copy of this checkout plus an expand
migration (``-- compatible-with:`` this release), as the rule asks of every migration from now
on. A second test runs the previous commit's own code (``git archive HEAD~1``) against the schema
this checkout migrates; it needs history, which a clone has (a shallow one skips it, and the first
test still stands).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from mg.postgres.sql_files import migrations
from tests.support.cli import ROOT, environment
from tests.support.processes import NodeProcess, write_config
from tests.support.processor import FakeProcessor
from tests.support.sql import sql


def _config(folder: Path, processor: FakeProcessor) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_config(
        folder / "mg.toml",
        {
            "server": {"port": 0},
            "namespaces": {"orders": {"processor": {"url": processor.url}}},
        },
    )


def _node(tree: Path, config: Path, database_url: str) -> NodeProcess:
    """``python -m mg serve`` of the code in ``tree``, run from the config's folder."""
    env = environment(MG_DATABASE_URL=database_url, PYTHONPATH=str(tree))
    return NodeProcess(config, env=env, cwd=config.parent)


def _next_release(tree: Path) -> int:
    """A copy of this checkout with one more migration, an expand step; its number."""
    for name in ("mg", "sql"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    current = len(migrations())
    # Compatible with every code version this release's schema admits (its migrations' highest
    # compatible-with; 6 while 0007 and 0008 keep nodes of 6 working), as an expand step must.
    oldest = max(m.compatible_with for m in migrations())
    (tree / "sql" / "migrations" / f"{current + 1:04d}_rolling_upgrade_test.sql").write_text(
        f"-- compatible-with: {oldest}\n"
        "-- Expand: a new nullable column and a new table; nothing the previous release uses\n"
        "-- changes.\n"
        "ALTER TABLE mg_machines ADD COLUMN rolling_note text;\n"
        "CREATE TABLE mg_rolling_upgrade_test (id bigint PRIMARY KEY);\n"
    )
    return current + 1


async def _works(client: httpx.AsyncClient, machine: str) -> None:
    started = await client.post(
        f"/v1/namespaces/orders/machines/{machine}/start", json={"args": {"amount": 1}}
    )
    assert started.status_code == 201, started.text
    called = await client.post(f"/v1/namespaces/orders/machines/{machine}/call", json={"args": 2})
    assert called.status_code == 200, called.text


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_nodes_of_the_previous_release_work_beside_the_next_one(
    database_url: str, processor: FakeProcessor, tmp_path: Path
) -> None:
    upgraded = _next_release(tmp_path / "next")
    old_config = _config(tmp_path / "old", processor)
    new_config = _config(tmp_path / "new", processor)
    async with trio.open_nursery() as nursery:
        # A cluster of this release: nodes a and b.
        a = _node(ROOT, old_config, database_url)
        b = _node(ROOT, old_config, database_url)
        url_a = await a.start(nursery)
        await b.start(nursery)
        # b is upgraded: stopped, then started with the next release, which migrates.
        b.signal(15)
        assert await b.wait() == 0
        b = _node(tmp_path / "next", new_config, database_url)
        url_b = await b.start(nursery)
        async with sql(database_url) as db:
            assert await db.fetchval("SELECT max(version) FROM mg_schema_migrations") == upgraded
        async with (
            httpx.AsyncClient(base_url=url_a, trust_env=False) as old,
            httpx.AsyncClient(base_url=url_b, trust_env=False) as new,
        ):
            # Old and new serve the same machines side by side.
            await _works(old, "o1")
            await _works(new, "o2")
            for client in (old, new):
                for machine in ("o1", "o2"):
                    got = await client.get(f"/v1/namespaces/orders/machines/{machine}")
                    assert got.status_code == 200
                    assert len(got.json()["history"]) == 2
        # A node of the previous release restarting mid-rollout starts against the new schema.
        a.signal(15)
        assert await a.wait() == 0
        a = _node(ROOT, old_config, database_url)
        url_a = await a.start(nursery)
        async with httpx.AsyncClient(base_url=url_a, trust_env=False) as old:
            await _works(old, "o3")
        assert any("newer than this mg's" in message for message in a.messages())
        for node in (a, b):
            node.signal(15)
            assert await node.wait() == 0


def _previous_commit(tree: Path) -> bool:
    """The previous commit's code in ``tree``, or False without history (a shallow clone)."""
    if not (ROOT / ".git").exists():
        return False
    found = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", "HEAD~1^{commit}"],
        capture_output=True,
        check=False,
    )
    if found.returncode != 0:
        return False
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "HEAD~1", "mg", "sql", "pyproject.toml"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return True


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_the_previous_commits_code_runs_against_the_schema_of_this_one(
    database_url: str, processor: FakeProcessor, tmp_path: Path
) -> None:
    previous = tmp_path / "previous"
    if not _previous_commit(previous):
        pytest.skip("no history (shallow clone): the test above stands in for this one")
    async with sql(database_url) as db:
        oldest = await db.fetchval("SELECT oldest_compatible FROM mg_schema")
    known = len(list((previous / "sql" / "migrations").glob("*.sql")))
    config = _config(tmp_path / "old", processor)
    node = _node(previous, config, database_url)
    if oldest > known:
        # This commit contracts the schema: the previous code must stop, not run.
        with trio.fail_after(60):
            done = await trio.run_process(
                [sys.executable, "-m", "mg", "serve", "--config", str(config)],
                env=node.env,
                cwd=config.parent,
                capture_stderr=True,
                check=False,
            )
        assert done.returncode != 0
        return
    async with trio.open_nursery() as nursery:
        url = await node.start(nursery)
        async with httpx.AsyncClient(base_url=url, trust_env=False) as client:
            await _works(client, "p1")
        node.signal(15)
        assert await node.wait() == 0
