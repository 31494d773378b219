"""No merge left its conflict markers in what the repository tracks (README.md once held two
sets and every test still passed: the doc-snippet tests read only the fenced blocks)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^(<{7}|>{7})( |$)", re.MULTILINE)


SUFFIXES = {".md", ".py", ".toml", ".sql", ".html", ".js", ".css", ".txt"}
SKIPPED = {"build", "dist", "bench-results", "node_modules"}


def _files() -> list[Path]:
    """What git tracks; in a copy without ``.git``, the tree but hidden and build folders."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout.split(b"\0")
        return [ROOT / name.decode() for name in listed if name]
    except (OSError, subprocess.CalledProcessError):
        return [
            path
            for path in ROOT.rglob("*")
            if not any(
                part.startswith(".") or part in SKIPPED for part in path.relative_to(ROOT).parts
            )
        ]


def test_no_tracked_text_file_holds_conflict_markers() -> None:
    found = [
        str(path.relative_to(ROOT))
        for path in _files()
        if path.suffix in SUFFIXES
        and path.is_file()
        and MARKER.search(path.read_text(errors="replace"))
    ]
    assert not found
