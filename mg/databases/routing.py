"""The one map from a namespace or a sink to its database, behind the ports the service and
the sink reader use (``Storage``, ``Nudges``, ``SinkLog``, ``Wakeable``). A namespace whose
database is not ready answers ``503 unavailable`` here, before any connection is tried."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import trio

from mg.core.deadline import Deadline
from mg.core.model import Direction, Machine, Range, Status
from mg.core.sink import SinkBounds, SinkEvent, readers_topic
from mg.databases.unit import Database
from mg.errors import Unavailable
from mg.observability.health import Readiness
from mg.postgres.state_cache import StateCache
from mg.postgres.wakeups import Waiter
from mg.service.ports import NotificationClaim, SearchRow, StepSession, TimerClaim


class Routes:
    """Which database holds each namespace and sink; the default one holds anything else."""

    def __init__(self, databases: Sequence[Database]) -> None:
        self.databases = tuple(databases)
        self.default = self.databases[0]
        self._by_ns = {ns: db for db in databases for ns in db.placement.namespaces}
        self._by_sink = {sink: db for db in databases for sink in db.placement.sinks}

    def of_namespace(self, ns: str) -> Database:
        return self._ready(self._by_ns.get(ns, self.default), f"namespace {ns!r}")

    def of_sink(self, sink: str) -> Database:
        return self._ready(self._by_sink.get(sink, self.default), f"sink {sink!r}")

    def of_sink_quietly(self, sink: str) -> Database:
        return self._by_sink.get(sink, self.default)

    def _ready(self, database: Database, what: str) -> Database:
        if not database.ready.is_set():
            raise Unavailable(
                f"the database of {what} ({database.name}) does not answer yet or its schema "
                "is being migrated"
            )
        return database

    def pool_stats(self) -> Mapping[str, Any]:
        total: dict[str, int] = {"size": 0, "idle": 0, "max": 0}
        for db in self.databases:
            stats = db.bridge.pool_stats
            for key in total:
                total[key] += int(stats.get(key, 0))
        return total


class RoutedStorage:
    """``Storage`` over every database of the node."""

    def __init__(self, routes: Routes, cache: StateCache) -> None:
        self._routes = routes
        # One cache for the node: keys are (namespace, id) and a namespace has one database.
        self.cache = cache

    @asynccontextmanager
    async def step(
        self, ns: str, machine_id: str, deadline: Deadline
    ) -> AsyncIterator[StepSession]:
        async with self._routes.of_namespace(ns).storage.step(ns, machine_id, deadline) as step:
            yield step

    async def get(self, ns: str, machine_id: str, selection: Range) -> Machine | None:
        return await self._routes.of_namespace(ns).storage.get(ns, machine_id, selection)

    async def resolve_tag(self, ns: str, tag: str) -> str | None:
        return await self._routes.of_namespace(ns).storage.resolve_tag(ns, tag)

    async def search(
        self, ns: str, status: Status | None, after_id: str, limit: int
    ) -> list[SearchRow]:
        storage = self._routes.of_namespace(ns).storage
        return await storage.search(ns, status, after_id, limit)

    async def enqueue_notification(
        self, ns: str, machine_id: str, args: Any, selection: Range, trace: str, now: datetime
    ) -> int | None:
        storage = self._routes.of_namespace(ns).storage
        return await storage.enqueue_notification(ns, machine_id, args, selection, trace, now)

    # The loops of each database use its own storage; through the map, the default one's.
    async def ping(self) -> None:
        await self._routes.default.storage.ping()

    async def claim_timers(
        self, now: datetime, limit: int, owner: str, lease: float
    ) -> list[TimerClaim]:
        return await self._routes.default.storage.claim_timers(now, limit, owner, lease)

    async def next_wake(self) -> datetime | None:
        return await self._routes.default.storage.next_wake()

    async def claim_notifications(
        self, now: datetime, limit: int, lease: float
    ) -> list[NotificationClaim]:
        return await self._routes.default.storage.claim_notifications(now, limit, lease)

    async def next_notification(self, now: datetime) -> datetime | None:
        return await self._routes.default.storage.next_notification(now)


class RoutedNudges:
    """``Nudges`` to the loops of the database that holds the namespace or the sink."""

    def __init__(self, routes: Routes) -> None:
        self._routes = routes
        self._by_ns = {ns: db for db in routes.databases for ns in db.placement.namespaces}

    def _of(self, ns: str) -> Database:
        return self._by_ns.get(ns, self._routes.default)

    def timer_scheduled(self, ns: str, at: datetime) -> None:
        self._of(ns).nudges.timer_scheduled(ns, at)

    def notification_queued(self, ns: str) -> None:
        self._of(ns).nudges.notification_queued(ns)

    def events_written(self, sinks: tuple[str, ...]) -> None:
        for sink in sinks:
            self._routes.of_sink_quietly(sink).nudges.events_written((sink,))


class RoutedSinkLog:
    def __init__(self, routes: Routes) -> None:
        self._routes = routes

    async def read(
        self, sink: str, after: int | None, limit: int, direction: Direction
    ) -> list[SinkEvent]:
        return await self._routes.of_sink(sink).sinks.read(sink, after, limit, direction)

    async def bounds(self, sink: str) -> SinkBounds:
        return await self._routes.of_sink(sink).sinks.bounds(sink)


class RoutedWakeups:
    """The sink readers' wake-ups, each on the listener of the sink's database."""

    def __init__(self, routes: Routes) -> None:
        self._by_topic = {
            readers_topic(sink): db.wakeups
            for db in routes.databases
            for sink in db.placement.sinks
        }
        self._default = routes.default.wakeups

    def arm(self, topic: str) -> Waiter:
        return self._by_topic.get(topic, self._default).arm(topic)

    def wake_local(self, topic: str) -> None:
        self._by_topic.get(topic, self._default).wake_local(topic)


STARTING = "starting: Postgres answers, the node is migrating the schema or starting its loops"


class RoutedHealth:
    """Ready when every database is; the answer names each database and its state."""

    def __init__(self, routes: Routes) -> None:
        self._routes = routes

    async def readiness(self) -> Readiness:
        databases = self._routes.databases
        found: list[Readiness] = [Readiness(False, "")] * len(databases)

        async def check(index: int, database: Database) -> None:
            answer = await database.health.readiness()
            if answer.ready and not database.ready.is_set():
                # Postgres may answer while the node still migrates or starts this database's
                # loops; its requests get 503 until then, so a balancer must not be told ready.
                answer = Readiness(False, STARTING)
            found[index] = answer

        async with trio.open_nursery() as nursery:
            for index, database in enumerate(databases):
                nursery.start_soon(check, index, database)
        if len(databases) == 1:
            return found[0]
        states = {
            db.name: "ready" if answer.ready else answer.reason
            for db, answer in zip(databases, found, strict=True)
        }
        down = [name for name, state in states.items() if state != "ready"]
        if not down:
            return Readiness(True, "every database answers and its schema is current", states)
        reason = "; ".join(f"database {name}: {states[name]}" for name in down)
        return Readiness(False, reason, states)
