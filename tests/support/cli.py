"""Running the ``mg`` command in tests: as a real process (``python -m mg ...``), or in a worker
thread of the test's process (``mg.cli.main``, its output captured) where a process per call
would only add start-up time."""

from __future__ import annotations

import io
import json
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from mg.cli import main

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines()]


def environment(**extra: str) -> dict[str, str]:
    """The environment of an ``mg`` process: this checkout first on the path, none of the
    caller's ``MG_*`` defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return {**env, **extra}


async def mg_process(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, cwd: Path | None = None
) -> Ran:
    with trio.fail_after(timeout):
        done = await trio.run_process(
            [sys.executable, "-m", "mg", *args],
            capture_stdout=True,
            capture_stderr=True,
            env=env or environment(),
            check=False,
            cwd=cwd,
        )
    return Ran(done.returncode, done.stdout.decode(), done.stderr.decode())


async def mg_thread(*args: str) -> Ran:
    """``mg.cli.main(args)`` in a worker thread. Only for commands that talk to a node: they
    read no environment but ``MG_URL``, ``MG_NS`` and ``MG_TOKEN``, so pass ``--url``/``--ns``."""

    def run() -> Ran:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit:  # argparse's usage errors
                code = int(exit.code or 0)
        return Ran(code, out.getvalue(), err.getvalue())

    return await trio.to_thread.run_sync(run)
