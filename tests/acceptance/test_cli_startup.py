"""``mg`` where a newcomer first meets it: ``--version``, ``--help``, a start-up that cannot
succeed, and reading commands where there is no database. Each failure is one line, never a
traceback, and nothing is created on the way."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import environment, mg_process
from tests.support.processes import write_config

NO_DB = "postgresql://mg@127.0.0.1:9/mg"  # nothing listens on port 9


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


async def test_version_and_help_are_plain_text() -> None:
    version = await mg_process("--version")
    assert (version.code, version.out.split()[0]) == (0, "mg")
    helped = await mg_process("--help")
    assert helped.code == 0
    assert "``" not in helped.out
    for command in ("demo", "serve", "machines", "sink", "psql", "db"):
        assert f"    {command}" in helped.out
    bare = await mg_process()
    assert bare.code == 2
    assert "usage: mg" in bare.out
    assert "COMMAND" in bare.out
    machines = await mg_process("machines", "--help")
    assert "``" not in machines.out


async def test_serve_on_a_busy_port_is_one_line(tmp_path: Path, busy_port: int) -> None:
    config = write_config(
        tmp_path / "mg.toml",
        {
            "server": {"port": busy_port},
            "namespaces": {"orders": {"processor": {"url": "http://127.0.0.1:9/processor"}}},
        },
    )
    ran = await mg_process("serve", "--config", str(config), env=environment(MG_DATABASE_URL=NO_DB))
    assert ran.code == 1
    assert "Traceback" not in ran.err
    assert f"mg: cannot listen on 127.0.0.1:{busy_port}: the address is already in use" in ran.err


async def test_reading_commands_without_a_database_say_so_and_create_nothing(
    tmp_path: Path,
) -> None:
    env = environment(MG_DATABASE_URL="")
    for command in (("sink", "verify", "main"), ("db", "url"), ("psql", "-c", "SELECT 1")):
        ran = await mg_process(*command, env=env, cwd=tmp_path)
        assert ran.code in (1, 2), command
        assert ran.err.startswith("mg: no database here: mg-data/postgres does not exist"), ran
        assert len(ran.err.splitlines()) == 1
        assert list(tmp_path.iterdir()) == []


async def test_serve_with_a_missing_tls_file_names_it_in_one_line(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "mg.toml",
        {
            "server": {"port": 0, "certfile": str(tmp_path / "cert.pem"), "keyfile": "k.pem"},
            "namespaces": {"orders": {"processor": {"url": "http://127.0.0.1:9/processor"}}},
        },
    )
    ran = await mg_process("serve", "--config", str(config), env=environment(MG_DATABASE_URL=NO_DB))
    assert (ran.code, ran.err) == (2, f"mg: server.certfile: no such file: {tmp_path}/cert.pem\n")
