"""Bodies and headers of mg's outgoing HTTP calls (processors and modernizers): MessagePack or
JSON out, either back by the answer's Content-Type."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from mg.core import values
from mg.core.clock import format_time
from mg.core.deadline import Deadline
from mg.core.shapes import ShapeError

MSGPACK = "application/msgpack"
JSON = "application/json"
# How much of an unexpected answer is kept in a failure reason.
REASON_EXCERPT = 300


@dataclass(frozen=True, slots=True)
class ReadAnswer:
    """An answer read whole: its status, its Content-Type (``""`` when it has none) and its
    body, decoded when it named a content encoding."""

    status: int
    content_type: str
    content: bytes


def encode(body: dict[str, Any], encoding: str) -> tuple[bytes, str]:
    """The body in ``encoding`` (``"json"`` or ``"msgpack"``) and its media type."""
    if encoding == "json":
        return json.dumps(values.to_json(body), separators=(",", ":")).encode(), JSON
    return values.pack(body), MSGPACK


def decode(answer: ReadAnswer, encoding: str) -> Any:
    """An answer's body by its Content-Type (``encoding`` when it names none)."""
    media = answer.content_type.split(";")[0].strip().lower()
    if media in (MSGPACK, "application/x-msgpack") or (not media and encoding == "msgpack"):
        return values.unpack(answer.content)
    if media == JSON or media.endswith("+json") or (not media and encoding == "json"):
        return values.loads_json(answer.content)
    raise ShapeError(f"unsupported content type {media!r}")


def excerpt(answer: ReadAnswer) -> str:
    text = answer.content[:REASON_EXCERPT].decode("utf-8", errors="replace")
    return text + ("..." if len(answer.content) > REASON_EXCERPT else "")


def header_safe(text: str) -> str:
    """HTTP header values are ASCII: ids that are not are percent-encoded."""
    if text.isascii() and text.isprintable():
        return text
    return quote(text, safe="")


def media_of(encoding: str) -> str:
    """The media type of bodies in ``encoding`` (``"json"`` or ``"msgpack"``)."""
    return JSON if encoding == "json" else MSGPACK


def call_headers(
    media: str, deadline: Deadline, namespace: str, machine_id: str, trace: str | None
) -> dict[str, str]:
    """The headers of a call to a processor or a modernizer (PROTOCOL section 4)."""
    headers = {
        "content-type": media,
        "accept": media,
        "x-request-deadline": format_time(deadline.at),
        "x-mg-namespace": header_safe(namespace),
        "x-mg-machine-id": header_safe(machine_id),
    }
    if trace:
        headers["traceparent"] = trace
    return headers


class CallHeaders:
    """``call_headers`` of one namespace's processor calls, as bytes, those that never change
    encoded once."""

    def __init__(self, namespace: str, media: str) -> None:
        self._fixed = (
            (b"content-type", media.encode()),
            (b"accept", media.encode()),
        )
        self._namespace = (b"x-mg-namespace", header_safe(namespace).encode())

    def of(
        self, deadline: Deadline, machine_id: str, trace: str | None
    ) -> list[tuple[bytes, bytes]]:
        headers = [
            *self._fixed,
            (b"x-request-deadline", format_time(deadline.at).encode()),
            self._namespace,
            (b"x-mg-machine-id", header_safe(machine_id).encode()),
        ]
        if trace:
            headers.append((b"traceparent", trace.encode()))
        return headers
