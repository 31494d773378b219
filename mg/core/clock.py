"""Time as the contract writes it: RFC 3339, UTC, microseconds; durations with units."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """``2026-11-29T21:50:06.123456Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
