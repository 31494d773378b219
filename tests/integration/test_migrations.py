"""The migration runner: produces the schema, once, even when nodes start together."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from mg.postgres.bridge.factory import make_bridge
from mg.postgres.migrations import MigrationError, check, is_current, migrate, schema_problem
from mg.postgres.sql_files import Migration, migrations
from mg.startup import SchemaIncompatible
from tests.support.sql import sql


@pytest.fixture
def empty_database(postgres_server: Any) -> Iterator[str]:
    name = f"e_{uuid.uuid4().hex[:16]}"
    postgres_server.create_database(name)
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


async def test_two_runners_at_once_apply_each_migration_once(empty_database: str) -> None:
    bridges = [
        make_bridge("thread", empty_database, min_size=1, max_size=2, connect_timeout=10)
        for _ in range(2)
    ]
    results: list[list[int]] = []
    try:
        for bridge in bridges:
            await bridge.open()
        assert not await is_current(bridges[0])

        async def run(bridge: Any) -> None:
            results.append(await migrate(bridge))

        async with trio.open_nursery() as nursery:
            for bridge in bridges:
                nursery.start_soon(run, bridge)
        everything = [m.version for m in migrations()]
        assert sorted(results, key=len) == [[], everything]
        assert await migrate(bridges[0]) == []
        assert await is_current(bridges[1])
    finally:
        for bridge in bridges:
            await bridge.close()

    async with sql(empty_database) as conn:
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {
            "mg_machines",
            "mg_events",
            "mg_tags",
            "mg_notifications",
            "mg_sink_outbox",
            "mg_sink_events",
        } <= tables
        count = await conn.fetchval("SELECT count(*) FROM mg_schema_migrations")
        assert count == len(migrations())
        # An applied migration whose file changed is refused, not silently skipped.
        await conn.execute("UPDATE mg_schema_migrations SET checksum = 'x' WHERE version = 1")
    bridge = make_bridge("thread", empty_database, min_size=1, max_size=2, connect_timeout=10)
    await bridge.open()
    try:
        with pytest.raises(MigrationError, match="changed"):
            await migrate(bridge)
    finally:
        await bridge.close()


def _next(compatible_with: int, text: str = "CREATE TABLE mg_test_next (x integer)") -> Any:
    """This release's migrations plus one: the next release, expanding or contracting."""
    current = migrations()
    return [*current, Migration(len(current) + 1, "next", text, compatible_with)]


async def _schema_record(url: str) -> tuple[int, int]:
    async with sql(url) as conn:
        [row] = await conn.fetch("SELECT version, oldest_compatible FROM mg_schema")
        return (row["version"], row["oldest_compatible"])


OLDEST = max(m.compatible_with for m in migrations())
"""The oldest code schema version that runs against a database this code migrated."""


async def test_the_runner_records_the_schema_version_and_the_oldest_compatible_code(
    database_url: str,
) -> None:
    last = len(migrations())
    # 0006 has no compatible-with line: only code that knows it runs against it; later expand
    # steps (0007, 0008: compatible-with 6) keep that the oldest compatible version.
    assert await _schema_record(database_url) == (last, OLDEST)


async def test_an_expand_migration_is_applied_at_start_up_and_the_old_code_still_runs(
    database_url: str,
) -> None:
    last = len(migrations())
    bridge = make_bridge("thread", database_url, min_size=0, max_size=2, connect_timeout=10)
    await bridge.open()
    try:
        # An expand step keeps every code version the database admits (OLDEST) working.
        assert await migrate(bridge, known=_next(compatible_with=OLDEST)) == [last + 1]
        assert await _schema_record(database_url) == (last + 1, OLDEST)
        # This release's code against the next release's schema: nothing to do, ready.
        assert await migrate(bridge) == []
        assert await schema_problem(bridge) is None
        assert (await check(bridge)).version == last + 1
    finally:
        await bridge.close()


async def test_a_contract_migration_waits_for_the_operator_and_then_stops_old_code(
    database_url: str,
) -> None:
    last = len(migrations())
    following = _next(compatible_with=last + 1)
    bridge = make_bridge("thread", database_url, min_size=0, max_size=2, connect_timeout=10)
    await bridge.open()
    try:
        plan = await check(bridge, known=following)
        assert plan.leaves_nodes_behind
        # A node starting up does not apply it: nodes of this release may still run.
        with pytest.raises(SchemaIncompatible, match=f"nodes of schema version {OLDEST} may"):
            await migrate(bridge, known=following)
        assert await _schema_record(database_url) == (last, OLDEST)
        # The operator's `mg migrate` does; this release's code then refuses to run.
        assert await migrate(bridge, known=following, leave_behind=True) == [last + 1]
        with pytest.raises(SchemaIncompatible, match=f"schema version {last + 1} or newer"):
            await migrate(bridge)
        problem = await schema_problem(bridge)
        assert problem is not None
        assert "upgrade mg" in problem
    finally:
        await bridge.close()


async def test_0006_is_not_applied_by_a_node_while_nodes_of_0005_may_run(
    empty_database: str,
) -> None:
    """A database migrated by code before schema records (0005 here) and this code: 0006
    stops nodes of 0005 (docs/upgrading.md), so only the operator's `mg migrate` applies it."""
    bridge = make_bridge("thread", empty_database, min_size=0, max_size=2, connect_timeout=10)
    await bridge.open()
    try:
        await migrate(bridge, known=migrations()[:5])
        async with sql(empty_database) as conn:
            await conn.execute("DROP TABLE mg_schema")  # as the code of 0005 left it
        with pytest.raises(SchemaIncompatible, match=r"migration 6 \(notification_heads\)"):
            await migrate(bridge)
        applied = await migrate(bridge, leave_behind=True)
        assert applied == [m.version for m in migrations()[5:]]
        assert await _schema_record(empty_database) == (len(migrations()), OLDEST)
    finally:
        await bridge.close()


async def test_check_changes_nothing(empty_database: str) -> None:
    bridge = make_bridge("thread", empty_database, min_size=0, max_size=2, connect_timeout=10)
    await bridge.open()
    try:
        plan = await check(bridge)
        assert [m.version for m in plan.pending] == [m.version for m in migrations()]
    finally:
        await bridge.close()
    async with sql(empty_database) as conn:
        tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        assert await conn.fetchval(tables) == 0
