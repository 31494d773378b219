"""One leader per sink and role across the cluster, by a session-level advisory lock.

The sequencer and the retention pruner of a sink each need exactly one node at work. Every node
runs a ``Leadership`` per role: it opens a dedicated connection and asks for the role's advisory
lock there (``take_lead``); one node gets it and runs ``work`` on that same connection, the
others wait inside Postgres. So:

- the work can only run while its node leads (the lock and the work share the connection);
- when the leader dies, its backend ends, the lock is free, and a waiting node leads at once
  (a killed process closes its sockets; a vanished host is caught by the keepalives and
  connection checks set below, within about 15 seconds);
- when the leader's connection drops, ``lost`` fires and the leader steps down at once.

Failures mean back-off and another try, never an exit.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Awaitable, Callable

import trio

from mg.postgres.bridge.interface import Bridge, DedicatedSession
from mg.postgres.failures import translate

log = logging.getLogger("mg.sink")

MAX_BACKOFF = 10.0
CONNECTION_SETTINGS = {
    # A leader whose host vanishes must not keep the lock for the two hours of default
    # keepalives: the server drops the connection after about 5 + 3 * 3 seconds of silence, or
    # when it notices the client is gone while waiting for the lock.
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "3",
    "tcp_keepalives_count": "3",
    "client_connection_check_interval": "5000",
    # What a reader has seen must survive a crash of Postgres, or its position could be given
    # to another event afterwards; this also makes the outbox rows moved durable (the WAL is
    # flushed in order), even where the server's default is asynchronous commit.
    "synchronous_commit": "on",
    # Candidates wait for the lock as long as it takes, and a leader may sit idle between
    # batches: server-wide timeouts must not end either (batches have their own bound).
    "statement_timeout": "0",
    "lock_timeout": "0",
    "idle_session_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
}

Work = Callable[[DedicatedSession], Awaitable[None]]


class Leadership:
    def __init__(self, bridge: Bridge, role: str, sink: str, take_lead: Work, work: Work) -> None:
        self._bridge = bridge
        self._role = role
        self._sink = sink
        self._take_lead = take_lead
        self._work = work
        self.leading = False
        # Operators (and tests) find the leader in pg_stat_activity by this name.
        self.application_name = f"mg {os.getpid()} {role} {sink}"[:63]

    async def run(self, doing: str) -> None:
        """Lead whenever this node can; never returns (cancel it to stop). ``doing`` names the
        work in storage errors ("sequencing")."""
        backoff = 0.1
        while True:
            try:
                await self._lead_while_possible()
                log.warning(
                    "%s of sink %r lost its connection; stepping down", self._role, self._sink
                )
            except Exception as error:
                if translate(error, doing=doing) is None:
                    log.error("%s of sink %r failed", self._role, self._sink, exc_info=error)
                else:
                    log.warning("%s of sink %r stepped down: %s", self._role, self._sink, error)
            else:
                backoff = 0.1
            await trio.sleep(backoff * (1 + random.random() / 2))
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _lead_while_possible(self) -> None:
        settings = {**CONNECTION_SETTINGS, "application_name": self.application_name}
        async with self._bridge.dedicated(server_settings=settings) as session:
            await self._take_lead(session)  # waits here while another node leads
            log.info("%s of sink %r is leading", self._role, self._sink)
            self.leading = True
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_step_down_when_lost, session, nursery.cancel_scope)
                    await self._work(session)
            finally:
                self.leading = False


async def _step_down_when_lost(session: DedicatedSession, scope: trio.CancelScope) -> None:
    await session.lost.wait()
    scope.cancel()
