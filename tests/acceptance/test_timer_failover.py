"""A node killed with SIGKILL while it holds claimed timers loses none of them."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import trio

from mg.node import Node
from tests.acceptance.test_timers import wait_for
from tests.support.api import Api, body
from tests.support.cluster import NodeFactory, api_for
from tests.support.processes import NodeProcess, write_config
from tests.support.processor import Answer, FakeProcessor, Seen


@pytest.mark.timeout(120)
async def test_timers_claimed_by_a_killed_node_fire_on_another_node(
    database_url: str, processor: FakeProcessor, nodes: NodeFactory
) -> None:
    stuck = trio.Event()

    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "init":
            return Answer(body={"action": {"timer": {"set": {"timeout": 0.5}}}})
        if not stuck.is_set():
            # The first node hangs in every timeout step it starts, holding its claims...
            await stuck.wait()
        return Answer(body={"events": [{"data": "fired"}]})

    processor.behaviour = behaviour
    workdir = Path(tempfile.mkdtemp(prefix="mg-failover-"))
    config = write_config(
        workdir / "mg.toml",
        {
            "server": {"port": 0},
            "timers": {"lease": "2s"},
            "namespaces": {"test": {"processor": {"url": processor.url}}},
        },
    )
    async with trio.open_nursery() as nursery:
        doomed = NodeProcess(config, env={"MG_DATABASE_URL": database_url})
        url = await doomed.start(nursery)
        client = Api(url)
        try:
            for n in range(20):
                assert (await client.start(f"m{n}")).status_code == 201
        finally:
            await client.aclose()

        async def first_node_is_firing() -> bool:
            return len(processor.of_kind("timeout")) >= 5

        await wait_for(first_node_is_firing)
        # ...and dies with them: no chance to release anything.
        doomed.kill()
        await doomed.wait()
        stuck.set()

    survivor: Node = await nodes(timers={"lease": "2s"})
    async with api_for(survivor) as api:

        async def all_fired() -> bool:
            page = body(await api.search(status="sleeping", limit=100))
            return len(page["machines"]) == 20

        await wait_for(all_fired, seconds=30)
        for n in range(20):
            machine = body(await api.get(f"m{n}"))
            assert [e["data"] for e in machine["history"]] == ["fired"], n
