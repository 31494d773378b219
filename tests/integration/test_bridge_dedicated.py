"""Dedicated sessions on both bridges: a connection of its own, outside the pool, whose session
state (a session-level advisory lock above all) ends with the block, and whose loss is known at
once. The sink sequencer leads for exactly as long as such a session holds its lock."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import asyncpg
import pytest
import trio

from mg.errors import StorageUnavailable
from mg.postgres.bridge.factory import BRIDGE_KINDS, make_bridge
from mg.postgres.bridge.interface import Bridge
from mg.postgres.failures import translate

HANG = 30  # only a hang can exceed it; no timing is asserted


@pytest.fixture(params=BRIDGE_KINDS)
async def bridge(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Bridge]:
    made = make_bridge(str(request.param), database_url, min_size=1, max_size=2)
    await made.open()
    yield made
    await made.close()


@pytest.fixture
async def observer(database_url: str) -> AsyncIterator[Bridge]:
    made = make_bridge("thread", database_url, min_size=1, max_size=1)
    await made.open()
    yield made
    await made.close()


async def _pid(conn: asyncpg.Connection) -> int:
    found: int = await conn.fetchval("SELECT pg_backend_pid()")
    return found


async def _lock_is_free(observer: Bridge, key: int) -> bool:
    async def work(conn: asyncpg.Connection) -> bool:
        taken: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
        if taken:
            await conn.execute("SELECT pg_advisory_unlock($1)", key)
        return taken

    return await observer.run(work)


async def test_a_session_lock_lives_exactly_as_long_as_the_dedicated_block(
    bridge: Bridge, observer: Bridge
) -> None:
    key = random.randrange(1, 2**62)
    with trio.fail_after(HANG):
        async with bridge.dedicated(server_settings={"application_name": "mg-dedicated"}) as s:
            await s.run(lambda conn: conn.execute("SELECT pg_advisory_lock($1)", key))
            name = await s.run(lambda conn: conn.fetchval("SHOW application_name"))
            pid = await s.run(_pid)
            pooled = {await bridge.run(_pid) for _ in range(4)}
            assert not await _lock_is_free(observer, key)
        assert name == "mg-dedicated"
        assert pid not in pooled  # not a pooled connection
        assert bridge.pool_stats["size"] <= 2
        assert await _lock_is_free(observer, key)
        assert not s.lost.is_set()  # our own close is not a loss


async def test_a_cancelled_dedicated_block_frees_its_lock(bridge: Bridge, observer: Bridge) -> None:
    key = random.randrange(1, 2**62)
    with trio.fail_after(HANG):
        with trio.move_on_after(HANG / 2) as scope:
            async with bridge.dedicated() as session:
                await session.run(lambda conn: conn.execute("SELECT pg_advisory_lock($1)", key))
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(session.run, lambda c: c.execute("SELECT pg_sleep(30)"))
                    await trio.sleep(0.2)
                    scope.cancel()
        assert scope.cancelled_caught
        assert await _lock_is_free(observer, key)


async def test_losing_the_connection_sets_lost_and_later_work_fails(
    bridge: Bridge, observer: Bridge
) -> None:
    with trio.fail_after(HANG):
        async with bridge.dedicated() as session:
            pid = await session.run(_pid)
            await observer.run(lambda conn: conn.execute("SELECT pg_terminate_backend($1)", pid))
            await session.lost.wait()
            # What the driver raises varies with the moment of the loss; translated, it is the
            # "storage unavailable" that makes a leader step down.
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)) as caught:
                await session.run(_pid)
            assert isinstance(translate(caught.value, doing="testing"), StorageUnavailable)


async def test_closing_the_bridge_ends_a_dedicated_block(database_url: str) -> None:
    bridge = make_bridge("thread", database_url, min_size=1, max_size=2)
    await bridge.open()
    failures: list[BaseException] = []

    async def hold() -> None:
        try:
            async with bridge.dedicated() as session:
                await session.run(lambda conn: conn.execute("SELECT pg_sleep(30)"))
        except trio.ClosedResourceError as error:
            failures.append(error)

    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold)
            await trio.sleep(0.2)
            await bridge.close()
    assert len(failures) == 1
    with pytest.raises(trio.ClosedResourceError):
        async with bridge.dedicated():
            pass
