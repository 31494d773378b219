"""Starting the processes ``tools/bench.py steps`` measures, and reading their first lines."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
# Child processes import mg from this checkout, whatever the editable install points at.
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
}


class LineProcess:
    """A child whose stdout is read line by line (and whose stdin may be written)."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self._buffer = b""

    @classmethod
    async def start(cls, command: list[str], *, stdin: bool = False) -> LineProcess:
        process = await trio.lowlevel.open_process(
            command,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=ENV,
        )
        return cls(process)

    async def line(self, wait: float = 120.0) -> str:
        assert self.process.stdout is not None
        with trio.fail_after(wait):
            while b"\n" not in self._buffer:
                chunk = await self.process.stdout.receive_some(65536)
                if not chunk:
                    raise RuntimeError(f"{self.process.args!r} ended early")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    async def ask(self, text: str, wait: float = 600.0) -> dict[str, Any]:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(text.encode() + b"\n")
        answer: dict[str, Any] = json.loads(await self.line(wait))
        return answer

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
        with trio.move_on_after(10):
            await self.process.wait()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def server(kind: str) -> tuple[LineProcess, str]:
    """``tools/bench_servers.py <kind>`` started; its URL."""
    started = await LineProcess.start(
        [sys.executable, str(ROOT / "tools" / "bench_servers.py"), kind]
    )
    line = await started.line()
    return started, line.removeprefix("serving on ").strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class MgNode:
    """``python -m mg serve`` on a chosen port, its log to a file (whatever the log level, it
    is ready once ``/health/ready`` answers 200)."""

    def __init__(self, config: Path, port: int, log: Path, database_url: str) -> None:
        self.config, self.port, self.log = config, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**ENV, "MG_DATABASE_URL": database_url}
        self.process: trio.Process | None = None

    async def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "mg", "serve", "--config", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=self.env,
            )
        with trio.fail_after(60):
            while not await self._ready():
                if self.process.returncode is not None:
                    raise RuntimeError(f"mg serve ended early; see {self.log}")
                await trio.sleep(0.1)

    async def _ready(self) -> bool:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        except OSError:
            return False
        async with stream:
            await stream.send_all(b"GET /health/ready HTTP/1.1\r\nhost: x\r\n\r\n")
            return (await stream.receive_some(64)).startswith(b"HTTP/1.1 200")

    async def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        with trio.move_on_after(30):
            await self.process.wait()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
