"""The subscription example (examples/subscriptions) behind a live node: renewals on the timer,
a charge made once however often its step runs, the machine ``retrying`` with its reason while
the gateway is down, refused arguments, cancel, and repair after a declined card."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio

from mg.client import AsyncClient, InvalidArgs, RepairFailed, Status
from mg.node import running_node
from mg.processor import serve
from mg.settings import from_mapping
from tests.acceptance.test_doc_snippets import load_subscriptions

FAST = {"type": "linear", "timeout": "100ms", "max_timeout": "100ms", "max_retries": "infinity"}
TERMS = {"customer": "c-7", "plan": "basic", "cents": 500, "period": 0.3}


@pytest.fixture
def example() -> Any:
    return load_subscriptions()


@pytest.fixture
def gateway(example: Any) -> Any:
    return example.FakeGateway(lose_answers=2)


@pytest.fixture
async def client(database_url: str, example: Any, gateway: Any) -> AsyncIterator[AsyncClient]:
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, example.Subscriptions(gateway), "127.0.0.1", 0)
        settings = from_mapping(
            {
                "namespaces": {
                    "subscriptions": {
                        "processor": {"url": url + "/processor"},
                        "retries": {"timers": FAST},
                    }
                }
            },
            environ={},
        )
        async with running_node(settings, database_url, port=0) as node:
            connected = AsyncClient(node.url)
            async with connected as mg:
                yield mg
        nursery.cancel_scope.cancel()


async def until(condition: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    with trio.fail_after(seconds):
        while not await condition():
            await trio.sleep(0.02)


async def kinds(mg: AsyncClient, machine_id: str) -> list[str]:
    return [event.data["kind"] for event in (await mg.get("subscriptions", machine_id)).history]


async def test_a_renewal_retried_while_the_gateway_is_down_charges_once(
    client: AsyncClient, gateway: Any
) -> None:
    await client.start("subscriptions", "sub-1", TERMS)

    async def retrying() -> bool:
        return (await client.get("subscriptions", "sub-1")).status is Status.RETRYING

    await until(retrying)
    retry = (await client.get("subscriptions", "sub-1")).retry
    assert retry is not None
    assert retry.subject == "timer"
    assert "payment gateway: the gateway did not answer in time" in retry.last_error

    async def renewed_twice() -> bool:
        return (await kinds(client, "sub-1")).count("renewed") >= 2

    await until(renewed_twice)
    machine = await client.get("subscriptions", "sub-1")
    assert machine.retry is None
    renewals = [e.data for e in machine.history if e.data["kind"] == "renewed"]
    assert [r["charge"] for r in renewals[:2]] == ["ch_1", "ch_2"]
    # Two lost answers, three attempts for the first renewal: still one charge per period.
    assert len(gateway.charges) >= 2
    assert {key.rsplit("/", 1)[1] for key in list(gateway.charges)[:2]} == {"2", "3"}
    assert machine.tags == ("customer-c-7",)

    assert await client.call("subscriptions", "sub-1", "cancel") == {"state": "cancelled"}
    cancelled = await client.get("subscriptions", "sub-1")
    assert cancelled.timer is None
    assert await client.call("subscriptions", "sub-1", "cancel") == {
        "refused": "the subscription is cancelled"
    }


async def test_bad_terms_are_refused_and_nothing_is_stored(client: AsyncClient) -> None:
    with pytest.raises(InvalidArgs) as refused:
        await client.start("subscriptions", "sub-2", {"customer": "c-8"})
    assert refused.value.reason == 'a subscription needs {"customer", "plan", "cents"}'
    assert (await client.search("subscriptions")).machines == ()
    await client.start("subscriptions", "sub-2", {**TERMS, "period": 3600})


async def test_a_declined_card_fails_the_machine_until_repaired(
    client: AsyncClient, gateway: Any
) -> None:
    gateway.decline = True
    await client.start("subscriptions", "sub-3", TERMS)

    async def failed() -> bool:
        return (await client.get("subscriptions", "sub-3")).status is Status.FAILED

    await until(failed)
    machine = await client.get("subscriptions", "sub-3")
    assert "the card of c-7 was declined" in (machine.failure_reason or "")
    with pytest.raises(RepairFailed):
        await client.repair("subscriptions", "sub-3", "please")
    gateway.decline = False
    gateway.lose_answers = 0
    assert await client.repair("subscriptions", "sub-3", {"checked": True}) == "renewing"

    async def renewed() -> bool:
        return "renewed" in await kinds(client, "sub-3")

    await until(renewed)
    await client.call("subscriptions", "sub-3", "cancel")
