"""The console's reads over several databases: each namespace's and sink's from its own."""

from __future__ import annotations

import trio

from mg.console.reads import ConsoleReads, Overview, QueuedNotification
from mg.core.sink import SinkBounds, StoredLink
from mg.databases.routing import Routes
from mg.databases.unit import Database
from mg.errors import MgError
from mg.postgres.console_reads import PostgresConsoleReads


class RoutedChain:
    """A sink's chain (``ChainSource``) read from the sink's database."""

    def __init__(self, routes: Routes) -> None:
        self._routes = routes

    async def chain_page(self, sink: str, start: int, limit: int) -> list[StoredLink]:
        return await self._routes.of_sink(sink).sinks.chain_page(sink, start, limit)

    async def hash_at(self, sink: str, position: int) -> bytes | None:
        return await self._routes.of_sink(sink).sinks.hash_at(sink, position)

    async def bounds(self, sink: str) -> SinkBounds:
        return await self._routes.of_sink(sink).sinks.bounds(sink)


class RoutedConsoleReads:
    """``ConsoleReads`` per database; the overview is every database's, merged."""

    def __init__(self, routes: Routes, namespaces: tuple[str, ...]) -> None:
        self._routes = routes
        self._order = {ns: index for index, ns in enumerate(namespaces)}
        self._reads: dict[str, ConsoleReads] = {
            db.name: PostgresConsoleReads(db.bridge, db.placement.namespaces)
            for db in routes.databases
        }

    async def overview(self, sinks: tuple[str, ...]) -> Overview:
        merged = Overview({}, {})

        async def one(db: Database) -> None:
            held = tuple(s for s in sinks if s in db.placement.sinks)
            try:
                found = await self._reads[db.name].overview(held)
            except MgError as error:
                # The person on call opens the console during an outage: the other databases'
                # namespaces are shown, this one's say why they are not.
                why = f"database {db.name}: {error.message}"
                merged.unavailable.update(dict.fromkeys((*db.placement.namespaces, *held), why))
                return
            merged.namespaces.update(found.namespaces)
            merged.sinks.update(found.sinks)

        async with trio.open_nursery() as nursery:
            for db in self._routes.databases:
                nursery.start_soon(one, db)
        # In the configuration's order, as with one database.
        last = len(self._order)
        return Overview(
            dict(
                sorted(merged.namespaces.items(), key=lambda i: (self._order.get(i[0], last), i[0]))
            ),
            {sink: merged.sinks[sink] for sink in sinks if sink in merged.sinks},
            merged.unavailable,
        )

    async def count(self, ns: str, status: str) -> int:
        return await self._reads[self._routes.of_namespace(ns).name].count(ns, status)

    async def notifications(self, ns: str, machine_id: str, limit: int) -> list[QueuedNotification]:
        reads = self._reads[self._routes.of_namespace(ns).name]
        return await reads.notifications(ns, machine_id, limit)
