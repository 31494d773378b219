"""Sink events and their hash chain (PROTOCOL section 5), as pure functions.

The database computes the chain (a trigger, ``sql/migrations/0003_sink.sql``); this module is
the same formula in Python, for ``mg sink verify`` and for anyone who wants to check a sink
from the outside (``docs/sink.md`` has a worked test vector):

    hash_n = sha256(hash_(n-1) || be8(id) || utf8(ns) || 0x00 || utf8(machine_id) || 0x00 ||
                    be8(event.id) || be8(created_at in µs since the Unix epoch) ||
                    be4(format_version, or -1 when null) || msgpack(event.data))

with ``hash_0`` = 32 zero bytes.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mg.core.clock import to_micros
from mg.core.model import Direction, Event
from mg.core.shapes import event_value

GENESIS = bytes(32)
"""``hash_0``: what the first event of every sink chains from."""


def sequencer_topic(sink: str) -> str:
    """The wake-up topic poked when outbox rows for ``sink`` were committed."""
    return f"sink:{sink}"


def readers_topic(sink: str) -> str:
    """The wake-up topic poked when new events of ``sink`` became readable."""
    return f"sink-events:{sink}"


def reads_pruned(after: int | None, direction: Direction, first: int) -> bool:
    """Whether a read would have to start below ``first``, the sink's first held position
    (PROTOCOL section 7): forward with ``after < first - 1``. A backward read reaching below
    ``first`` is simply clipped, and a read without ``after`` starts at what is held."""
    return direction is Direction.FORWARD and after is not None and after < first - 1


@dataclass(frozen=True, slots=True)
class SinkBounds:
    """The positions a sink holds, ``first..last`` (``first = last + 1`` when none), and
    ``anchor``, the hash of position ``first - 1`` (``GENESIS`` when nothing was pruned)."""

    first: int
    last: int
    anchor: bytes


@dataclass(frozen=True, slots=True)
class SinkEvent:
    """One event as a sink holds it: ``position`` is its id in the sink's total order.

    ``incarnation`` tells apart two machines of the same id separated by a remove (a machine
    started again begins at event 1 again); it is not part of the hash.
    """

    position: int
    ns: str
    machine_id: str
    incarnation: int
    event: Event
    hash: bytes


@dataclass(frozen=True, slots=True)
class StoredLink:
    """One link of a chain as stored: the hashed fields, data in its stored bytes."""

    position: int
    ns: str
    machine_id: str
    event_id: int
    created_at: datetime
    format_version: int | None
    data: bytes
    hash: bytes


def link(
    previous: bytes,
    position: int,
    ns: str,
    machine_id: str,
    event_id: int,
    created_at: datetime,
    format_version: int | None,
    packed_data: bytes,
) -> bytes:
    """The bytes hashed for one event (everything after ``previous`` is this event's own)."""
    return b"".join(
        (
            previous,
            struct.pack(">q", position),
            ns.encode("utf-8"),
            b"\x00",
            machine_id.encode("utf-8"),
            b"\x00",
            struct.pack(">q", event_id),
            struct.pack(">q", to_micros(created_at)),
            struct.pack(">i", -1 if format_version is None else format_version),
            packed_data,
        )
    )


def chain_hash(
    previous: bytes,
    position: int,
    ns: str,
    machine_id: str,
    event_id: int,
    created_at: datetime,
    format_version: int | None,
    packed_data: bytes,
) -> bytes:
    """``hash_n`` from ``hash_(n-1)`` and event ``n``; ``packed_data`` is the canonical
    MessagePack encoding of the event's data."""
    return hashlib.sha256(
        link(
            previous,
            position,
            ns,
            machine_id,
            event_id,
            created_at,
            format_version,
            packed_data,
        )
    ).digest()


def sink_event_value(found: SinkEvent) -> dict[str, Any]:
    """``SinkEvent`` as the client API writes it (plus ``incarnation``, see the class)."""
    return {
        "id": found.position,
        "ns": found.ns,
        "machine_id": found.machine_id,
        "incarnation": found.incarnation,
        "event": event_value(found.event),
        "hash": found.hash.hex(),
    }
