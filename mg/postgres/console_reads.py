"""The console's reads on Postgres (the ``ConsoleReads`` port of ``mg.console.reads``): the
overview's counts in one crossing of the bridge, and a page of a machine's queued
notifications."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from mg.console.reads import NamespaceCounts, Overview, QueuedNotification, SinkSummary
from mg.core import values
from mg.core.model import Direction, Range
from mg.postgres.bridge.interface import Bridge
from mg.postgres.failures import run_translated
from mg.postgres.sql_files import query

T = TypeVar("T")
READ_TIMEOUT = 10.0


class PostgresConsoleReads:
    def __init__(self, bridge: Bridge, namespaces: tuple[str, ...]) -> None:
        self._bridge = bridge
        self._namespaces = namespaces

    async def _run(self, work: Callable[[asyncpg.Connection], Awaitable[T]], doing: str) -> T:
        return await run_translated(self._bridge.run, work, doing=doing, timeout=READ_TIMEOUT)

    async def overview(self, sinks: tuple[str, ...]) -> Overview:
        async def work(conn: asyncpg.Connection) -> Overview:
            by_status: dict[str, dict[str, int]] = {ns: {} for ns in self._namespaces}
            for row in await conn.fetch(query("console_machine_counts")):
                by_status.setdefault(row["ns"], {})[row["status"]] = row["machines"]
            overdue = {
                row["ns"]: row["overdue"]
                for row in await conn.fetch(query("console_timers_overdue"))
            }
            queued = {
                row["ns"]: row["queued"]
                for row in await conn.fetch(query("sample_queued_notifications"))
            }
            outbox = {
                row["sink"]: (row["pending"], row["oldest_seconds"])
                for row in await conn.fetch(query("sample_sink_outbox"))
            }
            summaries: dict[str, SinkSummary] = {}
            for sink in sinks:
                bounds = await conn.fetchrow(query("console_sink_bounds"), sink)
                last = (bounds["last"] if bounds else None) or 0
                first = (bounds["first"] if bounds else None) or last + 1
                pending, oldest = outbox.get(sink, (0, 0.0))
                summaries[sink] = SinkSummary(first, last, pending, oldest)
            return Overview(
                {
                    ns: NamespaceCounts(counts, overdue.get(ns, 0), queued.get(ns, 0))
                    for ns, counts in by_status.items()
                },
                summaries,
            )

        return await self._run(work, "reading the console's overview")

    async def count(self, ns: str, status: str) -> int:
        async def work(conn: asyncpg.Connection) -> int:
            found: int = await conn.fetchval(query("console_count_status"), ns, status)
            return found

        return await self._run(work, "counting machines")

    async def notifications(self, ns: str, machine_id: str, limit: int) -> list[QueuedNotification]:
        async def work(conn: asyncpg.Connection) -> list[QueuedNotification]:
            rows = await conn.fetch(query("console_machine_notifications"), ns, machine_id, limit)
            return [
                QueuedNotification(
                    id=row["id"],
                    args=values.unpack(row["args"]),
                    range=Range(
                        row["range_after"], row["range_limit"], Direction(row["range_direction"])
                    ),
                    created_at=row["created_at"],
                    attempt=row["attempt"],
                    deliver_at=row["deliver_at"],
                    last_error=row["last_error"],
                )
                for row in rows
            ]

        return await self._run(work, "reading a machine's notifications")
