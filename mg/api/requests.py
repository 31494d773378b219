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
# Plain ASCII digits only: int() would also take "+5", " 5", "5_000" and other scripts' digits.
_INTEGER = re.compile(r"^-?[0-9]{1,19}$")
_MILLISECONDS = re.compile(r"^[0-9]{1,12}$")
MAX_TIMEOUT_MS = 24 * 3600 * 1000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_RANGE_KEYS = ("after", "limit", "direction")


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
    """From ``X-Request-Deadline`` (RFC 3339) and ``X-Request-Timeout`` (ms), else the
    namespace's default. Both headers are checked when sent; with both, the earlier wins."""
    absolute = headers.get("x-request-deadline")
    relative = headers.get("x-request-timeout")
    found: list[Deadline] = []
    # A header sent empty is a mistake, not an absent header.
    if absolute is not None:
        try:
            found.append(Deadline(parse_time(absolute.strip())))
        except (ValueError, OverflowError) as error:
            raise InvalidRequest(f"X-Request-Deadline: {error}") from error
    if relative is not None:
        text = relative.strip()
        if not _MILLISECONDS.match(text) or int(text) > MAX_TIMEOUT_MS:
            raise InvalidRequest(
                f"X-Request-Timeout must be a whole number of milliseconds up to {MAX_TIMEOUT_MS}"
            )
        found.append(Deadline.after(int(text) / 1000))
    if not found:
        return Deadline.after(default_seconds)
    return min(found, key=lambda candidate: candidate.at)


def _check_bounds(selection: Range, where: str) -> Range:
    """Ids are Postgres bigints: anything past 64 bits is refused, not clipped."""
    for name in ("after", "limit"):
        value = getattr(selection, name)
        if value is not None and not INT64_MIN <= value <= INT64_MAX:
            raise InvalidRequest(f"{where}{name} is out of the 64-bit integer range")
    return selection


def _integral(value: Any) -> Any:
    """``5.0`` is the integer 5 (JSON has one number type, and JSON Schema's ``integer`` takes
    it); a float that is not a whole number stays a float, and is refused."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2.0**63:
        return int(value)
    return value


def body_range(body: Mapping[str, Any]) -> Range:
    found = body.get("range")
    if isinstance(found, dict):
        # The processor protocol is lenient about unknown members; clients' ranges are not.
        extra = sorted(map(str, set(found) - set(_RANGE_KEYS)))
        if extra:
            raise InvalidRequest(f"unknown range member(s): {', '.join(extra)}")
        if "direction" in found and found["direction"] is None:
            raise InvalidRequest('range.direction must be "forward" or "backward"')
        found = {key: _integral(value) for key, value in found.items()}
    try:
        return _check_bounds(parse_range(found), "range.")
    except ShapeError as error:
        raise InvalidRequest(str(error)) from error


def _query_int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not _INTEGER.match(raw):
        raise InvalidRequest(f"{name} must be an integer")
    return int(raw)


def only_query(query: Mapping[str, str], allowed: tuple[str, ...]) -> None:
    """Unknown query parameters are refused: a misspelt ``limit`` must not silently mean none."""
    extra = sorted(set(query) - set(allowed))
    if extra:
        raise InvalidRequest(f"unknown query parameter(s): {', '.join(extra)}")


def query_range(query: Mapping[str, str]) -> Range:
    direction = query.get("direction", "forward")
    try:
        return _check_bounds(
            parse_range(
                {
                    "after": _query_int(query, "after"),
                    "limit": _query_int(query, "limit"),
                    "direction": direction,
                }
            ),
            "",
        )
    except ShapeError as error:
        raise InvalidRequest(str(error).replace("range.", "")) from error


def query_status(query: Mapping[str, str]) -> Status | None:
    raw = query.get("status")
    if raw is None:
        return None
    try:
        return Status(raw)
    except ValueError as error:
        names = ", ".join(s.value for s in Status)
        raise InvalidRequest(f"status must be one of {names}") from error


def query_limit(query: Mapping[str, str], default: int) -> int:
    found = _query_int(query, "limit")
    return default if found is None else found


def query_cursor(query: Mapping[str, str]) -> str | None:
    found = query.get("cursor")
    if found == "":
        raise InvalidRequest("cursor must not be empty (leave it out for the first page)")
    return found


def only_keys(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Unknown body members are refused: a misspelt ``range`` must not silently mean none."""
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise InvalidRequest(f"unknown body member(s): {', '.join(map(str, extra))}")


def query_wait(query: Mapping[str, str]) -> float:
    """``wait``: seconds a sink read may long-poll (a number, fractions allowed); absent: 0."""
    raw = query.get("wait")
    if raw is None:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError as error:
        raise InvalidRequest("wait must be a number of seconds") from error
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidRequest("wait must be a non-negative number of seconds")
    return seconds
