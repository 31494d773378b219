"""A chain check of a chosen span of a sink, for the sink page: ``mg sink verify``'s own
logic (``mg.service.sink_verify``), on a source cut at the span's end, so one check reads at
most ``MAX_SPAN`` events."""

from __future__ import annotations

from mg.core.sink import SinkBounds, StoredLink
from mg.errors import InvalidRequest
from mg.service.sink_verify import CannotVerify, ChainSource, Verdict, verify_chain

MAX_SPAN = 10_000


class _Until:
    """A chain source that ends at position ``until``."""

    def __init__(self, source: ChainSource, until: int) -> None:
        self._source = source
        self._until = until

    async def chain_page(self, sink: str, start: int, limit: int) -> list[StoredLink]:
        if start > self._until:
            return []
        wanted = min(limit, self._until - start + 1)
        return await self._source.chain_page(sink, start, wanted)

    async def hash_at(self, sink: str, position: int) -> bytes | None:
        return await self._source.hash_at(sink, position)

    async def bounds(self, sink: str) -> SinkBounds:
        return await self._source.bounds(sink)


def _position(text: str, what: str) -> int:
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit() or len(stripped) > 18:
        raise InvalidRequest(f"{what} must be a position (a whole number from 1)")
    found = int(stripped)
    if found < 1:
        raise InvalidRequest(f"{what} must be a position (a whole number from 1)")
    return found


async def verify_span(source: ChainSource, sink: str, start_text: str, end_text: str) -> Verdict:
    """Check positions ``start..end`` (``end`` empty: ``MAX_SPAN`` events from ``start``)."""
    start = _position(start_text, "from")
    end = _position(end_text, "to") if end_text.strip() else start + MAX_SPAN - 1
    if end < start:
        raise InvalidRequest("to must not be below from")
    if end - start + 1 > MAX_SPAN:
        raise InvalidRequest(f"a check covers at most {MAX_SPAN} positions at a time")
    try:
        return await verify_chain(_Until(source, end), sink, start)
    except CannotVerify as error:
        raise InvalidRequest(str(error)) from error
