"""Reading the config file and the environment into ``Settings``: unknown keys are refused, so a
typo cannot silently fall back to a default, and every error names its key."""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mg.core.clock import parse_duration
from mg.core.retry import RetryPolicy
from mg.placement import place
from mg.settings.model import (
    MAX_EVENTS,
    MAX_REPLY_BYTES,
    SINK_NAME,
    Auth,
    Cache,
    Database,
    Embedded,
    Limits,
    Logging,
    Loop,
    Metrics,
    Modernizer,
    Namespace,
    Retention,
    Server,
    Settings,
    SettingsError,
    Sink,
    Token,
)


class _Table:
    """A config table that remembers which keys were read, so leftovers can be refused."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        if not isinstance(data, Mapping):
            raise SettingsError(f"{where} must be a table")
        self.data = data
        self.where = where
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def get(self, name: str, default: Any = None) -> Any:
        self.seen.add(name)
        return self.data.get(name, default)

    def table(self, name: str) -> _Table:
        return _Table(self.get(name, {}), self.key(name))

    def string(self, name: str, default: str | None) -> str | None:
        value = self.get(name, default)
        if value is not None and not isinstance(value, str):
            raise SettingsError(f"{self.key(name)} must be a string")
        return value

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise SettingsError(f"{self.key(name)} must be an integer >= {minimum}")
        return value

    def number(self, name: str, default: float) -> float:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise SettingsError(f"{self.key(name)} must be a non-negative number")
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            raise SettingsError(f"{self.key(name)} must be true or false")
        return value

    def duration(self, name: str, default: float) -> float:
        value = self.get(name, default)
        try:
            return parse_duration(value)
        except ValueError as error:
            raise SettingsError(f"{self.key(name)}: {error}") from error

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(name, default)
        if value not in choices:
            raise SettingsError(f"{self.key(name)} must be one of {', '.join(choices)}")
        return str(value)

    def done(self) -> None:
        extra = sorted(set(self.data) - self.seen)
        if extra:
            names = ", ".join(self.key(name) for name in extra)
            raise SettingsError(f"unknown setting(s): {names}")


def _retry(table: _Table) -> RetryPolicy:
    kind = table.choice("type", "exponential", ("exponential", "linear", "intervals"))
    max_retries = table.get("max_retries", 10)
    if max_retries != "infinity" and (
        isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0
    ):
        raise SettingsError(f'{table.key("max_retries")} must be an integer or "infinity"')
    raw_intervals = table.get("intervals", [])
    if not isinstance(raw_intervals, list):
        raise SettingsError(f"{table.key('intervals')} must be a list of durations")
    try:
        intervals = tuple(parse_duration(item) for item in raw_intervals)
    except ValueError as error:
        raise SettingsError(f"{table.key('intervals')}: {error}") from error
    if kind == "intervals" and not intervals:
        raise SettingsError(f"{table.key('intervals')} must not be empty for type intervals")
    jitter = table.number("jitter", 0.0)
    if jitter > 1:
        raise SettingsError(f"{table.key('jitter')} must be between 0 and 1")
    policy = RetryPolicy(
        type=kind,
        max_retries=None if max_retries == "infinity" else int(max_retries),
        factor=table.number("factor", 2.0),
        timeout=table.duration("timeout", 1.0),
        max_timeout=table.duration("max_timeout", 1800.0),
        intervals=intervals,
        jitter=jitter,
    )
    table.done()
    return policy


def _sink(name: str, table: _Table) -> Sink:
    if not SINK_NAME.match(name):
        raise SettingsError(
            f"{table.where}: a sink name is 1..63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    default = Sink(name)
    sink = Sink(
        name=name,
        batch_size=table.integer("batch_size", default.batch_size, minimum=1),
        poll_interval=table.duration("poll_interval", default.poll_interval),
        max_wait=table.duration("max_wait", default.max_wait),
        read_limit=table.integer("read_limit", default.read_limit, minimum=1),
        retention=_retention(table) if table.get("retention") is not None else None,
    )
    table.done()
    if sink.poll_interval <= 0:
        raise SettingsError(f"{table.key('poll_interval')} must be positive")
    return sink


def _retention(sink: _Table) -> Retention:
    table = sink.table("retention")
    default = Retention()
    max_age: float | None = None
    if table.get("max_age") is not None:
        if not isinstance(table.get("max_age"), str):
            raise SettingsError(f'{table.key("max_age")} must be a duration such as "30d"')
        max_age = table.duration("max_age", 0.0)
        if max_age <= 0:
            raise SettingsError(f"{table.key('max_age')} must be positive")
    max_events: int | None = None
    if table.get("max_events") is not None:
        max_events = table.integer("max_events", 0, minimum=1)
    retention = Retention(
        max_age=max_age,
        max_events=max_events,
        batch_size=table.integer("batch_size", default.batch_size, minimum=1),
        interval=table.duration("interval", default.interval),
    )
    table.done()
    if max_age is None and max_events is None:
        raise SettingsError(f"{table.where} needs max_age, max_events or both")
    if retention.interval <= 0:
        raise SettingsError(f"{table.key('interval')} must be positive")
    return retention


def _loop(table: _Table, default: Loop) -> Loop:
    loop = Loop(
        batch=table.integer("batch", default.batch, minimum=1),
        concurrency=table.integer("concurrency", default.concurrency, minimum=1),
        poll_interval=table.duration("poll_interval", default.poll_interval),
        lease=table.duration("lease", default.lease),
    )
    table.done()
    if loop.lease <= 0 or loop.poll_interval <= 0:
        raise SettingsError(f"{table.where}.lease and poll_interval must be positive")
    return loop


def _namespace(name: str, table: _Table, sinks: tuple[str, ...]) -> Namespace:
    processor = table.table("processor")
    url = processor.string("url", None)
    if not url:
        raise SettingsError(f"{processor.key('url')} is required")
    encoding = processor.choice("encoding", "msgpack", ("msgpack", "json"))
    max_connections = processor.integer("max_connections", 32, minimum=1)
    max_reply_bytes = processor.integer("max_reply_bytes", MAX_REPLY_BYTES, minimum=1024)
    max_events = processor.integer("max_events", MAX_EVENTS, minimum=1)
    processor.done()
    retries = table.table("retries")
    timer_retries = _retry(retries.table("timers"))
    notification_retries = _retry(retries.table("notifications"))
    retries.done()
    subscribed = table.get("sinks", [])
    if not isinstance(subscribed, list) or not all(isinstance(s, str) for s in subscribed):
        raise SettingsError(f"{table.key('sinks')} must be a list of sink names")
    for sink in subscribed:
        if sink not in sinks:
            raise SettingsError(f"{table.key('sinks')} names {sink!r}, which has no [sinks.{sink}]")
    database = table.table("database")
    database_url = database.string("url", None) or None
    database.done()
    modernizer: Modernizer | None = None
    if table.get("modernizer") is not None:
        mod = table.table("modernizer")
        mod_url = mod.string("url", None)
        if not mod_url:
            raise SettingsError(f"{mod.key('url')} is required")
        modernizer = Modernizer(mod_url, mod.integer("current_format_version", 1, minimum=1))
        mod.done()
    history = table.table("history")
    history_max_events: int | None = None
    if history.get("max_events") is not None:
        history_max_events = history.integer("max_events", 0, minimum=1)
    history.done()
    namespace = Namespace(
        name=name,
        processor_url=url,
        processor_encoding=encoding,
        processor_max_connections=max_connections,
        processor_max_reply_bytes=max_reply_bytes,
        processor_max_events=max_events,
        default_processing_timeout=table.duration("default_processing_timeout", 30.0),
        timer_processing_timeout=table.duration("timer_processing_timeout", 60.0),
        sinks=tuple(subscribed),
        max_steps_in_flight=(
            None
            if table.get("max_steps_in_flight") is None
            else table.integer("max_steps_in_flight", 1, minimum=1)
        ),
        timer_retries=timer_retries,
        notification_retries=notification_retries,
        modernizer=modernizer,
        history_max_events=history_max_events,
        database_url=database_url,
    )
    table.done()
    return namespace


MIN_TOKEN_LENGTH = 16


def _names(table: _Table, name: str, known: Mapping[str, Any] | tuple[str, ...]) -> tuple[str, ...]:
    value = table.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SettingsError(f"{table.key(name)} must be a list of names")
    for item in value:
        if item != "*" and item not in known:
            raise SettingsError(f"{table.key(name)} names {item!r}, which is not configured")
    return tuple(value)


def _token(
    name: str,
    table: _Table,
    namespaces: Mapping[str, Any],
    sinks: tuple[str, ...],
    environ: Mapping[str, str],
) -> Token:
    literal = table.string("token", None)
    variable = table.string("token_env", None)
    if (literal is None) == (variable is None):
        raise SettingsError(f"{table.where} needs exactly one of token and token_env")
    secret = literal if variable is None else environ.get(variable, "")
    if variable is not None and not secret:
        raise SettingsError(f"{table.key('token_env')}: environment variable {variable} is unset")
    assert secret is not None
    # The message never quotes the token.
    if len(secret) < MIN_TOKEN_LENGTH or not all("!" <= c <= "~" for c in secret):
        raise SettingsError(
            f"{table.where}: a token must be at least {MIN_TOKEN_LENGTH} printable ASCII "
            "characters without spaces"
        )
    token = Token(
        name=name,
        digest=hashlib.sha256(secret.encode("ascii")).digest(),
        namespaces=_names(table, "namespaces", namespaces),
        sinks=_names(table, "sinks", sinks),
    )
    table.done()
    return token


def _auth(
    table: _Table,
    namespaces: Mapping[str, Any],
    sinks: tuple[str, ...],
    environ: Mapping[str, str],
) -> Auth:
    enabled = table.get("enabled", False)
    if not isinstance(enabled, bool):
        raise SettingsError(f"{table.key('enabled')} must be true or false")
    tokens_table = table.table("tokens")
    tokens = tuple(
        _token(name, tokens_table.table(name), namespaces, sinks, environ)
        for name in tokens_table.data
    )
    tokens_table.done()
    table.done()
    if enabled and not tokens:
        raise SettingsError("auth.enabled is true but no [auth.tokens.<name>] is configured")
    if len({t.digest for t in tokens}) != len(tokens):
        raise SettingsError("two auth tokens have the same secret")
    return Auth(enabled=enabled, tokens=tokens)


def from_mapping(data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from a parsed TOML document and the environment (``MG_DATABASE_URL``)."""
    environ = os.environ if environ is None else environ
    root = _Table(data, "")

    server_table = root.table("server")
    server = Server(
        host=server_table.string("host", "127.0.0.1") or "127.0.0.1",
        port=server_table.integer("port", 8022),
        max_body_bytes=server_table.integer("max_body_bytes", 4 * 1024 * 1024, minimum=1),
        graceful_timeout=server_table.duration("graceful_timeout", 10.0),
        keep_alive_timeout=server_table.duration("keep_alive_timeout", 75.0),
        max_connections=server_table.integer("max_connections", 4096, minimum=1),
        http2=server_table.boolean("http2", False),
        certfile=server_table.string("certfile", None),
        keyfile=server_table.string("keyfile", None),
        ca_certs=server_table.string("ca_certs", None),
        workers=parse_workers(server_table.get("workers", 1), "server.workers"),
    )
    server_table.done()
    if (server.certfile is None) != (server.keyfile is None):
        raise SettingsError("server.certfile and server.keyfile go together")
    if server.ca_certs is not None and server.certfile is None:
        raise SettingsError("server.ca_certs needs server.certfile and server.keyfile")

    db = root.table("database")
    embedded_table = db.table("embedded")
    embedded = Embedded(
        data_dir=Path(embedded_table.string("data_dir", "mg-data/postgres") or "mg-data/postgres"),
        port=embedded_table.integer("port", 0),
        user=embedded_table.string("user", "nobody") or "nobody",
    )
    embedded_table.done()
    database = Database(
        url=environ.get("MG_DATABASE_URL") or db.string("url", None),
        bridge=db.choice("bridge", "uvloop", ("uvloop", "thread", "trio-asyncio")),
        pool_size=db.integer("pool_size", 32, minimum=2),
        connect_timeout=db.duration("connect_timeout", 10.0),
        commit_timeout=db.duration("commit_timeout", 5.0),
        step_idle_margin=db.duration("step_idle_margin", 5.0),
        embedded=embedded,
    )
    db.done()

    limits_table = root.table("limits")
    limits = Limits(
        max_steps_in_flight=limits_table.integer("max_steps_in_flight", 24, minimum=1),
        max_waiting_steps=limits_table.integer("max_waiting_steps", 256, minimum=0),
        max_queue_per_machine=limits_table.integer("max_queue_per_machine", 64, minimum=1),
        max_requests_in_flight=limits_table.integer("max_requests_in_flight", 1024, minimum=1),
        max_long_polls=limits_table.integer("max_long_polls", 256, minimum=1),
    )
    limits_table.done()

    cache_table = root.table("cache")
    cache = Cache(
        max_bytes=cache_table.integer("max_bytes", 64 * 1024 * 1024),
        events=cache_table.integer("events", 20),
    )
    cache_table.done()

    timers = _loop(root.table("timers"), Loop())
    notifications = _loop(root.table("notifications"), Loop(concurrency=8))

    logging_table = root.table("logging")
    logging = Logging(
        format=logging_table.choice("format", "json", ("json", "text")),
        level=logging_table.choice("level", "info", ("debug", "info", "warning", "error")),
    )
    logging_table.done()

    sinks_table = root.table("sinks")
    sinks = tuple(sinks_table.data)
    sink_options = {name: _sink(name, sinks_table.table(name)) for name in sinks}
    sinks_table.done()

    namespaces_table = root.table("namespaces")
    namespaces = {
        name: _namespace(name, namespaces_table.table(name), sinks)
        for name in namespaces_table.data
    }
    namespaces_table.done()

    metrics_table = root.table("metrics")
    metrics = Metrics(sample_interval=metrics_table.duration("sample_interval", 15.0))
    metrics_table.done()
    if metrics.sample_interval <= 0:
        raise SettingsError("metrics.sample_interval must be positive")

    auth = _auth(root.table("auth"), namespaces, sinks, environ)
    root.done()
    try:
        databases = place(
            database.url,
            {name: (ns.database_url, ns.sinks) for name, ns in namespaces.items()},
            sinks,
        )
    except ValueError as error:
        raise SettingsError(str(error)) from error
    return Settings(
        server=server,
        database=database,
        limits=limits,
        cache=cache,
        timers=timers,
        notifications=notifications,
        logging=logging,
        metrics=metrics,
        auth=auth,
        namespaces=namespaces,
        sinks=sinks,
        sink_options=sink_options,
        databases=databases if len(databases) > 1 else (),
    )


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, not the host's count)."""
    return len(os.sched_getaffinity(0))


