"""Causes that are not outages: ``mg serve`` names the cause in one line and exits with the
cause's own code (mg.startup, docs/upgrading.md) instead of "waiting for Postgres" forever;
``mg migrate --check`` says what would run."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio

from tests.support.cli import ROOT, Ran, environment, mg_process
from tests.support.processes import write_config
from tests.support.sql import sql


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "mg.toml",
        {
            "server": {"port": 0},
            "namespaces": {"orders": {"processor": {"url": "http://127.0.0.1:9"}}},
        },
    )


async def serve(config: Path, url: str, **env: str) -> Ran:
    # From the config's folder: `python -m` puts the working directory first on the path.
    with trio.fail_after(60):
        done = await trio.run_process(
            [sys.executable, "-m", "mg", "serve", "--config", str(config)],
            capture_stdout=True,
            capture_stderr=True,
            env=environment(MG_DATABASE_URL=url, **env),
            cwd=config.parent,
            check=False,
        )
    return Ran(done.returncode, done.stdout.decode(), done.stderr.decode())


def the_cause(ran: Ran) -> str:
    """The one line of the log that names the cause; nothing says "waiting for Postgres"."""
    lines = [json.loads(line) for line in ran.err.splitlines() if line.startswith("{")]
    assert not [line for line in lines if "waiting for Postgres" in line["message"]]
    causes = [line for line in lines if line["message"].startswith("mg cannot run: ")]
    assert len(causes) == 1, ran.err
    assert causes[0]["level"] == "error"
    return str(causes[0]["message"])


async def test_serve_against_a_schema_newer_than_its_code_exits_3(
    config: Path, database_url: str
) -> None:
    async with sql(database_url) as db:
        await db.execute("UPDATE mg_schema SET version = 99, oldest_compatible = 98")
    ran = await serve(config, database_url)
    assert ran.code == 3
    cause = the_cause(ran)
    assert "schema is at version 99 and runs only with mg code of schema version 98" in cause
    assert "upgrade mg" in cause


async def test_serve_without_its_sql_exits_4(
    config: Path, database_url: str, tmp_path: Path
) -> None:
    # An install that lost its package data: the package alone, no sql/ in it or beside it.
    shutil.copytree(ROOT / "mg", tmp_path / "site" / "mg")
    ran = await serve(config, database_url, PYTHONPATH=str(tmp_path / "site"))
    assert ran.code == 4
    assert "mg's sql/ resources are missing" in the_cause(ran)


async def test_serve_on_a_database_that_does_not_exist_exits_5(
    config: Path, postgres_server: Any
) -> None:
    ran = await serve(config, postgres_server.url("no_such_database"))
    assert ran.code == 5
    cause = the_cause(ran)
    assert "Postgres refuses this node" in cause
    assert "3D000" in cause


async def test_serve_with_a_wrong_password_exits_5(config: Path, database_url: str) -> None:
    parts = urlsplit(database_url)
    netloc = f"{parts.username}:wrong-password@{parts.hostname}:{parts.port}"
    wrong = parts._replace(netloc=netloc).geturl()
    ran = await serve(config, wrong)
    assert ran.code == 5
    cause = the_cause(ran)
    assert "Postgres refuses this node" in cause
    assert "SQLSTATE 28" in cause
    assert "wrong-password" not in ran.err


async def test_serve_with_a_database_url_the_driver_cannot_use_exits_2(
    config: Path, database_url: str
) -> None:
    ran = await serve(config, f"{database_url}?sslmode=sometimes")
    assert ran.code == 2
    assert "the database URL cannot be used" in the_cause(ran)


async def test_migrate_check_says_what_would_run_and_exits_1_until_nothing_would(
    config: Path, postgres_server: Any, tmp_path: Path
) -> None:
    name = f"check_{tmp_path.name[-12:].lower().replace('-', '_')}"
    url = postgres_server.create_database(name)
    try:
        env = environment(MG_DATABASE_URL=url)
        pending = await mg_process("migrate", "--check", "--config", str(config), env=env)
        assert pending.code == 1, pending.err
        assert "the database schema is at version 0" in pending.out
        assert "would apply 6 (notification_heads)" in pending.out
        applied = await mg_process("migrate", "--config", str(config), env=env)
        assert applied.code == 0, applied.err
        done = await mg_process("migrate", "--check", "--config", str(config), env=env)
        assert done.code == 0, done.err
        assert "nothing to apply" in done.out
    finally:
        postgres_server.drop_database(name)
