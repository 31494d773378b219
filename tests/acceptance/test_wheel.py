"""``pip install mg`` from a wheel is as good as the checkout: the wheel is built here (no
network, no build isolation), installed into a fresh virtual environment whose dependencies come
from this one, and ``mg demo`` runs from it to completion, far from any checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.cli import ROOT


def run(*command: str | Path, cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_demo_runs_from_an_installed_wheel(tmp_path: Path) -> None:
    # Nothing of the caller's: no checkout on the path, no mg settings.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("MG_")}
    env["PIP_NO_INDEX"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # Built from a copy of what the build reads: a build leaves build/ and *.egg-info behind.
    source = tmp_path / "source"
    for name in ("mg", "sql"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    run(
        sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--no-build-isolation",
        "--wheel-dir", wheels, cwd=tmp_path, env=env, timeout=120,
    )  # fmt: skip
    [wheel] = wheels.glob("mg-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    migrations = sorted(p.name for p in (ROOT / "sql" / "migrations").glob("*.sql"))
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("mg/sql/migrations/")) == (
        migrations
    )
    assert "mg/sql/queries/machines.sql" in names
    for folder in ("templates", "static"):
        shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith(f"mg/console/{folder}/")}
        assert shipped == {p.name for p in (ROOT / "mg" / "console" / folder).iterdir()}

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", venv, cwd=tmp_path, env=env,
        timeout=120)  # fmt: skip
    python = venv / "bin" / "python"
    # --force-reinstall: this environment may have mg installed (editable); the venv gets its own.
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", wheel,
        cwd=tmp_path, env=env, timeout=120)  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run(python, "-c", "import mg, mg.postgres.sql_files as s; print(mg.__file__); "
                "print(s.sql_dir())", cwd=elsewhere, env=env, timeout=60)  # fmt: skip
    package, sql = where.split()
    assert Path(package).is_relative_to(venv)
    assert Path(sql) == Path(package).parent / "sql"

    out = run(venv / "bin" / "mg", "demo", cwd=elsewhere, env=env, timeout=120)
    assert "sink 'main': chain intact" in out
    assert "done: the node and Postgres are stopped" in out
