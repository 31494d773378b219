"""The console's templates and static files travel in the wheel: every one of them matches a
package-data glob of pyproject.toml, and the pages reference only files that exist."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import mg.console

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = Path(mg.console.__file__).resolve().parent


def test_every_template_and_static_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    # Globs of mg.console itself, or of its data folders listed as packages (mg.console.static).
    globs = [
        glob if package == "mg.console" else f"{package.removeprefix('mg.console.')}/{glob}"
        for package, patterns in config["tool"]["setuptools"]["package-data"].items()
        if package == "mg.console" or package.startswith("mg.console.")
        for glob in patterns
    ]
    files = [
        path.relative_to(CONSOLE).as_posix()
        for folder in ("templates", "static")
        for path in (CONSOLE / folder).rglob("*")
        if path.is_file()
    ]
    assert files
    missing = [name for name in files if not any(fnmatch(name, glob) for glob in globs)]
    assert missing == []


def test_templates_load_only_the_package_s_own_static_files() -> None:
    static = {path.name for path in (CONSOLE / "static").iterdir()}
    for template in (CONSOLE / "templates").glob("*.html"):
        text = template.read_text(encoding="utf-8")
        for url in re.findall(r'(?:src|href)="(/ui/static/[^"]+|https?:[^"]+)"', text):
            assert url.startswith("/ui/static/"), (template.name, url)
            assert url.removeprefix("/ui/static/") in static
