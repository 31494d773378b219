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
    code = {
        ".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "mg").rglob("__init__.py")
    }
    listed = set(SETUPTOOLS["packages"])
    assert code <= listed
    assert SETUPTOOLS["package-dir"] == {"mg.sql": "sql"}
    # The rest are folders of data: each exists, and its files are package data.
    data = listed - code
    assert {"mg.sql.migrations", "mg.sql.queries", "mg.console.templates"} <= data
    for package in data:
        parts = package.split(".")
        folder = (
            ROOT / "sql" / Path(*parts[2:]) if parts[:2] == ["mg", "sql"] else ROOT / Path(*parts)
        )
        patterns = SETUPTOOLS["package-data"].get(package, [])
        files = {path for pattern in patterns for path in folder.glob(pattern)}
        if package != "mg.sql":
            assert files, package
        unshipped = {p.name for p in folder.iterdir() if p.is_file()} - {p.name for p in files}
        assert not unshipped, (package, unshipped)


def test_a_checkout_finds_sql_at_the_top_of_the_repository() -> None:
    assert sql_dir() == ROOT / "sql"


def test_a_package_without_its_resources_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mg").mkdir()
    monkeypatch.setattr(resources, "files", lambda package: tmp_path / "mg")
    with pytest.raises(ResourceMissing, match="mg's sql/ resources are missing"):
        resources.resource_dir("sql")
