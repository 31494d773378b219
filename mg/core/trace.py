"""W3C trace context (``traceparent``): continued from clients into processor calls, and stored
with timers and notifications so the steps they cause continue the same trace."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str
    flags: str = "01"

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> TraceContext:
        """A new span of the same trace, whose parent is this one."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.flags)


def parse(header: str | None) -> TraceContext | None:
    """The context of a valid ``traceparent`` header; invalid ones are ignored (W3C says a
    receiver that cannot parse it starts a new trace)."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip().lower())
    if not match:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return TraceContext(trace_id, span_id, flags)


def new_trace() -> TraceContext:
    return TraceContext(secrets.token_hex(16), secrets.token_hex(8))


def continue_or_start(header: str | None) -> TraceContext:
    """The span of mg's own work: a child of the caller's span, or the root of a new trace."""
    parent = parse(header)
    return parent.child() if parent is not None else new_trace()
