"""Liveness and readiness.

Live: the process answers HTTP. Ready: Postgres answers, every migration this mg knows is
applied and no newer one has left this code behind, so a load balancer sends traffic only to
nodes that can serve it; when not ready, the answer names the cause (a schema this code cannot
run on is named in full: docs/upgrading.md).

Readiness answers within ``timeout`` (2 s) whatever Postgres does, a frozen server included:
the check is abandoned at the bound and the answer is "not ready". The reason is in words that
any client may read; the driver's text (which names the database's address) goes to the log,
once per change of cause.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from mg.postgres.bridge.interface import Bridge
from mg.postgres.migrations import schema_problem

log = logging.getLogger("mg.health")
NO_ANSWER = "Postgres does not answer"


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str


class Health:
    def __init__(self, bridge: Bridge, *, timeout: float = 2.0) -> None:
        self._bridge = bridge
        self._timeout = timeout
        self._last_cause = ""

    async def readiness(self) -> Readiness:
        cause = ""
        # The bridge's own timeout leaves room for the answer; the outer bound is the promise.
        with trio.move_on_after(self._timeout * 0.9):
            try:
                problem = await schema_problem(self._bridge, timeout=self._timeout * 0.75)
            except Exception as error:
                cause = f"{type(error).__name__}: {error}"
            else:
                self._last_cause = ""
                if problem is not None:
                    return Readiness(False, problem)
                return Readiness(True, "Postgres answers and the schema is current")
        cause = cause or f"no answer within {self._timeout * 0.9:.1f} s"
        if cause != self._last_cause:
            self._last_cause = cause
            log.warning("not ready: Postgres does not answer (%s)", cause)
        return Readiness(False, NO_ANSWER)
