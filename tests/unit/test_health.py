"""Readiness when Postgres does not answer (the schema case runs against a real database in
tests/acceptance/test_observability.py)."""

from __future__ import annotations

from typing import Any

import trio

from mg.observability.health import Health


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
