"""Which database holds each namespace and sink (PROTOCOL section 8).

A namespace lives in exactly one database: its ``database.url``, else the default one
(``[database] url`` or the embedded Postgres). A sink lives with the namespaces that feed it,
so namespaces of two databases cannot feed one sink; a sink no namespace feeds stays in the
default database. Databases are named without their URL, which may hold a password.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Placement:
    """One database of the node and what lives in it. ``name`` is how logs, errors and
    ``/health/ready`` name it: ``default``, else its host, port and database name."""

    name: str
    url: str | None = field(repr=False)  # None: the default database
    namespaces: tuple[str, ...] = ()
    sinks: tuple[str, ...] = ()


def database_name(url: str, taken: set[str]) -> str:
    """``host:port/dbname`` (no user, no password), made unique among ``taken``."""
    parts = urlsplit(url)
    name = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"
    base, n = name, 2
    while name in taken:
        name, n = f"{base}#{n}", n + 1
    return name


def place(
    default_url: str | None,
    namespaces: Mapping[str, tuple[str | None, tuple[str, ...]]],
    sinks: tuple[str, ...],
) -> tuple[Placement, ...]:
    """The databases, the default first, from each namespace's ``(database_url, sinks)``;
    ``ValueError`` names the sink, both namespaces and both databases when a sink would span
    two."""
    names: dict[str | None, str] = {None: DEFAULT}
    members: dict[str | None, list[str]] = {None: []}
    for ns, (own_url, _) in namespaces.items():
        url = own_url if own_url != default_url else None
        if url not in names:
            names[url] = database_name(url or "", set(names.values()))
            members[url] = []
        members[url].append(ns)
    home: dict[str, tuple[str, str | None]] = {}
    for url, held in members.items():
        for ns in held:
            for sink in namespaces[ns][1]:
                first_ns, first_url = home.setdefault(sink, (ns, url))
                if first_url != url:
                    raise ValueError(
                        f"sink {sink!r} is fed by namespaces of two databases: {first_ns!r} "
                        f"(database {names[first_url]}) and {ns!r} (database {names[url]}); "
                        "a sink lives in one database"
                    )
    placed = {url: [s for s in sinks if s in home and home[s][1] == url] for url in names}
    placed[None] += [s for s in sinks if s not in home]
    return tuple(
        Placement(names[url], url, tuple(members[url]), tuple(placed[url])) for url in names
    )
