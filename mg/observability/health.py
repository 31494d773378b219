"""Liveness and readiness.

Live: the process answers HTTP. Ready: Postgres answers and every migration this mg knows is
applied, so a load balancer sends traffic only to nodes that can serve it (a node started
against a database that a newer or older mg migrated is not ready).
"""

from __future__ import annotations

from dataclasses import dataclass

from mg.postgres.bridge.interface import Bridge
from mg.postgres.migrations import is_current


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
            current = await is_current(self._bridge, timeout=self._timeout)
        except Exception as error:
            return Readiness(False, f"Postgres does not answer: {type(error).__name__}: {error}")
        if not current:
            return Readiness(False, "the database schema is not migrated to this mg's version")
        return Readiness(True, "Postgres answers and the schema is current")
