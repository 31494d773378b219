"""Outgoing HTTP to one processor through several small httpcore pools (httpx's own connection
layer, by its public interface).

Measured under load (docs/performance.md): on every request and every response close,
httpcore's pool walks all its connections and asks each idle one whether the server closed it,
one ``poll`` system call per connection, and ``AsyncClient`` adds layers (auth, redirects,
cookies, event hooks, URL merging) that a processor call never needs. So a processor's
connections are split into pools of ``PER_POOL`` connections: a request goes to the pool with
the fewest requests in flight, whose walk is short (pools of one connection measured a little
ahead of pools of two, within the noise).

The pools are httpcore's ``AsyncConnectionPool``, as under ``httpx.AsyncHTTPTransport``, with
the same limits and TLS context, but requests go to them without httpx's ``Request`` and
``Response`` around each call (headers normalised and copied, a body stream, response
iterators and their context managers): the URL and the headers that never change are encoded
once, the answer is read from httpcore's stream, and httpcore's errors become httpx's by
httpx's own table, so callers see what ``httpx.AsyncHTTPTransport`` raised. The socket under
the pools is ``http_network.TrioNetwork``: a request in one write, no timer per read.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterable
from typing import cast

import httpcore
import httpx
import trio

from mg.adapters.http_answers import decoded, read_chunks, refuse_declared
from mg.adapters.http_bodies import ReadAnswer
from mg.adapters.http_network import TrioNetwork

PER_POOL = 1

Headers = list[tuple[bytes, bytes]]

# httpcore's errors as httpx's transport maps them (httpx._transports.default), most specific
# first: a subclass is found before its base by walking the error's own class hierarchy.
_AS_HTTPX: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
}
_HTTPCORE_ERRORS = tuple(_AS_HTTPX)


def as_httpx(error: Exception) -> httpx.TransportError:
    """The httpx error ``httpx.AsyncHTTPTransport`` raises for httpcore's ``error``."""
    for kind in type(error).__mro__:
        if kind in _AS_HTTPX:
            return _AS_HTTPX[kind](str(error))
    raise TypeError(f"not an httpcore error: {error!r}")


class HttpPools:
    """At most ``max_connections`` keep-alive connections to ``url``, in pools of
    ``PER_POOL``."""

    def __init__(
        self,
        url: str,
        max_connections: int,
        *,
        keepalive_expiry: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parsed = httpx.URL(url)
        self._url = httpcore.URL(
            scheme=parsed.raw_scheme,
            host=parsed.raw_host,
            port=parsed.port,
            target=parsed.raw_path,
        )
        self._host = (b"Host", parsed.netloc)
        if ssl_context is None and parsed.scheme == "https":
            # As httpx.AsyncHTTPTransport(trust_env=False): certifi's authorities, and never
            # certificates picked up from the environment by accident.
            ssl_context = httpx.create_ssl_context(trust_env=False)
        count = max(1, math.ceil(max_connections / PER_POOL))
        per_pool = max(1, max_connections // count)
        network = TrioNetwork()
        self._pools = [
            httpcore.AsyncConnectionPool(
                ssl_context=ssl_context,
                max_connections=per_pool,
                max_keepalive_connections=per_pool,
                keepalive_expiry=keepalive_expiry,
                network_backend=network,
            )
            for _ in range(count)
        ]
        self._in_flight = [0] * count

    async def send(
        self, body: bytes, headers: Headers, seconds: float, max_bytes: int | None = None
    ) -> ReadAnswer:
        """POST ``body`` and read the whole answer within ``seconds``, headers and body
        together; httpx's ``TimeoutException`` past them, its ``TransportError`` for what
        httpx raises one; ``AnswerTooLarge`` past ``max_bytes`` of body;
        ``httpx.DecodingError`` for a body its content encoding does not decode.

        The whole exchange runs in one trio cancel scope: no per-operation timeouts, which
        bound each socket operation only (a server that sends a byte now and then never trips
        them). Cancelled mid-answer, httpcore closes the connection rather than pooling it
        half read."""
        request = httpcore.Request(
            b"POST",
            self._url,
            headers=[self._host, *headers, (b"Content-Length", b"%d" % len(body))],
            content=body,
        )
        in_flight = self._in_flight
        index = in_flight.index(min(in_flight))
        in_flight[index] += 1
        answer: ReadAnswer | None = None
        try:
            with trio.move_on_after(seconds):
                answer = await _exchange(self._pools[index], request, max_bytes)
        except _HTTPCORE_ERRORS as error:
            raise as_httpx(error) from error
        finally:
            in_flight[index] -= 1
        if answer is None:
            raise httpx.ReadTimeout(f"no whole answer within {seconds:.3f}s")
        return answer

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


async def _exchange(
    pool: httpcore.AsyncConnectionPool, request: httpcore.Request, max_bytes: int | None
) -> ReadAnswer:
    response = await pool.handle_async_request(request)
    try:
        length, encoding, media = _named(response.headers)
        refuse_declared(length, max_bytes)
        # A pool's answer streams asynchronously (httpcore's type names both kinds).
        chunks = await read_chunks(cast(AsyncIterable[bytes], response.stream), max_bytes)
    finally:
        await response.aclose()
    content = b"".join(chunks) if encoding is None else decoded(encoding, chunks, max_bytes)
    return ReadAnswer(response.status, media or "", content)


def _named(headers: Headers) -> tuple[str | None, str | None, str | None]:
    """Content-Length, Content-Encoding and Content-Type, each ``None`` when absent and its
    values joined by ``", "`` when repeated (as ``httpx.Headers.get`` reads them)."""
    found: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered in _WANTED:
            found.setdefault(lowered, []).append(value)

    def joined(name: bytes) -> str | None:
        values = found.get(name)
        return None if values is None else b", ".join(values).decode("utf-8", "replace")

    return joined(b"content-length"), joined(b"content-encoding"), joined(b"content-type")


_WANTED = frozenset((b"content-length", b"content-encoding", b"content-type"))
