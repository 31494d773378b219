"""Choosing a bridge by name (``database.bridge`` in the config)."""

from __future__ import annotations

from typing import Any

from mg.postgres.bridge.interface import Bridge

BRIDGE_KINDS = ("thread", "uvloop", "trio-asyncio")


def make_bridge(kind: str, dsn: str, **options: Any) -> Bridge:
    """Build (not open) a bridge: ``"uvloop"`` (the node's default: asyncpg on uvloop's loop in
    a dedicated thread), ``"thread"`` (the same thread, asyncio's own loop) or
    ``"trio-asyncio"``.

    ``options`` go to the constructor: ``min_size``, ``max_size``, ``connect_timeout``,
    ``release_timeout``, ``reset`` (``"cheap"`` or ``"full"``).
    """
    # Imported on demand so that choosing one bridge never loads the other's machinery.
    if kind == "thread":
        from mg.postgres.bridge.thread_loop import ThreadLoopBridge

        return ThreadLoopBridge(dsn, **options)
    if kind == "uvloop":
        import uvloop

        from mg.postgres.bridge.thread_loop import ThreadLoopBridge

        return ThreadLoopBridge(dsn, loop_factory=uvloop.new_event_loop, **options)
    if kind == "trio-asyncio":
        from mg.postgres.bridge.trio_asyncio_loop import TrioAsyncioBridge

        return TrioAsyncioBridge(dsn, **options)
    raise ValueError(f"unknown Postgres bridge {kind!r}; expected one of {', '.join(BRIDGE_KINDS)}")
