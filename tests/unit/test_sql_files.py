"""Every named query the code uses exists, and the migrations are well formed."""

import re
from pathlib import Path

from mg.postgres.sql_files import migrations, parse_queries, queries

MG = Path(__file__).resolve().parents[2] / "mg"


def test_every_query_named_in_the_code_exists() -> None:
    used = set()
    for path in MG.rglob("*.py"):
        used |= set(re.findall(r'query\("([a-z_0-9]+)"\)', path.read_text()))
    assert used, "expected the code to use named queries"
    missing = used - set(queries())
    assert not missing


def test_every_named_query_is_used_somewhere() -> None:
    """A query no code names is dead SQL: its name appears quoted in mg/, tools/ or tests/
    (``query("x")``, or a tuple of names run in turn)."""
    code = "\n".join(
        path.read_text()
        for folder in ("mg", "tools", "tests")
        for path in (MG.parent / folder).rglob("*.py")
        if path.name != "test_sql_files.py"
    )
    unused = [name for name in queries() if f'"{name}"' not in code]
    assert not unused


def test_migrations_are_numbered_from_one() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))


def test_query_blocks_are_split_by_name() -> None:
    text = "-- name: a\nSELECT 1;\n\n-- name: b\n-- a comment\nSELECT 2\n"
    assert parse_queries(text, "x") == {"a": "SELECT 1", "b": "-- a comment\nSELECT 2"}
