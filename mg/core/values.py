"""Values: arbitrary MessagePack values, stored and hashed in their canonical encoding.

The canonical encoding is what ``msgpack.packb(value)`` gives with default options (PROTOCOL
section 5): maps keep their order, binary as bin, strings as str. JSON carries a binary value as
``{"$base64": "..."}``.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import msgpack

BASE64_KEY = "$base64"


class ValueRejected(ValueError):
    """A value that MessagePack or JSON cannot carry as the contract says."""


def pack(value: Any) -> bytes:
    """The canonical MessagePack encoding of ``value``."""
    packed: bytes = msgpack.packb(value)
    return packed


def unpack(data: bytes) -> Any:
    """Decode one MessagePack value; ext types are refused."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_refuse_ext)
    except ValueRejected:
        raise
    except (ValueError, msgpack.UnpackException, TypeError) as error:
        raise ValueRejected(f"malformed MessagePack: {error}") from error


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueRejected(f"MessagePack ext type {code} is not a contract value")


def check(value: Any, depth: int = 0) -> None:
    """Refuse what the canonical encoding cannot carry (e.g. NaN from JSON is allowed by
    MessagePack, so only structural problems are refused: too deep, or odd types)."""
    if depth > 100:
        raise ValueRejected("value nested deeper than 100 levels")
    if value is None or isinstance(value, bool | int | float | str | bytes):
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and not (-(2**63) <= value < 2**64)
        ):
            raise ValueRejected("integer out of the 64-bit range")
        return
    if isinstance(value, list):
        for item in value:
            check(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            check(key, depth + 1)
            check(item, depth + 1)
        return
    raise ValueRejected(f"unsupported value type {type(value).__name__}")


def to_json(value: Any) -> Any:
    """A JSON-ready copy of ``value``: binary as ``{"$base64": ...}``.

    Map keys that JSON cannot carry (numbers, binary) are written as their string form; a
    client that needs such keys exactly should speak MessagePack.
    """
    if isinstance(value, bytes):
        return {BASE64_KEY: base64.b64encode(value).decode("ascii")}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {_json_key(key): to_json(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueRejected("a non-finite float cannot be written as JSON; use MessagePack")
    return value


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return base64.b64encode(key).decode("ascii")
    return str(key).lower() if isinstance(key, bool) else str(key)


def from_json(value: Any) -> Any:
    """The value a JSON document means: ``{"$base64": s}`` becomes binary."""
    if isinstance(value, dict):
        if len(value) == 1 and BASE64_KEY in value:
            encoded = value[BASE64_KEY]
            if not isinstance(encoded, str):
                raise ValueRejected("$base64 must be a string")
            try:
                return base64.b64decode(encoded, validate=True)
            except binascii.Error as error:
                raise ValueRejected(f"invalid $base64 value: {error}") from error
        return {key: from_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_json(item) for item in value]
    return value
