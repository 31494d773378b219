"""Schema versions: which code may run against which schema, and what a node may apply by
itself (docs/upgrading.md). Pure: the database's state is given."""

from __future__ import annotations

import pytest

from mg.postgres.migrations import Plan, SchemaState, checksum, plan
from mg.postgres.sql_files import Migration, compatible_with
from mg.startup import SchemaIncompatible


def release(*compatible: int) -> list[Migration]:
    """Migrations 1..n; migration i declares ``compatible[i-1]``."""
    return [
        Migration(i, f"m{i}", f"-- compatible-with: {c}\nSELECT {i}", c)
        for i, c in enumerate(compatible, start=1)
    ]


def applied(migrations: list[Migration], record: tuple[int, int] | None = None) -> SchemaState:
    return SchemaState({m.version: checksum(m) for m in migrations}, record)


# Migrations 1 and 2 stand for 0001-0006 (no header: their own version); 3 expands (release 2's
# code keeps working), 4 contracts (it needs release 3's code).
OLD = release(1, 2)
EXPAND = release(1, 2, 2)
CONTRACT = release(1, 2, 2, 3)


def test_a_fresh_database_gets_every_migration() -> None:
    found = plan(CONTRACT, applied([]))
    assert [m.version for m in found.pending] == [1, 2, 3, 4]
    assert found.oldest_after == 3
    assert not found.leaves_nodes_behind


def test_an_expand_migration_keeps_the_previous_release_running() -> None:
    found = plan(EXPAND, applied(OLD, (2, 2)))
    assert [m.version for m in found.pending] == [3]
    assert (found.oldest_after, found.leaves_nodes_behind) == (2, False)
    # The previous release's code against the expanded schema: runs, applies nothing.
    old = plan(OLD, applied(EXPAND, (3, 2)))
    assert (old.version, old.code_version, old.pending) == (3, 2, ())


def test_a_contract_migration_would_leave_older_nodes_behind() -> None:
    found = plan(CONTRACT, applied(EXPAND, (3, 2)))
    assert found.leaves_nodes_behind
    assert "leaves nodes older than schema version 3 behind" in found.describe()


def test_code_left_behind_by_the_schema_refuses_to_run() -> None:
    with pytest.raises(SchemaIncompatible, match="schema version 3 or newer; this mg's code is"):
        plan(OLD, applied(CONTRACT, (4, 3)))


def test_a_schema_newer_than_the_code_and_unrecorded_is_refused() -> None:
    with pytest.raises(SchemaIncompatible, match=r"migrations \[3\] that this mg does not know"):
        plan(OLD, applied(EXPAND))


def test_a_database_before_schema_records_gets_its_oldest_version_from_its_migrations() -> None:
    # 0006's case: a database at 0005 (no record) and code with 0006, which has no header.
    found = plan(release(1, 2, 3), applied(release(1, 2)))
    assert (found.version, found.oldest_compatible) == (2, 2)
    assert found.leaves_nodes_behind


def test_a_changed_migration_is_refused() -> None:
    changed = [*OLD[:1], Migration(2, "m2", "SELECT 'changed'", 2)]
    with pytest.raises(SchemaIncompatible, match="changed after it was applied"):
        plan(changed, applied(OLD, (2, 2)))


def test_describe_lists_what_would_run() -> None:
    text = Plan(2, 2, 2, tuple(EXPAND[2:])).describe()
    assert "would apply 3 (m3): nodes of schema version 2 or newer keep working" in text
    assert "nothing to apply" in Plan(2, 2, 2, ()).describe()


def test_compatible_with_defaults_to_the_migrations_own_version() -> None:
    assert compatible_with("CREATE TABLE t ()", 6, "0006_x.sql") == 6
    assert compatible_with("-- compatible-with: 6\nALTER TABLE t ADD c int", 7, "0007_x.sql") == 6
    with pytest.raises(RuntimeError, match="between 0 and 7"):
        compatible_with("-- compatible-with: 8\n", 7, "0007_x.sql")
