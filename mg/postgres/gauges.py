"""The aggregates behind the metrics gauges that need the database (the ``Gauges`` port):
a few small counts per sample, read in one round trip of the bridge."""

from __future__ import annotations

import asyncpg

from mg.postgres.bridge.interface import Bridge
from mg.postgres.sql_files import query
from mg.service.ports import GaugeSample


async def _read(conn: asyncpg.Connection) -> GaugeSample:
    sample = GaugeSample(retrying={}, failed={}, queued={}, outbox={}, heads={})
    for row in await conn.fetch(query("sample_troubled_machines")):
        target = sample.failed if row["status"] == "failed" else sample.retrying
        target[row["ns"]] = row["machines"]
    for row in await conn.fetch(query("sample_queued_notifications")):
        sample.queued[row["ns"]] = row["queued"]
    for row in await conn.fetch(query("sample_sink_outbox")):
        sample.outbox[row["sink"]] = (row["pending"], row["oldest_seconds"])
    for row in await conn.fetch(query("sample_sink_heads")):
        sample.heads[row["sink"]] = row["position"]
    return sample


class PostgresGauges:
    def __init__(self, bridge: Bridge, *, timeout: float = 10.0) -> None:
        self._bridge = bridge
        self._timeout = timeout

    async def sample(self) -> GaugeSample:
        return await self._bridge.run(_read, timeout=self._timeout)
