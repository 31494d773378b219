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


def test_migrations_are_numbered_from_one() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))


def test_query_blocks_are_split_by_name() -> None:
    text = "-- name: a\nSELECT 1;\n\n-- name: b\n-- a comment\nSELECT 2\n"
    assert parse_queries(text, "x") == {"a": "SELECT 1", "b": "-- a comment\nSELECT 2"}
