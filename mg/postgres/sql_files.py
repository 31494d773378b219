"""Loading SQL from the repository's ``sql/`` directory: migrations and named queries.

Python never builds SQL from strings: every statement lives in a ``.sql`` file. Query files hold
blocks introduced by ``-- name: <name>``; each block is one statement.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def sql_dir() -> Path:
    """``sql/`` next to the ``mg`` package (editable install or checkout), else the copy
    installed as data files under ``<prefix>/share/mg/sql``."""
    beside = Path(__file__).resolve().parents[2] / "sql"
    if beside.is_dir():
        return beside
    installed = Path(sys.prefix) / "share" / "mg" / "sql"
    if installed.is_dir():
        return installed
    raise FileNotFoundError(f"mg's sql/ directory is missing (looked at {beside} and {installed})")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    text: str


def migrations() -> list[Migration]:
    """Numbered migrations ``NNNN_name.sql`` in order."""
    found = []
    for path in sorted((sql_dir() / "migrations").glob("*.sql")):
        number, _, name = path.stem.partition("_")
        found.append(Migration(int(number), name, path.read_text(encoding="utf-8")))
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
