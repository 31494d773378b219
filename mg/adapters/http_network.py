"""httpcore's network for processor calls on trio (``httpcore.AsyncNetworkBackend``, its public
interface for the socket under a connection pool), leaner than its own ``TrioBackend``:

* **a request is one write**: httpcore writes the head and the body separately (two ``send``
  system calls, and two segments the processor reads and parses apart, each a wake-up of its
  server); here writes are held and go out together just before the connection next reads,
  which for HTTP/1.1 is the answer. A write that fails there is passed over, as httpcore passes
  over a failed request write, so that the server's answer (or its hang-up) is read and told;
* **no timer per read and write when none is asked for**: httpcore's own backend opens a trio
  cancel scope (``fail_after``, infinite without a timeout) and an exception-mapping context
  around every read and write. mg bounds each whole exchange in one scope of its own
  (``HttpPools.send``) and asks for no per-operation timeout; one asked for is still kept.

trio's errors become httpcore's as in its own backend (``ConnectError``, ``ReadError``,
``WriteError``, the matching timeouts), so the pool and httpx see what they always saw: a
connection the server closed while idle is readable and found expired before it is used.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Iterable
from contextlib import suppress
from typing import Any, cast

import httpcore
import trio


class TrioNetwork(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with trio.fail_after(math.inf if timeout is None else timeout):
                stream = await trio.open_tcp_stream(host, port, local_address=local_address)
                for option in socket_options or ():
                    stream.setsockopt(*option)
        except trio.TooSlowError as error:
            raise httpcore.ConnectTimeout(error) from error
        except (trio.BrokenResourceError, OSError) as error:
            raise httpcore.ConnectError(error) from error
        return TrioConnection(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.UnsupportedProtocol("processors are reached over TCP")

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


class TrioConnection(httpcore.AsyncNetworkStream):
    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._held: list[bytes] = []

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            self._held.append(buffer)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._held:
            held = b"".join(self._held)
            self._held.clear()
            # As httpcore does with a failed request write: the server may have answered, or
            # hung up; reading tells.
            with suppress(httpcore.WriteError):
                await self._send(held, timeout)
        try:
            data: bytes | bytearray
            if timeout is None:
                data = await self._stream.receive_some(max_bytes)
            else:
                with trio.fail_after(timeout):
                    data = await self._stream.receive_some(max_bytes)
        except trio.TooSlowError as error:
            raise httpcore.ReadTimeout(error) from error
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise httpcore.ReadError(error) from error
        # A TLS stream may give a bytearray, which h11 takes as well (httpcore's backend too).
        return cast(bytes, data)

    async def _send(self, data: bytes, timeout: float | None) -> None:
        try:
            if timeout is None:
                await self._stream.send_all(data)
                return
            with trio.fail_after(timeout):
                await self._stream.send_all(data)
        except trio.TooSlowError as error:
            raise httpcore.WriteTimeout(error) from error
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise httpcore.WriteError(error) from error

    async def aclose(self) -> None:
        self._held.clear()
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        secure = trio.SSLStream(
            self._stream,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            https_compatible=True,
            server_side=False,
        )
        try:
            with trio.fail_after(math.inf if timeout is None else timeout):
                await secure.do_handshake()
        except trio.TooSlowError as error:
            await self.aclose()
            raise httpcore.ConnectTimeout(error) from error
        except trio.BrokenResourceError as error:
            await self.aclose()
            raise httpcore.ConnectError(error) from error
        return TrioConnection(secure)

    def _socket(self) -> trio.socket.SocketType:
        stream = self._stream
        while isinstance(stream, trio.SSLStream):
            stream = stream.transport_stream
        assert isinstance(stream, trio.SocketStream)
        return stream.socket

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # How httpcore's pool finds a connection the server closed while it was idle.
            return self._socket().is_readable()
        if info == "ssl_object" and isinstance(self._stream, trio.SSLStream):
            return self._stream._ssl_object
        if info == "socket":
            return self._socket()
        if info == "client_addr":
            return self._socket().getsockname()
        if info == "server_addr":
            return self._socket().getpeername()
        return None
