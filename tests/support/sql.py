"""Direct SQL for tests that inspect or tamper with the database, through mg's own bridge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mg.postgres.bridge.factory import make_bridge
from mg.postgres.bridge.interface import Bridge


class Sql:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    async def fetch(self, statement: str, *args: Any) -> list[Any]:
        return list(await self.bridge.run(lambda conn: conn.fetch(statement, *args)))

    async def fetchval(self, statement: str, *args: Any) -> Any:
        return await self.bridge.run(lambda conn: conn.fetchval(statement, *args))

    async def execute(self, statement: str, *args: Any) -> Any:
        return await self.bridge.run(lambda conn: conn.execute(statement, *args))


@asynccontextmanager
async def sql(url: str) -> AsyncIterator[Sql]:
    bridge = make_bridge("thread", url, min_size=1, max_size=2, connect_timeout=10)
    await bridge.open()
    try:
        yield Sql(bridge)
    finally:
        await bridge.close()
