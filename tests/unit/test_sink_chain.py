"""The sink hash chain: the test vector of docs/sink.md, against mg's code and an independent
rendering of the formula."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import msgpack

from mg.core.clock import parse_time, to_micros
from mg.core.sink import GENESIS, chain_hash, link

# docs/sink.md, "Test vector"
FIRST = {
    "created_at": "2026-01-02T03:04:05.678901Z",
    "micros": 1767323045678901,
    "format_version": 1,
    "data": {"amount": 100, "memo": b"\x00\x01"},
    "packed": "82a6616d6f756e7464a46d656d6fc4020001",
    "hash": "715b3428f56fd6791fb146b69004d3f78ead12a6cd7a72b84fffc35449d4518b",
}
SECOND = {
    "created_at": "2026-01-02T03:04:06.000002Z",
    "micros": 1767323046000002,
    "format_version": None,
    "data": "paid",
    "packed": "a470616964",
    "hash": "5f61ca1cd5864a87b53c00a678829af79a7dcc1ad84deea6ec81728a030ad9af",
}
FIRST_BYTES = (
    "00" * 32
    + "0000000000000001"
    + "6f726465727300"
    + "6f726465722d3100"
    + "0000000000000001"
    + "0006475ef6574f35"
    + "00000001"
    + "82a6616d6f756e7464a46d656d6fc4020001"
)


def independent(previous: bytes, position: int, event_id: int, event: dict[str, Any]) -> bytes:
    """The snippet of docs/sink.md: nothing of mg's."""
    version = event["format_version"]
    return hashlib.sha256(
        previous
        + struct.pack(">q", position)
        + b"orders\0order-1\0"
        + struct.pack(">qq", event_id, event["micros"])
        + struct.pack(">i", -1 if version is None else version)
        + msgpack.packb(event["data"])
    ).digest()


def mine(previous: bytes, position: int, event_id: int, event: dict[str, Any]) -> bytes:
    return chain_hash(
        previous,
        position,
        "orders",
        "order-1",
        event_id,
        parse_time(event["created_at"]),
        event["format_version"],
        msgpack.packb(event["data"]),
    )


def test_the_documented_vector_holds_for_mg_and_for_the_documented_snippet() -> None:
    for compute in (mine, independent):
        first = compute(GENESIS, 1, 1, FIRST)
        assert first.hex() == FIRST["hash"]
        assert compute(first, 2, 2, SECOND).hex() == SECOND["hash"]


def test_the_documented_bytes_and_encodings() -> None:
    created = parse_time(str(FIRST["created_at"]))
    assert to_micros(created) == FIRST["micros"]
    assert to_micros(parse_time(str(SECOND["created_at"]))) == SECOND["micros"]
    assert msgpack.packb(FIRST["data"]).hex() == FIRST["packed"]
    assert msgpack.packb(SECOND["data"]).hex() == SECOND["packed"]
    hashed = link(GENESIS, 1, "orders", "order-1", 1, created, 1, msgpack.packb(FIRST["data"]))
    assert hashed.hex() == FIRST_BYTES


def test_times_before_the_epoch_are_negative_microseconds() -> None:
    before = parse_time("1969-12-31T23:59:59.999999Z")
    assert to_micros(before) == -1
    hashed = link(GENESIS, 1, "n", "m", 1, before, None, b"\xc0")
    assert hashed[-13:] == b"\xff" * 12 + b"\xc0"
