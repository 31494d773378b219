"""``mg sink verify`` as users run it: a real process against the test database, an intact
chain, then rows tampered with behind mg's back."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import trio

from mg.node import Node
from tests.acceptance.test_sink import SINKS, wait_for
from tests.support.cluster import NodeFactory, api_for
from tests.support.processes import write_config
from tests.support.sql import Sql, sql


async def verify(database_url: str, *args: str) -> tuple[int, str]:
    config = write_config(
        Path(tempfile.mkdtemp(prefix="mg-verify-")) / "mg.toml", {"sinks": {"main": {}}}
    )
    done = await trio.run_process(
        [sys.executable, "-m", "mg", "sink", "verify", *args, "--config", str(config)],
        capture_stdout=True,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MG_DATABASE_URL": database_url},
        check=False,
    )
    return done.returncode, done.stdout.decode()


async def tamper(db: Sql, statement: str) -> None:
    """Change published rows the way only someone bypassing mg could."""
    await db.execute(
        "ALTER TABLE mg_sink_events DISABLE TRIGGER mg_sink_immutable; "
        f"{statement}; "
        "ALTER TABLE mg_sink_events ENABLE TRIGGER mg_sink_immutable"
    )


@pytest.mark.timeout(180)
async def test_verify_passes_an_intact_chain_and_names_the_first_tampered_row(
    nodes: NodeFactory, database_url: str
) -> None:
    node: Node = await nodes(**SINKS)
    async with api_for(node) as api:
        await api.start("m", b"\x00binary")
        for n in range(1, 20):
            await api.call("m", {"n": n, "raw": bytes([n])})
        await wait_for(api, 20)

    code, out = await verify(database_url, "main")
    assert (code, out.strip()) == (0, "sink 'main': chain intact, 20 events, positions 1..20")

    async with sql(database_url) as db:
        # Same length, still valid MessagePack: only the chain can tell.
        await tamper(db, "UPDATE mg_sink_events SET data = '\\x81a16ecd0309' WHERE id = 7")
        code, out = await verify(database_url, "main")
        assert code == 1
        assert "broken link at position 7" in out
        code, out = await verify(database_url, "main", "--from", "8")
        assert (code, out.strip()) == (0, "sink 'main': chain intact, 13 events, positions 8..20")

        await tamper(db, "UPDATE mg_sink_events SET hash = sha256(hash) WHERE id = 12")
        code, out = await verify(database_url, "main", "--from", "8")
        assert code == 1
        assert "broken link at position 12" in out

        # Position 13 chains from the hash 12 had before: it is broken too, from 12's new hash.
        assert (await verify(database_url, "main", "--from", "13"))[0] == 1
        await db.execute("DELETE FROM mg_sink_events WHERE id = 15")
        code, out = await verify(database_url, "main", "--from", "14")
        assert code == 1
        assert "position 15 is missing" in out

    code, out = await verify(database_url, "main", "--from", "99")
    assert code == 2
    code, out = await verify(database_url, "nope")
    assert code == 2


async def test_verify_on_a_database_without_the_schema_says_it_cannot_check(
    postgres_server: Any,
) -> None:
    name = f"mg_unmigrated_{os.getpid()}"
    url = await trio.to_thread.run_sync(postgres_server.create_database, name)
    try:
        code, out = await verify(url, "main")
    finally:
        await trio.to_thread.run_sync(postgres_server.drop_database, name)
    assert code == 2
    assert out == (
        "mg: cannot verify sink 'main': the database's schema is not this mg's (run mg migrate, "
        "or start a node, first)\n"
    )
