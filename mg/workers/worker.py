"""What a worker process adds to a node: it serves on the listening socket its parent passed
down, stamps ``worker`` on its log lines, answers its siblings' metrics requests, and stops when
its parent is gone (the end of a pipe the parent holds closes)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import trio

from mg.workers.exposition import Exposition

log = logging.getLogger("mg.workers")


@dataclass(frozen=True, slots=True)
class Worker:
    """This process's place among the workers, from the parent's command line."""

    index: int
    listen_fd: int
    parent_fd: int
    directory: Path

    def exposition(self) -> Exposition:
        return Exposition(self.directory, self.index)

    async def until_orphaned(self) -> None:
        """Return when the parent has exited (the pipe it holds is closed), whatever the way:
        a worker must not outlive its supervisor and keep a port and a database busy."""
        await trio.lowlevel.wait_readable(self.parent_fd)
        log.warning("the parent process is gone; worker %d stops", self.index)


class WorkerField(logging.Filter):
    """Stamps ``worker`` (an index, or ``parent``) on every log line of this process."""

    def __init__(self, worker: int | str) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.worker
        return True


def stamp_logs(worker: int | str) -> None:
    """Add the ``worker`` field to the lines of every handler ``configure_logging`` set up."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(WorkerField(worker))
