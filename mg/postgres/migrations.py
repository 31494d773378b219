"""Applying ``sql/migrations`` in order, once, even when several nodes start together; and
deciding whether this mg's code may run against the database's schema at all.

All pending migrations are applied in one transaction that first takes a transaction-level
advisory lock: a second node starting at the same moment waits, then finds nothing left to do;
a runner killed half-way leaves no trace (Postgres DDL is transactional). The lock dies with the
transaction, so a cancelled runner can never leave it behind on a pooled connection. A migration
file edited after it was applied is refused (its checksum no longer matches).

Schema versions (docs/upgrading.md). The code's schema version is the number of the last
migration it knows. ``mg_schema`` records the database's version and the oldest code schema
version that may still run against it (the highest ``compatible-with`` of the migrations
applied). A node runs against a schema newer than its code as long as that oldest version does
not exceed its own, and refuses (``SchemaIncompatible``) otherwise. A node starting up applies
pending migrations only if they leave no node that may be running behind; a migration that would
(a contract step) waits for an operator's ``mg migrate``, once older nodes are gone.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from mg.postgres.bridge.interface import Bridge
from mg.postgres.sql_files import Migration, migrations, query
from mg.startup import SchemaIncompatible

log = logging.getLogger("mg.migrations")

UPGRADING = "see docs/upgrading.md"


class MigrationError(SchemaIncompatible):
    pass


def checksum(migration: Migration) -> str:
    return hashlib.sha256(migration.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SchemaState:
    """What the database says: applied migrations (version -> checksum) and its record."""

    applied: dict[int, str]
    recorded: tuple[int, int] | None  # (version, oldest_compatible) from mg_schema


@dataclass(frozen=True, slots=True)
class Plan:
    """This code (``code_version``) against the database as it is (``version``,
    ``oldest_compatible``), and what applying ``pending`` would make of it."""

    code_version: int
    version: int
    oldest_compatible: int
    pending: tuple[Migration, ...]

    @property
    def oldest_after(self) -> int:
        return max([self.oldest_compatible, *(m.compatible_with for m in self.pending)])

    @property
    def leaves_nodes_behind(self) -> bool:
        """Whether applying ``pending`` stops nodes that may be running now: code as old as
        ``oldest_compatible`` may run against a database that has a schema at all."""
        return self.version > 0 and self.oldest_after > self.oldest_compatible

    def describe(self) -> str:
        lines = [
            f"the database schema is at version {self.version} "
            f"(code of schema version {self.oldest_compatible} or newer may run against it); "
            f"this mg's code is at schema version {self.code_version}"
        ]
        if not self.pending:
            lines.append("nothing to apply")
        for m in self.pending:
            lines.append(
                f"would apply {m.version} ({m.name}): nodes of schema version "
                f"{m.compatible_with} or newer keep working"
            )
        if self.leaves_nodes_behind:
            lines.append(
                f"this leaves nodes older than schema version {self.oldest_after} behind: "
                "stop or upgrade them first"
            )
        return "\n".join(lines)


def plan(known: Sequence[Migration], state: SchemaState) -> Plan:
    """What to do, or ``SchemaIncompatible`` if this code must not run against the schema."""
    code_version = max((m.version for m in known), default=0)
    by_version = {m.version: m for m in known}
    for version, stored in sorted(state.applied.items()):
        migration = by_version.get(version)
        if migration is not None and stored != checksum(migration):
            raise MigrationError(
                f"migration {version} ({migration.name}) was changed after it was applied; "
                "add a new migration instead"
            )
    unknown = sorted(set(state.applied) - set(by_version))
    if state.recorded is None:
        if unknown:
            raise MigrationError(
                f"the database has migrations {unknown} that this mg does not know: "
                f"it was migrated by a newer mg; {UPGRADING}"
            )
        version = max(state.applied, default=0)
        oldest = max((by_version[v].compatible_with for v in state.applied), default=0)
    else:
        version, oldest = state.recorded
    if oldest > code_version:
        raise MigrationError(
            f"the database schema is at version {version} and runs only with mg code of schema "
            f"version {oldest} or newer; this mg's code is at schema version {code_version}: "
            f"upgrade mg; {UPGRADING}"
        )
    pending = tuple(m for m in known if m.version not in state.applied)
    if pending and version > code_version:
        raise MigrationError(
            f"the database schema is at version {version}, newer than this mg's "
            f"{code_version}, yet lacks migrations {[m.version for m in pending]}"
        )
    return Plan(code_version, version, oldest, pending)


async def _read_state(conn: asyncpg.Connection) -> SchemaState:
    applied: dict[int, str] = {}
    if await conn.fetchval(query("migrations_table_exists")):
        rows = await conn.fetch(query("applied_migrations"))
        applied = {row["version"]: row["checksum"] for row in rows}
    recorded = None
    if await conn.fetchval(query("schema_table_exists")):
        row = await conn.fetchrow(query("schema_record"))
        if row is not None:
            recorded = (row["version"], row["oldest_compatible"])
    return SchemaState(applied, recorded)


async def _apply(
    conn: asyncpg.Connection, known: Sequence[Migration], *, leave_behind: bool
) -> list[int]:
    async with conn.transaction():
        await conn.execute(query("migration_lock"))
        await conn.execute(query("create_migrations_table"))
        await conn.execute(query("create_schema_table"))
        state = await _read_state(conn)
        found = plan(known, state)
        if found.leaves_nodes_behind and not leave_behind:
            first = next(m for m in found.pending if m.compatible_with > found.oldest_compatible)
            raise MigrationError(
                f"migration {first.version} ({first.name}) runs only with mg code of schema "
                f"version {first.compatible_with} or newer, and nodes of schema version "
                f"{found.oldest_compatible} may still run against this database: stop or "
                f"upgrade them, then apply it with `mg migrate`; {UPGRADING}"
            )
        for migration in found.pending:
            await conn.execute(migration.text)
            await conn.execute(
                query("record_migration"), migration.version, migration.name, checksum(migration)
            )
        if found.pending or state.recorded is None:
            version = max([found.version, *(m.version for m in found.pending)])
            await conn.execute(query("record_schema"), version, found.oldest_after)
        if found.version > found.code_version:
            log.info(
                "the database schema is at version %d, newer than this mg's %d, which may "
                "still run against it",
                found.version,
                found.code_version,
            )
        return [m.version for m in found.pending]


async def migrate(
    bridge: Bridge,
    *,
    timeout: float | None = 300.0,
    leave_behind: bool = False,
    known: Sequence[Migration] | None = None,
) -> list[int]:
    """Apply every pending migration; returns the versions applied by this call.

    ``leave_behind``: apply even migrations that stop nodes of older code which may still be
    running (the operator's ``mg migrate``; a node starting up refuses them instead).
    ``known``: the migrations of this code (tests stand in other releases with it).
    """
    wanted = migrations() if known is None else known

    async def work(conn: asyncpg.Connection) -> list[int]:
        return await _apply(conn, wanted, leave_behind=leave_behind)

    return await bridge.run(work, timeout=timeout)


async def check(
    bridge: Bridge, *, timeout: float | None = 30.0, known: Sequence[Migration] | None = None
) -> Plan:
    """What ``migrate`` would do, changing nothing; ``SchemaIncompatible`` as ``migrate``."""
    wanted = migrations() if known is None else known

    async def work(conn: asyncpg.Connection) -> SchemaState:
        return await _read_state(conn)

    return plan(wanted, await bridge.run(work, timeout=timeout))


async def schema_problem(
    bridge: Bridge, *, timeout: float | None = 5.0, known: Sequence[Migration] | None = None
) -> str | None:
    """Why this code cannot serve on the database's schema now, or ``None`` (for readiness)."""
    try:
        found = await check(bridge, timeout=timeout, known=known)
    except SchemaIncompatible as error:
        return str(error)
    if found.pending:
        return (
            "the database schema is not migrated to this mg's version "
            f"(migrations {[m.version for m in found.pending]} pending)"
        )
    return None


async def is_current(bridge: Bridge, *, timeout: float | None = 5.0) -> bool:
    """Whether this code can serve on the database's schema (every migration it knows applied,
    and no newer one that left it behind)."""
    return await schema_problem(bridge, timeout=timeout) is None
