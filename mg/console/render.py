"""Pure helpers for the console's templates: values as JSON text, times in UTC with how long
ago, status colours, and the links of a history page. No I/O, no Quart."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from mg.core import values
from mg.core.model import Direction, Event, Range

STATUS_CLASSES = {
    "sleeping": "status-sleeping",
    "waiting": "status-waiting",
    "retrying": "status-retrying",
    "failed": "status-failed",
}


def as_json(value: Any) -> str:
    """A value as readable JSON text (binary as ``{"$base64": ...}``); never markup: the
    templates escape it like any other text."""
    try:
        text = json.dumps(values.to_json(value), indent=2, ensure_ascii=False)
        text.encode("utf-8")  # a lone surrogate cannot be sent
        return text
    except (values.ValueRejected, RecursionError, UnicodeEncodeError):
        # A value stored before the value rule held: the API's marking, not a failed page.
        return json.dumps(values.to_json_marking(value), indent=2, ensure_ascii=False)


def utc(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(moment: datetime | None, now: datetime) -> str:
    """``3 min ago``, ``in 20 s``, ``just now``."""
    if moment is None:
        return ""
    seconds = (now - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 1:
        return "just now"
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")):
        if seconds >= size:
            amount = math.floor(seconds / size)
            text = f"{amount} {unit}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"  # unreachable: seconds >= 1 here


def status_class(status: str) -> str:
    return STATUS_CLASSES.get(status, "status-other")


def segment(text: str) -> str:
    """One path segment, percent-encoded whole (``/`` included)."""
    return quote(text, safe="")


def machine_path(ns: str, machine_id: str) -> str:
    return f"/ui/namespaces/{segment(ns)}/machines/{quote(machine_id, safe='/')}"


def search_path(ns: str, **query: str | None) -> str:
    base = f"/ui/namespaces/{segment(ns)}/machines"
    found = {k: v for k, v in query.items() if v is not None and v != ""}
    return f"{base}?{urlencode(found)}" if found else base


@dataclass(frozen=True, slots=True)
class HistoryLinks:
    """The queries of a history page's links (None: no such page)."""

    newest: dict[str, str]
    oldest: dict[str, str]
    toward_older: dict[str, str] | None
    toward_newer: dict[str, str] | None


def history_links(
    shown: tuple[Event, ...], selection: Range, first: int, last: int, limit: int
) -> HistoryLinks:
    """Links to page a history held as ids ``first..last`` (contiguous: trimming removes the
    oldest only), ``limit`` events a page, keeping the page's direction. Every link is a
    plain Range of the API, so each page reads only what it shows."""

    def query(after: int | None, direction: Direction) -> dict[str, str]:
        found = {"limit": str(limit), "direction": direction.value}
        if after is not None:
            found["after"] = str(after)
        return found

    forward = selection.direction is Direction.FORWARD
    newest = query(None, Direction.BACKWARD)
    oldest = query(None, Direction.FORWARD)
    if not shown:
        return HistoryLinks(newest, oldest, None, None)
    low = min(event.id for event in shown)
    high = max(event.id for event in shown)
    older: dict[str, str] | None = None
    newer: dict[str, str] | None = None
    if low > first:
        if forward:
            older = query(max(first - 1, low - limit - 1), Direction.FORWARD)
        else:
            older = query(low, Direction.BACKWARD)
    if high < last:
        if forward:
            newer = query(high, Direction.FORWARD)
        else:
            newer = query(min(last + 1, high + limit + 1), Direction.BACKWARD)
    return HistoryLinks(newest, oldest, older, newer)
