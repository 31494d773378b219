"""Reading mg's answers: bodies by their Content-Type, and the contract's result shapes as the
client's typed values. Shape errors surface as ``ShapeError`` (or ``KeyError``/``ValueError``),
which the exchange turns into ``UnexpectedAnswer``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mg.client.results import Machine, MachineSummary, Retry, SearchPage, SinkBounds, SinkEvent
from mg.core import values
from mg.core.clock import parse_time
from mg.core.model import Status
from mg.core.shapes import ShapeError, parse_bounds, parse_content, parse_event, parse_range

MSGPACK = "application/msgpack"
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Answer:
    """What a transport got back; header names in lower case."""

    status: int
    headers: Mapping[str, str]
    content: bytes


def decode(answer: Answer) -> Any:
    """The answer's body by its Content-Type; ``None`` when empty or not JSON/MessagePack."""
    if not answer.content:
        return None
    media = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if media in (MSGPACK, "application/x-msgpack", "application/vnd.msgpack"):
            return values.unpack(answer.content)
        if media == JSON or media.endswith("+json"):
            return values.from_json(json.loads(answer.content))
    except ValueError:
        return None
    return None


def string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ShapeError(f"{where} must be a string")
    return value


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as error:
        raise ShapeError(f"{where}: {error}") from error


def machine_from(body: Any) -> Machine:
    failure = body.get("failure")
    aux = body.get("aux_state")
    return Machine(
        ns=string(body["ns"], "ns"),
        id=string(body["id"], "id"),
        status=Status(body["status"]),
        failure_reason=failure.get("reason") if isinstance(failure, dict) else None,
        history=tuple(
            parse_event(item, f"history[{index}]") for index, item in enumerate(body["history"])
        ),
        history_range=parse_range(body.get("history_range"), "history_range"),
        aux_state=parse_content(aux, "aux_state") if aux is not None else None,
        timer=_time(body.get("timer"), "timer"),
        tags=tuple(string(tag, "tags[]") for tag in body.get("tags") or ()),
        history_bounds=parse_bounds(body.get("history_bounds")),
        retry=_retry(body.get("retry")),
    )


def _retry(value: Any) -> Retry | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ShapeError("retry must be an object or null")
    attempt = value.get("attempt")
    if not isinstance(attempt, int) or isinstance(attempt, bool):
        raise ShapeError("retry.attempt must be an integer")
    next_at = _time(value.get("next_at"), "retry.next_at")
    if next_at is None:
        raise ShapeError("retry.next_at is missing")
    return Retry(
        subject=string(value.get("subject"), "retry.subject"),
        attempt=attempt,
        next_at=next_at,
        last_error=string(value.get("last_error"), "retry.last_error"),
    )


def search_page_from(body: Any) -> SearchPage:
    machines = tuple(
        MachineSummary(
            id=string(row["id"], "id"),
            status=Status(row["status"]),
            timer=_time(row.get("timer"), "timer"),
            updated_at=parse_time(row["updated_at"]),
        )
        for row in body["machines"]
    )
    cursor = body.get("next_cursor")
    return SearchPage(machines, string(cursor, "next_cursor") if cursor is not None else None)


def sink_events_from(body: Any) -> tuple[SinkEvent, ...]:
    return tuple(
        SinkEvent(
            id=int(row["id"]),
            ns=string(row["ns"], "ns"),
            machine_id=string(row["machine_id"], "machine_id"),
            event=parse_event(row["event"], "event"),
            hash=string(row["hash"], "hash"),
            incarnation=_incarnation(row.get("incarnation")),
        )
        for row in body["events"]
    )


def _incarnation(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ShapeError("incarnation must be an integer")
    return value


def sink_bounds_from(body: Any) -> SinkBounds:
    first, last, anchor = body["first"], body["last"], string(body["anchor"], "anchor")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (first, last)):
        raise ShapeError("first and last must be integers")
    if len(anchor) != 64:
        raise ShapeError("anchor must be 64 hex digits")
    bytes.fromhex(anchor)
    return SinkBounds(string(body["sink"], "sink"), first, last, anchor)
