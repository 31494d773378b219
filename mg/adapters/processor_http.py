"""The ``Processor`` port over HTTP (PROTOCOL section 4), httpcore connection pools per
namespace (``http_pools``).

Classification is the contract's: connection refused or reset, no answer before the deadline,
or ``503`` are transient; any other non-2xx status or a body that breaks the schema is
permanent, and so is a body that does not decode by its Content-Encoding. ``422 {"error":
"repair_failed"}`` to a repair is the processor's refusal, and
``422 {"error": "invalid_args"}`` to an init its refusal of the start's arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from mg.adapters.http_answers import AnswerTooLarge
from mg.adapters.http_bodies import CallHeaders, ReadAnswer, decode, encode, excerpt, media_of
from mg.adapters.http_pools import HttpPools
from mg.core.deadline import Deadline
from mg.core.model import Machine
from mg.core.processor_wire import Kind, Reply, parse_refusal, parse_reply, request_value
from mg.core.shapes import ShapeError
from mg.errors import (
    InvalidArgs,
    ProcessorPermanentFailure,
    ProcessorTransientFailure,
    RepairFailed,
)
from mg.settings import Namespace


class HttpProcessor:
    """Calls namespaces' processors; pooled connections stay open between steps. No proxy from
    the environment ever sits between mg and its processors (pools are used directly)."""

    def __init__(self, namespaces: Mapping[str, Namespace]) -> None:
        self._pools = {
            name: HttpPools(ns.processor_url, ns.processor_max_connections)
            for name, ns in namespaces.items()
        }
        self._headers = {
            name: CallHeaders(name, media_of(ns.processor_encoding))
            for name, ns in namespaces.items()
        }

    async def aclose(self) -> None:
        for pools in self._pools.values():
            await pools.aclose()

    async def invoke(
        self,
        namespace: Namespace,
        kind: Kind,
        args: Any,
        machine_id: str,
        machine: Machine | None,
        deadline: Deadline,
        trace: str | None,
    ) -> Reply:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise ProcessorTransientFailure(
                "the deadline passed before the processor call", timed_out=True
            )
        name = namespace.name
        body, _ = encode(
            request_value(kind, args, name, machine_id, machine), namespace.processor_encoding
        )
        headers = self._headers[name].of(deadline, machine_id, trace)
        try:
            answer = await self._pools[name].send(
                body, headers, remaining, namespace.processor_max_reply_bytes
            )
        except AnswerTooLarge as error:
            raise ProcessorPermanentFailure(
                f"the processor's answer is over processor.max_reply_bytes ({error.limit} bytes)"
            ) from error
        except httpx.DecodingError as error:
            raise ProcessorPermanentFailure(
                f"the processor's answer does not decode by its Content-Encoding: {error}"
            ) from error
        except httpx.TimeoutException as error:
            raise ProcessorTransientFailure(
                f"the processor did not answer before the deadline ({type(error).__name__})",
                timed_out=True,
            ) from error
        except httpx.TransportError as error:
            raise ProcessorTransientFailure(
                f"the processor is unreachable: {type(error).__name__}: {error}"
            ) from error
        last = machine.record.last_event_id if machine is not None else 0
        return self._classify(kind, answer, namespace, last)

    def _classify(
        self, kind: Kind, answer: ReadAnswer, namespace: Namespace, last_event_id: int
    ) -> Reply:
        encoding = namespace.processor_encoding
        status = answer.status
        if status == 503:
            raise ProcessorTransientFailure(f"the processor answered 503: {excerpt(answer)}")
        if kind in (Kind.REPAIR, Kind.INIT) and status == 422:
            try:
                refusal = decode(answer, encoding)
            except (ShapeError, ValueError):
                refusal = None
            code = refusal.get("error") if isinstance(refusal, dict) else None
            try:
                if kind is Kind.REPAIR and code == "repair_failed":
                    raise RepairFailed(
                        "the processor refused the repair", reason=parse_refusal(refusal)
                    )
                if kind is Kind.INIT and code == "invalid_args":
                    reason = parse_refusal(refusal, "invalid_args")
                    shown = reason if isinstance(reason, str) else repr(reason)
                    raise InvalidArgs(
                        f"the processor refused the arguments, nothing was stored: {shown}",
                        reason=reason,
                    )
            except ShapeError as error:
                raise ProcessorPermanentFailure(
                    f"the processor's refusal breaks the protocol: {error}"
                ) from error
        if not 200 <= status < 300:
            raise ProcessorPermanentFailure(f"the processor answered {status}: {excerpt(answer)}")
        try:
            return parse_reply(
                decode(answer, encoding),
                max_events=namespace.processor_max_events,
                last_event_id=last_event_id,
            )
        except (ShapeError, ValueError) as error:
            raise ProcessorPermanentFailure(
                f"the processor's answer breaks the protocol: {error}"
            ) from error
