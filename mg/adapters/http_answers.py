"""Reading an answer's body whole, within a byte limit, decoded by its Content-Encoding."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterator

import httpx


class AnswerTooLarge(Exception):
    """An answer's body is over the byte limit of its reader (nothing past it was read)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the answer is over {limit} bytes (at least {size})")
        self.size = size
        self.limit = limit


def refuse_declared(content_length: str | None, limit: int | None) -> None:
    """``AnswerTooLarge`` before reading, when the declared length is over ``limit``."""
    declared = int(content_length) if content_length and content_length.isdigit() else None
    if limit is not None and declared is not None and declared > limit:
        raise AnswerTooLarge(declared, limit)


async def read_chunks(parts: AsyncIterable[bytes], limit: int | None) -> list[bytes]:
    """The chunks of a body as they came, or ``AnswerTooLarge`` when they are over ``limit``
    bytes: read to the end with everything past the limit dropped, so a huge answer never
    sits in memory. (Reading on, rather than leaving the stream half-read, lets httpcore's
    generators finish: trio warns about async generators collected unfinished.)"""
    chunks: list[bytes] = []
    size = 0
    async for chunk in parts:
        size += len(chunk)
        if limit is None or size <= limit:
            chunks.append(chunk)
        elif chunks:
            chunks.clear()
    if limit is not None and size > limit:
        raise AnswerTooLarge(size, limit)
    return chunks


class _Chunks(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks


def decoded(content_encoding: str, chunks: list[bytes], limit: int | None) -> bytes:
    """A body sent with ``content_encoding``, decoded by httpx's rules (an encoding it does not
    know is taken as none), chunk by chunk so that a small body inflating to a huge one stops
    at ``limit`` bytes (``AnswerTooLarge``); ``httpx.DecodingError`` when it does not decode.

    Decoded here, after the whole body was read, rather than while reading
    (``Response.aiter_bytes``): a body that does not decode would stop the reading half way,
    leaving httpcore's async generators unfinished."""
    encoded = httpx.Response(
        200, headers={"content-encoding": content_encoding}, stream=_Chunks(chunks)
    )
    parts: list[bytes] = []
    size = 0
    for part in encoded.iter_bytes():
        size += len(part)
        if limit is not None and size > limit:
            raise AnswerTooLarge(size, limit)
        parts.append(part)
    return b"".join(parts)


async def read_limited(response: httpx.Response, limit: int | None) -> bytes:
    """The body of a streamed ``response``, decoded; ``AnswerTooLarge`` when it is over
    ``limit`` bytes, on the wire (refused before reading when its declared length says so) or
    decoded."""
    headers = response.headers
    refuse_declared(headers.get("content-length"), limit)
    chunks = await read_chunks(response.aiter_raw(), limit)
    encoding = headers.get("content-encoding")
    if encoding is None:
        return b"".join(chunks)
    return decoded(encoding, chunks, limit)
