"""Loading SQL from mg's ``sql/`` directory: migrations and named queries.

Python never builds SQL from strings: every statement lives in a ``.sql`` file. Query files hold
blocks introduced by ``-- name: <name>``; each block is one statement.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mg.resources import resource_dir

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_COMPATIBLE = re.compile(r"^--\s*compatible-with:\s*(\d+)\s*$", re.MULTILINE)


def sql_dir() -> Path:
    """``sql/``: in the package when installed, at the top of a checkout (``mg.resources``)."""
    return resource_dir("sql")


@dataclass(frozen=True, slots=True)
class Migration:
    """A numbered migration. ``compatible_with``: the oldest code schema version (the number of
    the last migration a release of mg knows) that still runs correctly once this migration is
    applied. Declared in the file by a line ``-- compatible-with: N``; a file without one
    (0001-0006, written before the rule) works with its own version's code only."""

    version: int
    name: str
    text: str
    compatible_with: int


def compatible_with(text: str, version: int, source: str) -> int:
    found = [int(match.group(1)) for match in _COMPATIBLE.finditer(text)]
    if len(found) > 1:
        raise RuntimeError(f"{source} declares compatible-with more than once")
    oldest = found[0] if found else version
    if not 0 <= oldest <= version:
        raise RuntimeError(f"{source}: compatible-with must be between 0 and {version}")
    return oldest


def migrations() -> list[Migration]:
    """Numbered migrations ``NNNN_name.sql`` in order."""
    found = []
    for path in sorted((sql_dir() / "migrations").glob("*.sql")):
        number, _, name = path.stem.partition("_")
        text = path.read_text(encoding="utf-8")
        version = int(number)
        found.append(Migration(version, name, text, compatible_with(text, version, path.name)))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


def parse_queries(text: str, source: str) -> dict[str, str]:
    names = list(_NAME.finditer(text))
    queries: dict[str, str] = {}
    for index, match in enumerate(names):
        end = names[index + 1].start() if index + 1 < len(names) else len(text)
        body = text[match.end() : end].strip().rstrip(";").strip()
        name = match.group(1)
        if name in queries:
            raise RuntimeError(f"query {name!r} is defined twice in {source}")
        if not body:
            raise RuntimeError(f"query {name!r} in {source} is empty")
        queries[name] = body
    return queries


@cache
def queries() -> Mapping[str, str]:
    """Every named query of ``sql/queries/*.sql``; names are unique across files."""
    found: dict[str, str] = {}
    for path in sorted((sql_dir() / "queries").glob("*.sql")):
        for name, body in parse_queries(path.read_text(encoding="utf-8"), path.name).items():
            if name in found:
                raise RuntimeError(f"query {name!r} is defined in two files")
            found[name] = body
    return found


def query(name: str) -> str:
    return queries()[name]
