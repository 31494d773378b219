"""The ``Modernizer`` port over HTTP (PROTOCOL section 4, Modernizer): ``POST <url>`` with
``{"ns", "id", "event"}``, expecting ``200 {"event": Content}``.

The body is encoded like the namespace's processor calls (``processor.encoding``): a
modernizer is usually the processor's own service. Classification follows the processor's:
unreachable, ``503`` or no answer in time is transient (nothing is changed; the client may
retry); anything else that is not a ``200`` with a well-formed body is ``modernizer_failed``.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import trio

from mg.adapters.http_answers import AnswerTooLarge, read_limited
from mg.adapters.http_bodies import ReadAnswer, call_headers, decode, encode, excerpt
from mg.core.deadline import Deadline
from mg.core.model import Content, Event
from mg.core.modernize import parse_answer, request_value
from mg.core.shapes import ShapeError
from mg.errors import DeadlineExceeded, ModernizerFailed, Unavailable
from mg.settings import Namespace


class HttpModernizer:
    """Calls namespaces' modernizers; one small pool per namespace that has one."""

    def __init__(self, namespaces: Mapping[str, Namespace], max_connections: int = 4) -> None:
        # Events of one machine go one at a time, so a few connections serve many machines.
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._clients = {
            name: httpx.AsyncClient(limits=limits, trust_env=False)
            for name, ns in namespaces.items()
            if ns.modernizer is not None
        }

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def modernize(
        self,
        namespace: Namespace,
        machine_id: str,
        event: Event,
        deadline: Deadline,
        trace: str | None,
    ) -> Content:
        client = self._clients.get(namespace.name)
        if namespace.modernizer is None or client is None:
            raise ModernizerFailed(f"namespace {namespace.name!r} has no modernizer")
        remaining = deadline.remaining()
        if remaining <= 0:
            raise DeadlineExceeded("the deadline passed before the modernizer call")
        body, media = encode(
            request_value(namespace.name, machine_id, event), namespace.processor_encoding
        )
        headers = call_headers(media, deadline, namespace.name, machine_id, trace)
        limit = namespace.processor_max_reply_bytes
        try:
            # httpx's timeout bounds each read only: the scope bounds the whole answer.
            with trio.move_on_after(remaining) as bound:
                async with client.stream(
                    "POST",
                    namespace.modernizer.url,
                    content=body,
                    headers=headers,
                    timeout=remaining,
                ) as streamed:
                    content = await read_limited(streamed, limit)
                media = streamed.headers.get("content-type", "")
                answer = ReadAnswer(streamed.status_code, media, content)
            if bound.cancelled_caught:
                raise DeadlineExceeded("the modernizer did not answer whole before the deadline")
        except AnswerTooLarge as error:
            raise ModernizerFailed(
                f"the modernizer's answer for event {event.id} is over "
                f"processor.max_reply_bytes ({error.limit} bytes)"
            ) from error
        except httpx.DecodingError as error:
            raise ModernizerFailed(
                f"the modernizer's answer for event {event.id} does not decode by its "
                f"Content-Encoding: {error}"
            ) from error
        except httpx.TimeoutException as error:
            raise DeadlineExceeded(
                f"the modernizer did not answer before the deadline ({type(error).__name__})"
            ) from error
        except httpx.TransportError as error:
            raise Unavailable(
                f"the modernizer is unreachable: {type(error).__name__}: {error}"
            ) from error
        if answer.status == 503:
            raise Unavailable(f"the modernizer answered 503: {excerpt(answer)}")
        if answer.status != 200:
            raise ModernizerFailed(
                f"the modernizer answered {answer.status} for event {event.id}: {excerpt(answer)}"
            )
        try:
            return parse_answer(decode(answer, namespace.processor_encoding))
        except (ShapeError, ValueError) as error:
            raise ModernizerFailed(
                f"the modernizer's answer for event {event.id} breaks the protocol: {error}"
            ) from error
