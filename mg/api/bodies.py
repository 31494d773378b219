"""Bodies in and out: JSON or MessagePack, chosen by ``Content-Type`` and ``Accept``."""

from __future__ import annotations

import json
from typing import Any

from mg.core import values
from mg.errors import InvalidRequest, UnsupportedMediaType

JSON = "application/json"
MSGPACK = "application/msgpack"
_MSGPACK_TYPES = (MSGPACK, "application/x-msgpack", "application/vnd.msgpack")


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
        body = values.unpack(data) if media == MSGPACK else values.loads_json(data)
    except ValueError as error:
        raise InvalidRequest(f"malformed body: {error}") from error
    try:
        values.check(body, "body")
    except values.ValueRejected as error:
        raise InvalidRequest(str(error)) from error
    if not isinstance(body, dict):
        raise InvalidRequest('the body must be an object, such as {"args": ...}')
    return body


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
