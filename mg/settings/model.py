"""The settings' shapes: one frozen dataclass per table of the config file (``reading`` fills
them; ``mg.example.toml`` documents every key and its default)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mg.core.retry import RetryPolicy
from mg.placement import Placement


class SettingsError(ValueError):
    """The configuration is wrong; the message names the key."""


@dataclass(frozen=True, slots=True)
class Modernizer:
    url: str
    current_format_version: int


MAX_REPLY_BYTES = 16 * 1024 * 1024
MAX_EVENTS = 10_000


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    processor_url: str
    processor_encoding: str = "msgpack"
    processor_max_connections: int = 32
    # Bounds on one processor (or modernizer) answer: its body's bytes (decoded, read up to
    # this many and no more) and the events of one step.
    processor_max_reply_bytes: int = MAX_REPLY_BYTES
    processor_max_events: int = MAX_EVENTS
    default_processing_timeout: float = 30.0
    timer_processing_timeout: float = 60.0
    sinks: tuple[str, ...] = ()
    # Step slots this namespace may hold at once; None: the default share
    # (``Settings.step_slots``).
    max_steps_in_flight: int | None = None
    timer_retries: RetryPolicy = field(default_factory=RetryPolicy)
    notification_retries: RetryPolicy = field(default_factory=RetryPolicy)
    modernizer: Modernizer | None = None
    # history.max_events: after every step only the newest N events are kept (None: all).
    history_max_events: int | None = None
    # ``[namespaces.X] database.url``; None: the default database (``[database] url``).
    database_url: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Embedded:
    data_dir: Path = Path("mg-data/postgres")
    port: int = 0
    user: str = "nobody"


@dataclass(frozen=True, slots=True)
class Database:
    url: str | None = None
    # uvloop's loop in the bridge thread: 6 % less node CPU per call (docs/performance.md).
    bridge: str = "uvloop"
    pool_size: int = 32
    connect_timeout: float = 10.0
    commit_timeout: float = 5.0
    # How much longer than its deadline a step's transaction may sit idle before Postgres
    # ends its session (docs/architecture.md, "Deadlines and fairness").
    step_idle_margin: float = 5.0
    embedded: Embedded = Embedded()


@dataclass(frozen=True, slots=True)
class Server:
    host: str = "127.0.0.1"
    port: int = 8022
    max_body_bytes: int = 4 * 1024 * 1024
    graceful_timeout: float = 10.0
    keep_alive_timeout: float = 75.0
    max_connections: int = 4096
    http2: bool = False
    certfile: str | None = None
    keyfile: str | None = None
    ca_certs: str | None = None
    # Processes serving the port (``mg.workers``); 1: this process serves, no parent.
    workers: int = 1


@dataclass(frozen=True, slots=True)
class Cache:
    """The node's cache of machine state (``mg.postgres.state_cache``); 0 bytes turns it off."""

    max_bytes: int = 64 * 1024 * 1024
    events: int = 20


@dataclass(frozen=True, slots=True)
class Limits:
    """Overload protection. Past any of these a client request gets ``429 overloaded`` with
    ``Retry-After`` and nothing is done: requests being handled by this node, client steps
    waiting for one of the ``max_steps_in_flight`` slots, requests queued for one machine,
    sink long-polls (``wait`` > 0) waiting at once; long-polls have their own budget and do not
    count in ``max_requests_in_flight``."""

    max_steps_in_flight: int = 24
    max_waiting_steps: int = 256
    max_queue_per_machine: int = 64
    max_requests_in_flight: int = 1024
    max_long_polls: int = 256


@dataclass(frozen=True, slots=True)
class Sink:
    """A sink's knobs (``[sinks.NAME]``): outbox rows its sequencer moves per transaction, how
    often the sequencer looks for work when nothing wakes it, the longest long-poll a reader may
    ask for (longer ``wait`` is cut to it), and the most events one read returns (a larger or
    absent ``limit`` is cut to it)."""

    name: str
    batch_size: int = 1000
    poll_interval: float = 1.0
    max_wait: float = 60.0
    read_limit: int = 1000
    retention: Retention | None = None


@dataclass(frozen=True, slots=True)
class Retention:
    """A sink's retention (``[sinks.NAME] retention = {...}``, PROTOCOL section 7): events older
    than ``max_age`` seconds or beyond the newest ``max_events`` are pruned, oldest first, by
    one node of the cluster at a time, at most ``batch_size`` per transaction; the pruner looks
    again every ``interval`` when it has nothing to do."""

    max_age: float | None = None
    max_events: int | None = None
    batch_size: int = 1000
    interval: float = 10.0


# Sink names travel in URL paths, wake-up payloads (comma-separated) and lock keys: keep them plain.
SINK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True, slots=True)
class Loop:
    """A background loop (timers or notifications): how much it claims at once, how many steps
    it runs at once, how often it polls when nothing wakes it, and how long a claim lasts
    before another node may take the work over."""

    batch: int = 100
    concurrency: int = 16
    poll_interval: float = 1.0
    lease: float = 30.0


@dataclass(frozen=True, slots=True)
class Logging:
    format: str = "json"
    level: str = "info"


@dataclass(frozen=True, slots=True)
class Metrics:
    sample_interval: float = 15.0


@dataclass(frozen=True, slots=True)
class Token:
    """A client's bearer token, held as its SHA-256 digest only: the secret itself is never
    kept, so it cannot reach a log line or a repr."""

    name: str
    digest: bytes = field(repr=False)
    namespaces: tuple[str, ...] = ()
    sinks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Auth:
    enabled: bool = False
    tokens: tuple[Token, ...] = ()


@dataclass(frozen=True, slots=True)
class Settings:
    server: Server = Server()
    database: Database = Database()
    limits: Limits = Limits()
    cache: Cache = Cache()
    timers: Loop = Loop()
    notifications: Loop = Loop(concurrency=8)
    logging: Logging = Logging()
    metrics: Metrics = Metrics()
    auth: Auth = Auth()
    namespaces: Mapping[str, Namespace] = field(default_factory=dict)
    sinks: tuple[str, ...] = ()
    sink_options: Mapping[str, Sink] = field(default_factory=dict)
    # Problems worth a line in the log that do not stop a node (``mg serve`` logs them).
    warnings: tuple[str, ...] = ()
    # The databases, the default one first (``placements()``); empty: only the default.
    databases: tuple[Placement, ...] = ()

    def placements(self) -> tuple[Placement, ...]:
        """Every database of the node with its namespaces and sinks, the default first."""
        if self.databases:
            return self.databases
        return (Placement("default", None, tuple(self.namespaces), self.sinks),)

    def step_slots(self, ns: str) -> int:
        """The step slots namespace ``ns`` may hold at once: its ``max_steps_in_flight``, else
        half the node's (rounded up) when the node serves other namespaces too, so that one
        namespace with a slow processor leaves the others at least the other half."""
        total = self.limits.max_steps_in_flight
        namespace = self.namespaces.get(ns)
        if namespace is not None and namespace.max_steps_in_flight is not None:
            return min(namespace.max_steps_in_flight, total)
        return total if len(self.namespaces) <= 1 else (total + 1) // 2
