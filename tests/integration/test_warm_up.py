"""A database's pool opened ahead of the first steps (mg/postgres/warm_up.py)."""

from __future__ import annotations

import pytest
import trio

from mg.postgres.bridge.factory import BRIDGE_KINDS, make_bridge
from mg.postgres.warm_up import HOLD_SECONDS, open_connections


@pytest.mark.parametrize("kind", BRIDGE_KINDS)
async def test_the_connections_asked_for_are_open_and_idle_afterwards(
    database_url: str, kind: str
) -> None:
    async with make_bridge(kind, database_url, min_size=0, max_size=8) as bridge:
        assert bridge.pool_stats["size"] == 0
        await open_connections(bridge, 5)
        stats = bridge.pool_stats
        assert stats["size"] >= 5
        assert stats["idle"] == stats["size"]


async def test_a_pool_smaller_than_asked_is_filled_without_waiting_long(
    database_url: str,
) -> None:
    async with make_bridge("uvloop", database_url, min_size=0, max_size=3) as bridge:
        with trio.fail_after(HOLD_SECONDS * 3 + 5):
            await open_connections(bridge, 6)
        assert bridge.pool_stats["size"] == 3


async def test_a_database_away_is_only_logged(database_url: str) -> None:
    unreachable = database_url.rsplit("@", 1)[0] + "@127.0.0.1:9/nothing"
    bridge = make_bridge("uvloop", unreachable, min_size=0, max_size=2, connect_timeout=1)
    async with bridge:
        with trio.fail_after(10):
            await open_connections(bridge, 2, timeout=2)
        assert bridge.pool_stats["size"] == 0
