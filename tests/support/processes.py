"""mg nodes as real processes (``python -m mg serve``), for tests that kill, signal or restart
them. The node's log is JSON lines on stderr; the URL comes from its "serving on" line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tomllib
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """A TOML file from a dict of tables (enough TOML for tests: tables, strings, numbers,
    lists and inline tables one level deep)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(v)

    def table(prefix: str, data: dict[str, Any]) -> None:
        scalars = {k: v for k, v in data.items() if not (isinstance(v, dict) and _is_table(v))}
        if prefix:
            lines.append(f"[{prefix}]")
        for key, item in scalars.items():
            lines.append(f"{key} = {value(item)}")
        lines.append("")
        for key, item in data.items():
            if key not in scalars:
                table(f"{prefix}.{key}" if prefix else key, item)

    table("", config)
    path.write_text("\n".join(lines))
    tomllib.loads(path.read_text())  # fail here, not in the node, if the writer is wrong
    return path


def _is_table(value: dict[str, Any]) -> bool:
    return any(isinstance(v, dict) for v in value.values()) or not value or "__table__" in value


class NodeProcess:
    """``python -m mg serve`` in a child process."""

    def __init__(
        self, config: Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        """``cwd``: where to run it (``python -m`` puts the working directory first on the path,
        so a node of other code runs from elsewhere than this checkout)."""
        self.config = config
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.process: trio.Process | None = None
        self.url = ""
        self.lines: list[dict[str, Any]] = []
        self._serving = trio.Event()

    async def start(
        self, nursery: trio.Nursery, timeout: float = 60.0, *, ready: bool = True
    ) -> str:
        """Start the node; return its URL once it serves (and, with ``ready``, once
        ``/health/ready`` says it can take requests)."""
        self.process = await nursery.start(
            partial(
                trio.run_process,
                [sys.executable, "-m", "mg", "serve", "--config", str(self.config)],
                stderr=-1,
                stdout=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                check=False,
            )
        )
        nursery.start_soon(self._read, self.process)
        with trio.fail_after(timeout):
            await self._serving.wait()
            if ready:
                await self.wait_ready()
        return self.url

    async def wait_ready(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, trust_env=False) as client:
            while True:
                try:
                    if (await client.get("/health/ready")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.05)

    async def _read(self, process: trio.Process) -> None:
        assert process.stderr is not None
        buffer = b""
        async for chunk in process.stderr:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                try:
                    line = json.loads(raw)
                except ValueError:
                    line = {"message": raw.decode(errors="replace"), "raw": True}
                self.lines.append(line)
                message = str(line.get("message", ""))
                if message.startswith("mg is serving on "):
                    self.url = message.removeprefix("mg is serving on ").strip()
                    self._serving.set()

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    async def wait(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        with trio.fail_after(timeout):
            return await self.process.wait()

    def messages(self) -> list[str]:
        return [str(line.get("message", "")) for line in self.lines]
