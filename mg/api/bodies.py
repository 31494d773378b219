"""Bodies in and out: JSON or MessagePack, chosen by ``Content-Type`` and ``Accept``."""

from __future__ import annotations

import json
import re
from typing import Any

import msgpack

from mg.core import values
from mg.errors import InvalidRequest, UnsupportedMediaType

JSON = "application/json"
MSGPACK = "application/msgpack"
_MSGPACK_TYPES = (MSGPACK, "application/x-msgpack", "application/vnd.msgpack")

MAX_VALUES = 262_144
"""The most values (array items, map keys and values) one request body may hold. Decoded,
a value costs ~10 to ~70 times its encoded size (4 MiB of empty maps are ~300 MB of Python
objects), so the body's size alone does not bound the memory a request takes."""

_TOO_MANY = f"the body holds more than {MAX_VALUES} values"
# A JSON string, or an unterminated one up to the end (so a search never backtracks).
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\Z)', re.DOTALL)


def media_type(header: str | None) -> str | None:
    """``application/json`` or ``application/msgpack`` for a Content-Type, None if absent,
    ``""`` if it is something else."""
    if not header:
        return None
    media = header.split(";")[0].strip().lower()
    if media in _MSGPACK_TYPES:
        return MSGPACK
    if media == JSON or (media.startswith("application/") and media.endswith("+json")):
        return JSON
    return ""


def response_type(accept: str | None, request_type: str | None) -> str:
    """What to answer in: the type named in Accept, else the request's type, else JSON."""
    if accept:
        for part in accept.split(","):
            media = part.split(";")[0].strip().lower()
            if media in _MSGPACK_TYPES:
                return MSGPACK
            if media == JSON:
                return JSON
    return request_type or JSON


def decode(data: bytes, content_type: str | None) -> dict[str, Any]:
    """A request body as a dict; an absent body is ``{}``. Every value in it passes the one
    value rule (``values.check``)."""
    media = media_type(content_type)
    if not data:
        if media == "":
            raise UnsupportedMediaType(f"unsupported content type {content_type!r}")
        return {}
    if media is None:
        raise UnsupportedMediaType(
            "a body needs Content-Type application/json or application/msgpack"
        )
    if media == "":
        raise UnsupportedMediaType(
            f"unsupported content type {content_type!r}; "
            "use application/json or application/msgpack"
        )
    try:
        body = _unpack(data) if media == MSGPACK else _from_json(data)
    except InvalidRequest:
        raise
    except ValueError as error:
        raise InvalidRequest(f"malformed body: {error}") from error
    try:
        values.check(body, "body")
    except values.ValueRejected as error:
        raise InvalidRequest(str(error)) from error
    if not isinstance(body, dict):
        raise InvalidRequest('the body must be an object, such as {"args": ...}')
    return body


def _unpack(data: bytes) -> Any:
    """One MessagePack value, counting values as containers are built: past ``MAX_VALUES``
    decoding stops, so memory stays bounded whatever the body holds."""
    seen = 0

    def count(container: Any) -> Any:
        nonlocal seen
        seen += len(container) * (2 if isinstance(container, dict) else 1)
        if seen > MAX_VALUES:
            raise InvalidRequest(_TOO_MANY)
        return container

    limit = min(len(data), MAX_VALUES)
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=False,
            ext_hook=_refuse_ext,
            list_hook=count,
            object_hook=count,
            max_array_len=limit,
            max_map_len=limit,
        )
    except (InvalidRequest, values.ValueRejected):
        raise
    except msgpack.exceptions.StackError as error:  # msgpack's own bound, far past ours
        raise values.ValueRejected(f"value nested deeper than {values.MAX_DEPTH} levels") from error
    except (ValueError, msgpack.UnpackException, TypeError) as error:
        if "exceeds max_" in str(error):
            raise InvalidRequest(_TOO_MANY) from error
        raise values.ValueRejected(f"malformed MessagePack: {error}") from error


def _refuse_ext(code: int, data: bytes) -> Any:
    raise values.ValueRejected(f"MessagePack ext type {code} is not a contract value")


def _from_json(data: bytes) -> Any:
    """JSON, refused unheard when it could hold more than ``MAX_VALUES`` values: every value
    but the first of an array or object follows a comma, so commas and brackets outside
    strings bound the count (first counted everywhere, which is cheaper and usually enough)."""
    if _structure_count(data) > MAX_VALUES:
        outside = _JSON_STRING.sub(b"", data)
        if _structure_count(outside) > MAX_VALUES:
            raise InvalidRequest(_TOO_MANY)
    return values.loads_json(data)


def _structure_count(data: bytes) -> int:
    return data.count(b",") + data.count(b"[") + data.count(b"{")


def encode(body: Any, media: str) -> bytes:
    if media == MSGPACK:
        return values.pack(body)
    try:
        return json.dumps(values.to_json(body), separators=(",", ":"), ensure_ascii=False).encode()
    except (values.ValueRejected, RecursionError, UnicodeEncodeError):
        # A value stored before the value rule held (docs/architecture.md, "Value bounds"):
        # the read still answers, with the part JSON cannot carry marked.
        marked = values.to_json_marking(body)
        return json.dumps(marked, separators=(",", ":"), ensure_ascii=False).encode()
