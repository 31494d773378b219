"""What the build ships: every package under mg/, and sql/ mapped into the package as mg.sql
(the wheel itself is built and run in tests/acceptance/test_wheel.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mg import resources
from mg.postgres.sql_files import sql_dir
from mg.startup import ResourceMissing

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_the_build_lists_every_package_and_maps_sql_into_mg() -> None:
    found = {
        ".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "mg").rglob("__init__.py")
    }
    data = {"mg.sql", "mg.sql.migrations", "mg.sql.queries", "mg.sql.replica"}
    assert set(SETUPTOOLS["packages"]) == found | data
    assert SETUPTOOLS["package-dir"] == {"mg.sql": "sql"}
    for folder in ("migrations", "queries", "replica"):
        assert SETUPTOOLS["package-data"][f"mg.sql.{folder}"] == ["*.sql"]


def test_a_checkout_finds_sql_at_the_top_of_the_repository() -> None:
    assert sql_dir() == ROOT / "sql"


def test_a_package_without_its_resources_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mg").mkdir()
    monkeypatch.setattr(resources, "files", lambda package: tmp_path / "mg")
    with pytest.raises(ResourceMissing, match="mg's sql/ resources are missing"):
        resources.resource_dir("sql")
