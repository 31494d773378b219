"""The one typed, frozen settings object: the only reader of the config file and environment.

``model`` has the shapes (one frozen dataclass per table), ``reading`` fills them from the file
and the environment. Every key and its default is documented in ``mg.example.toml``; unknown
keys are refused so a typo cannot silently fall back to a default.
"""

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
from mg.settings.reading import (
    from_mapping,
    load,
    parse_workers,
    usable_cores,
)

__all__ = [
    "Auth",
    "Cache",
    "Database",
    "Embedded",
    "Limits",
    "Logging",
    "Loop",
    "MAX_EVENTS",
    "MAX_REPLY_BYTES",
    "Metrics",
    "Modernizer",
    "Namespace",
    "Retention",
    "SINK_NAME",
    "Server",
    "Settings",
    "SettingsError",
    "Sink",
    "Token",
    "from_mapping",
    "load",
    "parse_workers",
    "usable_cores",
]
