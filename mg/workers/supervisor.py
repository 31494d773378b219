"""The parent of ``[server] workers = N`` (N > 1): it binds the port once, starts N workers
(``mg serve`` processes that serve on the inherited listening socket, each a full node) and
supervises them the way a nursery supervises tasks: a worker that exits is logged and started
again with back-off; SIGTERM or SIGINT is passed on to every worker, which drains as a single
node does; the parent returns only once every worker has exited. The embedded Postgres, when
there is one, was started by the caller before and is stopped by it after (``mg.cli``).

One listening socket shared by all (rather than ``SO_REUSEPORT``): the port is bound once, so
``port = 0`` and a port already in use behave as for one node; connections wait in one accept
queue, so a worker killed or restarting leaves the waiting connections to the others (with
``SO_REUSEPORT`` each socket has its own queue, and the connections queued on a dying worker's
are reset); and no other process of the same user can join the port's group. The kernel hands
each connection to one of the workers waiting in ``accept``, so a busy worker takes fewer.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from mg.settings import Settings

log = logging.getLogger("mg.workers")

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
# A worker that ran this long before it exited was healthy: its restart starts the back-off again.
HEALTHY_RUN = 60.0
# How long after the graceful timeout the parent waits for draining workers before it kills them.
EXIT_MARGIN = 15.0
# Exit codes of a worker stopped by a cause that restarting will not heal (mg.startup: bad
# configuration, schema incompatible, resources missing, Postgres refuses): every worker would
# meet it, so the parent stops them all and exits with it instead of restarting forever.
CANNOT_RUN = frozenset({2, 3, 4, 5})


def listening_socket(host: str, port: int) -> socket.socket:
    """The node's one listening socket, inherited by every worker."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(1024)
    return sock


def serving_url(settings: Settings, sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    scheme = "https" if settings.server.certfile else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


@dataclass
class Supervisor:
    """Keeps ``count`` workers running until ``stop``; ``command`` starts one (``mg serve``
    with the caller's options), to which the worker's own options are added."""

    settings: Settings
    database_url: str
    command: Sequence[str]
    count: int
    stopping: trio.Event = field(default_factory=trio.Event)
    processes: dict[int, trio.Process] = field(default_factory=dict)
    restarts: int = 0
    # The exit code of a worker that stopped for a cause restarting will not heal (mg.startup).
    refused: int = 0

    async def run(self) -> int:
        """Serve until stopped; 0, or the exit code of a worker that could not run."""
        sock = listening_socket(self.settings.server.host, self.settings.server.port)
        directory = Path(tempfile.mkdtemp(prefix="mg-workers-"))
        # Workers watch the read end; it reads end-of-file once the parent is gone.
        parent_read, parent_write = os.pipe()
        try:
            log.info("mg is serving on %s", serving_url(self.settings, sock))
            log.info("starting %d workers", self.count)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._on_signals, signals)
                    nursery.start_soon(self._kill_stragglers)
                    # Returns once every worker has exited after a stop.
                    async with trio.open_nursery() as keepers:
                        for index in range(self.count):
                            options = [
                                f"--worker-index={index}",
                                f"--listen-fd={sock.fileno()}",
                                f"--parent-fd={parent_read}",
                                f"--worker-dir={directory}",
                            ]
                            fds = (sock.fileno(), parent_read)
                            keepers.start_soon(self._keep_running, index, options, fds)
                    nursery.cancel_scope.cancel()
        finally:
            sock.close()
            os.close(parent_read)
            os.close(parent_write)
            shutil.rmtree(directory, ignore_errors=True)
        log.info("every worker has exited")
        return self.refused

    async def _kill_stragglers(self) -> None:
        """A worker's drain is bounded by the graceful timeout; one still running well past it
        is stuck, and is killed so that the parent (and the embedded Postgres) can stop."""
        await self.stopping.wait()
        limit = self.settings.server.graceful_timeout + EXIT_MARGIN
        await trio.sleep(limit)
        for index, process in list(self.processes.items()):
            log.error(
                "worker %d (pid %d) still running after %.0fs; killing it",
                index,
                process.pid,
                limit,
            )
            process.kill()

    async def _on_signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if self.stopping.is_set():
                log.warning("received %s again; still waiting for the workers to drain", name)
                continue
            log.info("received %s; draining every worker", name)
            self._stop()

    def _stop(self) -> None:
        self.stopping.set()
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)

    async def _keep_running(self, index: int, options: list[str], fds: tuple[int, ...]) -> None:
        backoff = FIRST_BACKOFF
        environ = {**os.environ, "MG_DATABASE_URL": self.database_url}
        while not self.stopping.is_set():
            started = trio.current_time()
            process = await trio.lowlevel.open_process(
                [*self.command, *options], pass_fds=fds, env=environ, stdin=subprocess.DEVNULL
            )
            self.processes[index] = process
            log.info("started worker %d (pid %d)", index, process.pid)
            if self.stopping.is_set():  # a signal came while it was being started
                process.send_signal(signal.SIGTERM)
            try:
                code = await process.wait()
            finally:
                del self.processes[index]
            if self.stopping.is_set():
                log.info("worker %d (pid %d) exited with code %d", index, process.pid, code)
                return
            if code in CANNOT_RUN:
                log.error(
                    "worker %d (pid %d) cannot run (exit code %d, logged above); stopping",
                    index,
                    process.pid,
                    code,
                )
                self.refused = code
                self._stop()
                return
            if trio.current_time() - started > HEALTHY_RUN:
                backoff = FIRST_BACKOFF
            self.restarts += 1
            log.warning(
                "worker %d (pid %d) exited with code %d; starting it again in %.1fs",
                index,
                process.pid,
                code,
                backoff,
            )
            with trio.move_on_after(backoff):
                await self.stopping.wait()
            backoff = min(backoff * 2, MAX_BACKOFF)


def worker_command(config: Path | None, log_format: str | None) -> list[str]:
    """``mg serve`` as this parent was asked to run it, for its workers."""
    command = [sys.executable, "-m", "mg", "serve"]
    if config is not None:
        command += ["--config", os.fspath(config)]
    if log_format is not None:
        command += ["--log-format", log_format]
    return command
