"""Time as the contract writes it: RFC 3339, UTC, microseconds; durations with units."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""The window of times mg stores and answers: a timer deadline before it fires at once (it is
stored as ``EARLIEST``); nothing after ``LATEST`` can be written in RFC 3339."""
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
MAX_HANDLING_TIMEOUT = 86_400.0
"""The longest ``handling_timeout`` a timer may carry (a day), like ``X-Request-Timeout``."""
MAX_TIMER_TIMEOUT = 10 * 365 * 86_400.0
"""The longest timer ``timeout`` (about ten years)."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """``2026-11-29T21:50:06.123456Z``: RFC 3339 with a four-digit year, whatever the moment
    (``strftime("%Y")`` writes year 1 as ``1``); a naive moment is taken as UTC."""
    m = stored_time(moment)
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T"
        f"{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond:06d}Z"
    )


def stored_time(moment: datetime) -> datetime:
    """A timestamp as read back from storage, made aware (UTC). Postgres's ``-infinity`` and
    ``infinity`` come back from the driver as naive ``datetime.min``/``datetime.max``: they
    are read as the edges of the window (``EARLIEST``, ``LATEST``), so nothing read back is
    naive or infinite, and a legacy timer at ``-infinity`` is simply due."""
    if moment.tzinfo is UTC:
        return moment  # what the driver gives for every finite timestamptz
    if moment.tzinfo is None:
        if moment == datetime.min:
            return EARLIEST
        if moment == datetime.max:
            return LATEST
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def stored_duration(seconds: float | None, ceiling: float = MAX_HANDLING_TIMEOUT) -> float | None:
    """A duration as read back from storage: ``None`` for absent, NaN or not positive (the
    default applies), else at most ``ceiling`` (infinity included)."""
    if seconds is None or math.isnan(seconds) or seconds <= 0:
        return None
    return min(float(seconds), ceiling)


def parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp with any UTC offset, as an aware UTC datetime."""
    if not isinstance(text, str) or not _RFC3339.match(text):
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    normal = text.replace("z", "Z").replace("t", "T").replace(" ", "T")
    # Python keeps at most microseconds: cut longer fractions rather than refuse them.
    match = re.search(r"\.(\d+)", normal)
    if match and len(match.group(1)) > 6:
        normal = normal[: match.start(1) + 6] + normal[match.end(1) :]
    return datetime.fromisoformat(normal).astimezone(UTC)


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``"30s"``, ``"500ms"``, ``"1m"``, ``"2h"``, ``"30d"`` (a bare number is
    seconds)."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"negative duration: {text!r}")
        return float(text)
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration (number with ms, s, m, h or d): {text!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def to_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def after(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)
