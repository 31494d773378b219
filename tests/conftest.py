"""Shared pytest fixtures."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from mg.embedded.server import EmbeddedPostgres, install_dir, run_psql

# --------------------------------------------------------------------------------------------
# Session: one Postgres for the whole test session
# --------------------------------------------------------------------------------------------


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresServer:
    """The session's Postgres: the embedded one, or the server at ``MG_TEST_DATABASE_URL``.

    ``url(dbname)`` is ``base_url`` with its database replaced; every helper is sync and goes
    through the shipped ``psql``, as the role of ``base_url`` (a superuser for the embedded one).
    """

    def __init__(self, base_url: str, bin_dir: Path) -> None:
        self.base_url, self.bin_dir = base_url, bin_dir

    def url(self, dbname: str) -> str:
        return urlsplit(self.base_url)._replace(path="/" + quote(dbname, safe="")).geturl()

    @property
    def admin_url(self) -> str:
        """The URL of database ``postgres``."""
        return self.url("postgres")

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        return run_psql(self.bin_dir, self.url(dbname), sql)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (a copy of ``template`` if given, which must have no open
        connections); return its URL."""
        clause = f" TEMPLATE {_ident(template)}" if template else ""
        self.psql(f"CREATE DATABASE {_ident(name)}{clause}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, closing its connections first."""
        self.psql(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One Postgres for the session: external if ``MG_TEST_DATABASE_URL`` is set, else an
    embedded one in a temporary directory (durability off for speed), stopped at the end."""
    external = os.environ.get("MG_TEST_DATABASE_URL")
    if external:
        yield PostgresServer(external, install_dir() / "bin")
        return
    base = Path(tempfile.mkdtemp(prefix="mg-test-postgres-"))
    base.chmod(0o755)  # reachable by the unprivileged user the server runs as under root
    pg = EmbeddedPostgres(
        base / "data",
        settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
    )
    try:
        with pg:
            yield PostgresServer(pg.url("postgres"), pg.bin_dir)
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Per-test fixtures: add them below this line
# --------------------------------------------------------------------------------------------

# Databases per test, the fake processor and mg nodes live in tests/support/cluster.py.
pytest_plugins = ["tests.support.cluster"]
