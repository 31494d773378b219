"""Reading the parts of a client request that every operation shares: ids, ranges, deadlines,
request ids, and the fields of bodies."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from typing import Any

from mg.core.clock import parse_time
from mg.core.deadline import Deadline
from mg.core.model import Range, Status
from mg.core.shapes import ShapeError, check_machine_id, parse_range
from mg.errors import InvalidRequest

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
MAX_TIMEOUT_MS = 24 * 3600 * 1000


def request_id(header: str | None) -> str:
    """The client's ``X-Request-Id`` when it is sane, else a new one."""
    if header and _REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


def machine_id(value: str, what: str = "id") -> str:
    try:
        return check_machine_id(value, what)
    except ShapeError as error:
        raise InvalidRequest(str(error)) from error


def deadline(headers: Mapping[str, str], default_seconds: float) -> Deadline:
    """From ``X-Request-Deadline`` (RFC 3339) or ``X-Request-Timeout`` (ms), else the
    namespace's default."""
    absolute = headers.get("x-request-deadline")
    relative = headers.get("x-request-timeout")
    if absolute:
        try:
            return Deadline(parse_time(absolute.strip()))
        except (ValueError, OverflowError) as error:
            raise InvalidRequest(f"X-Request-Deadline: {error}") from error
    if relative:
        text = relative.strip()
        if not text.isdigit() or int(text) > MAX_TIMEOUT_MS:
            raise InvalidRequest(
                f"X-Request-Timeout must be a whole number of milliseconds up to {MAX_TIMEOUT_MS}"
            )
        return Deadline.after(int(text) / 1000)
    return Deadline.after(default_seconds)


def body_range(body: Mapping[str, Any]) -> Range:
    try:
        return parse_range(body.get("range"))
    except ShapeError as error:
        raise InvalidRequest(str(error)) from error


def _query_int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as error:
        raise InvalidRequest(f"{name} must be an integer") from error


def query_range(query: Mapping[str, str]) -> Range:
    direction = query.get("direction") or "forward"
    try:
        return parse_range(
            {
                "after": _query_int(query, "after"),
                "limit": _query_int(query, "limit"),
                "direction": direction,
            }
        )
    except ShapeError as error:
        raise InvalidRequest(str(error).replace("range.", "")) from error


def query_status(query: Mapping[str, str]) -> Status | None:
    raw = query.get("status")
    if not raw:
        return None
    try:
        return Status(raw)
    except ValueError as error:
        names = ", ".join(s.value for s in Status)
        raise InvalidRequest(f"status must be one of {names}") from error


def query_limit(query: Mapping[str, str], default: int) -> int:
    found = _query_int(query, "limit")
    return default if found is None else found


def only_keys(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Unknown body members are refused: a misspelt ``range`` must not silently mean none."""
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise InvalidRequest(f"unknown body member(s): {', '.join(map(str, extra))}")


def query_wait(query: Mapping[str, str]) -> float:
    """``wait``: seconds a sink read may long-poll (a number, fractions allowed); absent: 0."""
    raw = query.get("wait")
    if raw is None or raw == "":
        return 0.0
    try:
        seconds = float(raw)
    except ValueError as error:
        raise InvalidRequest("wait must be a number of seconds") from error
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidRequest("wait must be a non-negative number of seconds")
    return seconds
