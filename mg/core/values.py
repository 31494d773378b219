"""Values: arbitrary MessagePack values, stored and hashed in their canonical encoding.

The canonical encoding is what ``msgpack.packb(value)`` gives with default options (PROTOCOL
section 5): maps keep their order, binary as bin, strings as str. JSON carries a binary value as
``{"$base64": "..."}``.
"""

from __future__ import annotations

import base64
import binascii
import json
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
    except msgpack.exceptions.StackError:
        raise ValueRejected(f"value nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, msgpack.UnpackException, TypeError) as error:
        raise ValueRejected(f"malformed MessagePack: {error}") from error


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueRejected(f"MessagePack ext type {code} is not a contract value")


MAX_DEPTH = 100
"""The deepest nesting of lists and maps in a value (the value itself is level 0)."""
MIN_INT = -(2**63)
MAX_INT = 2**64 - 1
"""Integers are what MessagePack carries: signed or unsigned 64 bits."""
MAX_DIGITS = 20
"""Digits of the longest integer in range, so JSON integers can be refused before ``int()``."""


def check(value: Any, where: str = "value", *, max_bytes: int | None = None) -> int:
    """The one rule for every value entering mg (client bodies, processor and modernizer
    replies, notification args): nested at most ``MAX_DEPTH`` deep, integers of 64 bits,
    floats finite (JSON cannot carry NaN or infinities), strings valid Unicode (a lone
    surrogate cannot be written as UTF-8), only contract types. Returns an estimate of the
    value's MessagePack size (at least the real size for strings and binary) and refuses a value
    over ``max_bytes``. ``ValueRejected`` names ``where`` and the problem in the contract's
    words."""
    size = _check(value, where, 0)
    if max_bytes is not None and size > max_bytes:
        raise ValueRejected(f"{where}: the value is about {size} bytes; the limit is {max_bytes}")
    return size


def _check(value: Any, where: str, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise ValueRejected(f"{where}: value nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise ValueRejected(f"{where}: integer out of the 64-bit range")
        return 9
    if isinstance(value, float):
        if not math.isfinite(value):
            name = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
            raise ValueRejected(f"{where}: float {name} is not a contract value")
        return 9
    if isinstance(value, str):
        try:
            return 5 + len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueRejected(
                f"{where}: a string holds a lone surrogate, which is not valid Unicode"
            ) from None
    if isinstance(value, bytes):
        return 5 + len(value)
    if isinstance(value, list | tuple):
        return 5 + sum(_check(item, where, depth + 1) for item in value)
    if isinstance(value, dict):
        return 5 + sum(
            _check(key, where, depth + 1) + _check(item, where, depth + 1)
            for key, item in value.items()
        )
    raise ValueRejected(f"{where}: unsupported value type {type(value).__name__}")


def loads_json(data: bytes | str) -> Any:
    """A JSON document as a value (``from_json`` applied), refusing in the contract's words
    what JSON's grammar or Python's parser would let through or fail on: the ``NaN`` and
    ``Infinity`` literals, integers too long for 64 bits, nesting too deep for the parser.
    The result still goes through ``check`` (``1e400`` parses to an infinity)."""
    try:
        parsed = json.loads(data, parse_constant=_refuse_constant, parse_int=_parse_int)
    except RecursionError:
        raise ValueRejected(f"value nested deeper than {MAX_DEPTH} levels") from None
    except ValueRejected:
        raise
    except ValueError as error:  # JSONDecodeError and invalid UTF-8
        raise ValueRejected(f"malformed JSON: {error}") from error
    try:
        return from_json(parsed)
    except RecursionError:
        raise ValueRejected(f"value nested deeper than {MAX_DEPTH} levels") from None


def _refuse_constant(name: str) -> Any:
    raise ValueRejected(f"{name} is not valid JSON")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueRejected("integer out of the 64-bit range")
    return int(text)


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


UNREPRESENTABLE_KEY = "$unrepresentable"


def to_json_marking(value: Any, depth: int = 0) -> Any:
    """``to_json`` for readers of values stored before the value rule held (a non-finite float,
    nesting past ``MAX_DEPTH``): such a part is written as ``{"$unrepresentable": reason}``
    instead of failing the whole read, so a JSON reader can still see the machine or the sink
    window and learn what to skip. Called only after ``to_json`` failed: no cost on the rule's
    values."""
    if depth > MAX_DEPTH:
        return {UNREPRESENTABLE_KEY: f"nested deeper than {MAX_DEPTH} levels"}
    if isinstance(value, bytes):
        return {BASE64_KEY: base64.b64encode(value).decode("ascii")}
    if isinstance(value, list | tuple):
        return [to_json_marking(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {_json_key(key): to_json_marking(item, depth + 1) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return {UNREPRESENTABLE_KEY: f"float {value!r}"}
    if isinstance(value, str) and _has_lone_surrogate(value):
        return {UNREPRESENTABLE_KEY: "a string with a lone surrogate"}
    return value


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


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