def parse_workers(value: Any, where: str) -> int:
    """``server.workers`` or ``--workers``: an integer >= 1, or ``"auto"`` (the usable cores)."""
    if value == "auto":
        return usable_cores()
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingsError(f'{where} must be an integer >= 1 or "auto"')
    return value


def load(path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from a TOML file (or defaults when ``path`` is None)."""
    if path is None:
        return from_mapping({}, environ)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
            mode = os.fstat(handle.fileno()).st_mode & 0o777
    except OSError as error:
        raise SettingsError(f"cannot read {path}: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path} is not valid TOML: {error}") from error
    settings = from_mapping(data, environ)
    secrets = _inline_secrets(data)
    if mode & 0o077 and secrets:
        warning = (
            f"{path} holds {' and '.join(secrets)} and is readable by other users (mode "
            f"{mode:o}): chmod 600 {path} (or use token_env / MG_DATABASE_URL)"
        )
        settings = replace(settings, warnings=(*settings.warnings, warning))
    return settings


def _inline_secrets(data: Mapping[str, Any]) -> list[str]:
    """What in a parsed config file is a secret written into it."""
    found = []
    tokens = data.get("auth", {}).get("tokens", {}) if isinstance(data.get("auth"), dict) else {}
    if isinstance(tokens, dict) and any(
        isinstance(t, dict) and "token" in t for t in tokens.values()
    ):
        found.append("an inline auth token")
    database = data.get("database")
    url = database.get("url") if isinstance(database, dict) else None
    urls = [url]
    namespaces = data.get("namespaces")
    for table in namespaces.values() if isinstance(namespaces, dict) else ():
        database = table.get("database") if isinstance(table, dict) else None
        urls.append(database.get("url") if isinstance(database, dict) else None)
    if any(isinstance(url, str) and urlsplit(url).password for url in urls):
        found.append("a database password")
    return found
