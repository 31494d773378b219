"""Wake-ups across nodes over LISTEN/NOTIFY, and a listener that comes back after a drop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from mg.postgres.bridge.factory import make_bridge
from mg.postgres.bridge.interface import Bridge
from mg.postgres.wakeups import Wakeups
from tests.support.sql import sql


@pytest.fixture
async def bridges(database_url: str) -> AsyncIterator[list[Bridge]]:
    made = [
        make_bridge("thread", database_url, min_size=1, max_size=3, connect_timeout=10)
        for _ in range(2)
    ]
    for bridge in made:
        await bridge.open()
    yield made
    for bridge in made:
        await bridge.close()


async def test_a_poke_wakes_this_node_at_once_and_the_other_node_soon(
    bridges: list[Bridge], nursery: trio.Nursery
) -> None:
    here, there = Wakeups(bridges[0]), Wakeups(bridges[1])
    await nursery.start(here.run)
    await nursery.start(there.run)
    local = here.arm("timers")
    remote = there.arm("timers")
    other_topic = there.arm("sink:main")
    here.poke("timers")
    assert await local.wait(0)
    assert await remote.wait(10)
    assert not await other_topic.wait(0.2)


async def test_a_node_ignores_its_own_notify_and_hears_an_older_nodes(
    bridges: list[Bridge], database_url: str, nursery: trio.Nursery
) -> None:
    here = Wakeups(bridges[0])
    await nursery.start(here.run)
    async with sql(database_url) as db:
        # Its own NOTIFY coming back (as a poke sends it) wakes nothing...
        echo = here.arm("timers")
        await db.execute("SELECT pg_notify('mg_wake', $1)", f"{here.origin} timers")
        assert not await echo.wait(0.5)
        # ...another node's does, and so does a payload without an origin.
        for payload in ("0123456789abcdef timers", "timers,sink:main"):
            waiter = here.arm("timers")
            await db.execute("SELECT pg_notify('mg_wake', $1)", payload)
            assert await waiter.wait(10), payload


async def test_a_poke_while_working_is_not_lost(
    bridges: list[Bridge], nursery: trio.Nursery
) -> None:
    wakeups = Wakeups(bridges[0])
    await nursery.start(wakeups.run)
    waiter = wakeups.arm("timers")
    wakeups.poke("timers")  # lands "while the loop works", before it waits
    assert await waiter.wait(0)


async def test_the_listener_is_re_established_after_its_connection_drops(
    bridges: list[Bridge], database_url: str, nursery: trio.Nursery
) -> None:
    here, there = Wakeups(bridges[0]), Wakeups(bridges[1])
    await nursery.start(here.run)
    await nursery.start(there.run)
    async with sql(database_url) as db:
        killed = await db.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
        )
    assert killed >= 1
    with trio.fail_after(15):
        while not (there.listening and here.listening):
            await trio.sleep(0.05)
        # Woken after the drop (pokes may have been missed), then working again.
        remote = there.arm("timers")
        here.poke("timers")
        assert await remote.wait(10)
