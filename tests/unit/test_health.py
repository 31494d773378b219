"""Readiness when Postgres does not answer (the schema case runs against a real database in
tests/acceptance/test_observability.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import trio

from mg.databases.routing import STARTING, RoutedHealth, Routes
from mg.observability.health import Health, Readiness


class DeadBridge:
    async def run(self, work: Any, *, timeout: float | None = None) -> Any:
        raise ConnectionRefusedError("connection refused")


async def test_not_ready_when_postgres_does_not_answer() -> None:
    found = await Health(DeadBridge()).readiness()  # type: ignore[arg-type]
    assert not found.ready
    assert "Postgres does not answer" in found.reason
    assert found.reason == "Postgres does not answer"  # the driver's text is in the log only


class FrozenBridge:
    async def run(self, work: Any, *, timeout: float | None = None) -> Any:
        await trio.sleep_forever()


async def test_not_ready_within_the_bound_when_postgres_is_frozen() -> None:
    with trio.fail_after(2.5):
        found = await Health(FrozenBridge(), timeout=2.0).readiness()  # type: ignore[arg-type]
    assert not found.ready
    assert found.reason == "Postgres does not answer"


class Answers:
    async def readiness(self) -> Readiness:
        return Readiness(True, "Postgres answers and the schema is current")


def _database(name: str) -> Any:
    placement = SimpleNamespace(name=name, namespaces=(name,), sinks=())
    return SimpleNamespace(placement=placement, name=name, ready=trio.Event(), health=Answers())


async def test_not_ready_until_the_database_is_started_though_postgres_answers() -> None:
    # Postgres back, the node still migrating or starting the loops: the API answers 503
    # "starting" meanwhile, so readiness must not send a balancer's traffic there yet.
    database = _database("main")
    health = RoutedHealth(Routes([database]))
    found = await health.readiness()
    assert not found.ready
    assert found.reason == STARTING
    database.ready.set()
    assert (await health.readiness()).ready


async def test_each_database_not_started_is_named() -> None:
    first, second = _database("main"), _database("other")
    first.ready.set()
    found = await RoutedHealth(Routes([first, second])).readiness()
    assert not found.ready
    assert found.databases == {"main": "ready", "other": STARTING}
