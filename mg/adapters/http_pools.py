"""Outgoing HTTP through several small httpx pools, used at the transport level.

Measured under load (docs/performance.md): on every request and every response close,
httpcore's pool walks all its connections and asks each idle one whether the server closed it,
one ``poll`` system call per connection, and ``AsyncClient`` adds layers (auth, redirects,
cookies, event hooks, URL merging) that a processor call never needs. So a namespace's
connections are split into pools of ``PER_POOL`` connections: a request goes to the pool with
the fewest requests in flight, whose walk is short (pools of one connection measured a little
ahead of pools of two, within the noise); requests are built once with a parsed URL
and sent straight to httpx's transport (``httpx.AsyncHTTPTransport``, public API), which maps
httpcore's errors to httpx's as the client would.
"""

from __future__ import annotations

import math

import httpx
import trio

from mg.adapters.http_answers import read_limited
from mg.adapters.http_bodies import ReadAnswer

PER_POOL = 1


class HttpPools:
    """At most ``max_connections`` keep-alive connections, in pools of ``PER_POOL``."""

    def __init__(self, max_connections: int, *, keepalive_expiry: float = 5.0) -> None:
        count = max(1, math.ceil(max_connections / PER_POOL))
        per_pool = max(1, max_connections // count)
        limits = httpx.Limits(
            max_connections=per_pool,
            max_keepalive_connections=per_pool,
            keepalive_expiry=keepalive_expiry,
        )
        # trust_env off: certificates from the environment are never picked up by accident.
        self._transports = [
            httpx.AsyncHTTPTransport(limits=limits, trust_env=False) for _ in range(count)
        ]
        self._in_flight = [0] * count

    async def send(
        self,
        url: httpx.URL,
        body: bytes,
        headers: dict[str, str],
        seconds: float,
        max_bytes: int | None = None,
    ) -> ReadAnswer:
        """POST ``body`` and read the whole answer within ``seconds``, headers and body
        together; httpx's ``TimeoutException`` past them; ``AnswerTooLarge`` past
        ``max_bytes`` of body; ``httpx.DecodingError`` for a body its content encoding does
        not decode.

        httpx's own timeout bounds each socket operation only (a server that sends a byte now
        and then never trips it), so the whole exchange also runs in a trio cancel scope.
        Cancelled mid-answer, httpcore closes the connection rather than pooling it half read.
        """
        request = httpx.Request(
            "POST",
            url,
            content=body,
            headers=headers,
            extensions={"timeout": httpx.Timeout(seconds).as_dict()},
        )
        in_flight = self._in_flight
        index = in_flight.index(min(in_flight))
        in_flight[index] += 1
        response: httpx.Response | None = None
        try:
            with trio.move_on_after(seconds) as bound:
                response = await self._transports[index].handle_async_request(request)
                try:
                    content = await read_limited(response, max_bytes)
                finally:
                    await response.aclose()
        finally:
            in_flight[index] -= 1
        if bound.cancelled_caught or response is None:
            raise httpx.ReadTimeout(f"no whole answer within {seconds:.3f}s", request=request)
        return ReadAnswer(response.status_code, response.headers.get("content-type", ""), content)

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()
