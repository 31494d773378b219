"""Applying ``sql/migrations`` in order, once, even when several nodes start together.

All pending migrations are applied in one transaction that first takes a transaction-level
advisory lock: a second node starting at the same moment waits, then finds nothing left to do;
a runner killed half-way leaves no trace (Postgres DDL is transactional). The lock dies with the
transaction, so a cancelled runner can never leave it behind on a pooled connection. A migration
file edited after it was applied is refused (its checksum no longer matches).
"""

from __future__ import annotations

import hashlib

import asyncpg

from mg.postgres.bridge.interface import Bridge
from mg.postgres.sql_files import Migration, migrations, query


class MigrationError(RuntimeError):
    pass


def checksum(migration: Migration) -> str:
    return hashlib.sha256(migration.text.encode("utf-8")).hexdigest()


async def _apply(conn: asyncpg.Connection, wanted: list[Migration]) -> list[int]:
    async with conn.transaction():
        await conn.execute(query("migration_lock"))
        await conn.execute(query("create_migrations_table"))
        applied = {row["version"]: row for row in await conn.fetch(query("applied_migrations"))}
        newer = sorted(set(applied) - {m.version for m in wanted})
        if newer:
            raise MigrationError(
                f"the database has migrations {newer} that this mg does not know: "
                "it was migrated by a newer mg"
            )
        done = []
        for migration in wanted:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != checksum(migration):
                    raise MigrationError(
                        f"migration {migration.version} ({migration.name}) was changed after "
                        "it was applied; add a new migration instead"
                    )
                continue
            await conn.execute(migration.text)
            await conn.execute(
                query("record_migration"), migration.version, migration.name, checksum(migration)
            )
            done.append(migration.version)
        return done


async def migrate(bridge: Bridge, *, timeout: float | None = 300.0) -> list[int]:
    """Apply every pending migration; returns the versions applied by this call."""
    wanted = migrations()

    async def work(conn: asyncpg.Connection) -> list[int]:
        return await _apply(conn, wanted)

    return await bridge.run(work, timeout=timeout)


async def is_current(bridge: Bridge, *, timeout: float | None = 5.0) -> bool:
    """Whether every migration this mg knows is applied (for readiness)."""
    wanted = {m.version for m in migrations()}

    async def work(conn: asyncpg.Connection) -> bool:
        if not await conn.fetchval(query("migrations_table_exists")):
            return False
        rows = await conn.fetch(query("applied_migrations"))
        return wanted <= {row["version"] for row in rows}

    return await bridge.run(work, timeout=timeout)
