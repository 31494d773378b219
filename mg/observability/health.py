"""Liveness and readiness.

Live: the process answers HTTP. Ready: Postgres answers, every migration this mg knows is
applied and no newer one has left this code behind, so a load balancer sends traffic only to
nodes that can serve it; the answer names the cause when not ready.
"""

from __future__ import annotations

from dataclasses import dataclass

from mg.postgres.bridge.interface import Bridge
from mg.postgres.migrations import schema_problem


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str


class Health:
    def __init__(self, bridge: Bridge, *, timeout: float = 2.0) -> None:
        self._bridge = bridge
        self._timeout = timeout

    async def readiness(self) -> Readiness:
        try:
            problem = await schema_problem(self._bridge, timeout=self._timeout)
        except Exception as error:
            return Readiness(False, f"Postgres does not answer: {type(error).__name__}: {error}")
        if problem is not None:
            return Readiness(False, problem)
        return Readiness(True, "Postgres answers and the schema is current")
