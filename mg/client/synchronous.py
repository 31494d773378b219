"""The sync client: the exchanges of ``mg.client.exchange`` sent with ``httpx.Client``, for
code that is not async (scripts, threads, WSGI services). Same operations, same errors as
``AsyncClient``."""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from mg.client.answers import Answer
from mg.client.errors import error_from_transport
from mg.client.exchange import Encoding, Exchange, Exchanges, Options
from mg.client.results import Address, Machine, Range, SearchPage, SinkBounds, SinkEvent, Status

T = TypeVar("T")


class Client:
    """mg's client API, blocking. Every operation raises the ``mg.client`` exception of the
    error code mg answers with (``MachineNotFound``, ``MachineFailed``, ...).

    Each operation takes ``deadline`` (an aware ``datetime``) or ``timeout`` (seconds), sent
    to mg as the time it may spend, and ``traceparent`` (a W3C trace context to continue).
    Bodies are MessagePack unless ``encoding="json"``; ``token`` is sent as a bearer token.
    Pass ``http`` to bring your own ``httpx.Client`` (its ``base_url`` must be mg's; the client
    does not close it).
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8022",
        *,
        encoding: Encoding = "msgpack",
        default_timeout: float | None = None,
        http_timeout: float = 120.0,
        grace: float = 5.0,
        token: str | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.exchanges = Exchanges(
            encoding=encoding,
            default_timeout=default_timeout,
            http_timeout=http_timeout,
            grace=grace,
            token=token,
        )
        self._owned = http is None
        self._http = http if http is not None else httpx.Client(base_url=base_url)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def send(self, exchange: Exchange[T]) -> T:
        """Send one exchange and read its answer (the operations below all end here)."""
        request = exchange.request
        try:
            response = self._http.request(
                request.method,
                request.path,
                params=request.params,
                headers=request.headers,
                content=request.content,
                timeout=request.timeout,
            )
        except httpx.TransportError as error:
            raise error_from_transport(error) from error
        headers = {name.lower(): value for name, value in response.headers.items()}
        return exchange.read(Answer(response.status_code, headers, response.content))

    # --- operations ------------------------------------------------------------------------

    def start(
        self,
        ns: str,
        machine_id: str,
        args: Any = None,
        *,
        deadline: datetime | None = None,
        timeout: float | None = None,
        traceparent: str | None = None,
    ) -> None:
        """Start a machine: the processor's ``init`` runs with ``args``. A machine that exists
        already, even failed, gives ``MachineAlreadyExists``; a failing ``init`` gives
        ``MachineFailed`` and stores nothing, and so does an ``init`` that refuses the
        arguments, which gives ``InvalidArgs`` with the processor's ``reason``."""
        options = Options(deadline, timeout, traceparent)
        return self.send(self.exchanges.start(ns, machine_id, args, options))

    def call(
        self,
        ns: str,
        machine: Address,
        args: Any = None,
        *,
        range: Range | None = None,
        deadline: datetime | None = None,
        timeout: float | None = None,
        traceparent: str | None = None,
    ) -> Any:
        """Call a machine (by id or ``Tag``); returns the processor's response. The processor
        sees the history cut by ``range``."""
        options = Options(deadline, timeout, traceparent)
        return self.send(self.exchanges.call(ns, machine, args, range, options))

    def get(
        self,
        ns: str,
        machine: Address,
        *,
        range: Range | None = None,
        deadline: datetime | None = None,
        timeout: float | None = None,
        traceparent: str | None = None,
    ) -> Machine:
        """Read a machine: a consistent snapshot, its history cut by ``range``."""
        options = Options(deadline, timeout, traceparent)
        return self.send(self.exchanges.get(ns, machine, range, options))

    def repair(
        self,
        ns: str,
        machine: Address,
        args: Any = None,
        *,
        range: Range | None = None,
        deadline: datetime | None = None,
        timeout: float | None = None,
        traceparent: str | None = None,
    ) -> Any:
        """Repair a failed machine through the processor's ``repair``; returns its response.
        A working machine gives ``MachineAlreadyWorking``; a refusal, ``RepairFailed``."""
        options = Options(deadline, timeout, traceparent)
        return self.send(self.exchanges.repair(ns, machine, args, range, options))

    def simple_repair(
        self,
        ns: str,
        machine: Address,
        *,
        deadline: datetime | None = None,
        timeout: float | None = None,
        traceparent: str | None = None,
    ) -> None:
        """Return a failed machine to the status it had, without calling the processor."""
        options = Options(deadline, timeout, traceparent)
        return self.send(self.exchanges.simple_repair(ns, machine, options))

    def notify(
        self,
        ns: str,
        machine: Address,
        args: Any = None,
        *,
        range: Range | None = None,
        deadline: datetime | None = None,
        timeout: float | None = None,
        traceparent: str | None = None,
    ) -> str:
        """Queue a notification for the machine; returns its id at once. It reaches the
        processor as a ``notification`` signal, at least once, in order."""
        options = Options(deadline, timeout, traceparent)
        return self.send(self.exchanges.notify(ns, machine, args, range, options))

    def remove(
        self,
        ns: str,
        machine_id: str,
        *,
        deadline: datetime | None = None,
        timeout: float | None = None,
        traceparent: str | None = None,
    ) -> None:
        """Delete a machine with its events, tags, timer and queued notifications."""
        options = Options(deadline, timeout, traceparent)
        return self.send(self.exchanges.remove(ns, machine_id, options))

    def modernize(
        self,
        ns: str,
        machine: Address,
        *,
        range: Range | None = None,
        deadline: datetime | None = None,
        timeout: float | None = None,
        traceparent: str | None = None,
    ) -> int:
        """Rewrite the machine's outdated events in ``range`` through the namespace's
        modernizer; returns how many changed."""
        options = Options(deadline, timeout, traceparent)
        return self.send(self.exchanges.modernize(ns, machine, range, options))

    def search(
        self,
        ns: str,
        *,
        status: Status | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        deadline: datetime | None = None,
        timeout: float | None = None,
        traceparent: str | None = None,
    ) -> SearchPage:
        """One page of the namespace's machines by id, optionally of one status."""
        options = Options(deadline, timeout, traceparent)
        return self.send(self.exchanges.search(ns, status, limit, cursor, options))

    def read_sink(
        self,
        sink: str,
        *,
        range: Range | None = None,
        wait: float | None = None,
        deadline: datetime | None = None,
        timeout: float | None = None,
        traceparent: str | None = None,
    ) -> tuple[SinkEvent, ...]:
        """Events of a sink in ``range``; with ``wait`` (seconds), mg holds the answer until
        an event after ``range.after`` exists or the wait ends."""
        options = Options(deadline, timeout, traceparent)
        return self.send(self.exchanges.read_sink(sink, range, wait, options))

    def sink_bounds(
        self,
        sink: str,
        *,
        deadline: datetime | None = None,
        timeout: float | None = None,
        traceparent: str | None = None,
    ) -> SinkBounds:
        """The positions a sink holds and its anchor (the hash its first held event chains
        from)."""
        options = Options(deadline, timeout, traceparent)
        return self.send(self.exchanges.sink_bounds(sink, options))

    def live(self, *, timeout: float | None = None) -> bool:
        """Whether the node answers ``/health/live`` with ``200``."""
        return self.send(self.exchanges.health("live", Options(timeout=timeout)))

    def ready(self, *, timeout: float | None = None) -> bool:
        """Whether the node is ready (``False`` while it cannot reach Postgres)."""
        return self.send(self.exchanges.health("ready", Options(timeout=timeout)))

    def metrics(self, *, timeout: float | None = None) -> str:
        """The node's metrics in the Prometheus text format."""
        return self.send(self.exchanges.metrics(Options(timeout=timeout)))
