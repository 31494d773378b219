"""Opening part of a database's pool once it is ready, ahead of the first steps.

The pool starts empty (``min_size`` 0, so that a node starts while Postgres is away) and opens
connections on demand: right after a start or a restart, the first burst of steps pays for
opening them, and timers due then fire late (``bench.py timers`` at 400/s: a lag p99 of about
200 ms over the first second, under 40 ms after it). Holding ``count`` connections at once
opens them; idle, they stay in the pool for the next steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
import trio

from mg.postgres.bridge.interface import Bridge
from mg.postgres.sql_files import query

log = logging.getLogger("mg.postgres")

# How long each connection is held waiting for the others: the pool may be smaller than asked.
HOLD_SECONDS = 1.0


async def open_connections(bridge: Bridge, count: int, *, timeout: float = 10.0) -> None:
    """Open up to ``count`` connections of ``bridge``'s pool now; a failure is only logged
    (the steps open what they need anyway)."""
    arrived = 0
    everyone = asyncio.Event()

    async def work(conn: asyncpg.Connection) -> None:
        nonlocal arrived
        await conn.fetchval(query("warm_connection"))
        arrived += 1
        if arrived >= count:
            everyone.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everyone.wait(), HOLD_SECONDS)

    async def one() -> None:
        try:
            await bridge.run(work, timeout=timeout)
        except Exception as error:
            log.debug("could not open a connection ahead of the steps: %s", error)

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
