"""``/metrics`` of a node made of workers: every worker's series, each with a ``worker`` label.

Each worker serves its own registry's text on a Unix socket in the parent's directory
(``worker-<index>.sock``); the worker that answers a scrape reads its siblings' and merges them,
adding ``worker="<index>"`` to every sample. Labelled rather than summed: a restarted worker's
counters start again from zero, which Prometheus reads as a reset of that worker's series only
(``rate`` and ``increase`` stay right), where a sum would seem to go backwards. Sum in the query
(``sum without (worker) (...)``) for the node's figures.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import prometheus_client
import trio
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

log = logging.getLogger("mg.workers")

# A sibling that does not answer within this is left out of the scrape (it is restarting).
SIBLING_TIMEOUT = 2.0
MAX_EXPOSITION_BYTES = 64 * 1024 * 1024


def socket_path(directory: Path, index: int) -> Path:
    return directory / f"worker-{index}.sock"


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def merge(expositions: dict[str, bytes]) -> bytes:
    """One Prometheus text from several workers' texts, each sample labelled with its worker."""
    merged: dict[str, Metric] = {}
    for worker, text in expositions.items():
        for family in text_string_to_metric_families(text.decode()):
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(family.name, family.documentation, family.type)
            for sample in family.samples:
                labels = {**sample.labels, "worker": worker}
                into.samples.append(sample._replace(labels=labels))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(merged.values()))
    return prometheus_client.generate_latest(registry)


class Exposition:
    """A worker's side of the merged ``/metrics``."""

    def __init__(self, directory: Path, index: int) -> None:
        self.directory = directory
        self.index = index
        self.local: Callable[[], bytes] | None = None

    def attach(self, render: Callable[[], bytes]) -> None:
        self.local = render

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Answer every connection on this worker's socket with its own series, then close."""
        path = socket_path(self.directory, self.index)
        # A restarted worker takes over the socket file of the one before.
        path.unlink(missing_ok=True)
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await sock.bind(os.fspath(path))
        sock.listen(16)
        listener = trio.SocketListener(sock)

        async def answer(stream: trio.SocketStream) -> None:
            async with stream:
                if self.local is not None:
                    await stream.send_all(self.local())

        task_status.started()
        await trio.serve_listeners(answer, [listener])

    async def gather(self) -> bytes:
        """Every worker's series that answers now, merged."""
        texts: dict[str, bytes] = {}
        if self.local is not None:
            texts[str(self.index)] = self.local()
        for path in sorted(self.directory.glob("worker-*.sock")):
            index = path.stem.removeprefix("worker-")
            if index == str(self.index):
                continue
            with trio.move_on_after(SIBLING_TIMEOUT):
                try:
                    texts[index] = await _read(path)
                except OSError as error:
                    log.debug("worker %s gave no metrics: %s", index, error)
        return merge(dict(sorted(texts.items(), key=lambda item: int(item[0]))))


async def _read(path: Path) -> bytes:
    stream = await trio.open_unix_socket(os.fspath(path))
    chunks: list[bytes] = []
    size = 0
    async with stream:
        while chunk := await stream.receive_some(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_EXPOSITION_BYTES:
                raise OSError("metrics too large")
    return b"".join(chunks)
