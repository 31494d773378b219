"""mg's error answers as exceptions: one class per contract code.

The classes are ``mg.errors``' own, so one ``except MachineNotFound`` serves code that runs
inside mg and code that calls it. They keep the three families: ``LogicError`` (the request's
answer), ``TransientError`` (nothing applied; retry), ``DeadlineExceeded`` (outcome unknown).
Members of an error body other than ``error`` and ``message`` are in ``details``;
``MachineFailed.reason``, ``RepairFailed.reason``, ``InvalidArgs.reason`` and
``Overloaded.retry_after`` name the ones the contract defines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from mg.errors import (
    DeadlineExceeded,
    Forbidden,
    InvalidArgs,
    InvalidRequest,
    LogicError,
    MachineAlreadyExists,
    MachineAlreadyWorking,
    MachineFailed,
    MachineNotFound,
    MethodNotAllowed,
    MgError,
    ModernizerFailed,
    NamespaceNotFound,
    Overloaded,
    PayloadTooLarge,
    RepairFailed,
    RouteNotFound,
    SinkEventsPruned,
    SinkNotFound,
    TransientError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)


class InternalError(MgError):
    """mg failed in a way it did not expect (``500 internal_error``); see its log."""

    code = "internal_error"


class UnexpectedAnswer(MgError):
    """An answer that is not mg's: an unknown error code, a body that breaks the contract, or
    a status from something between the client and mg (a proxy, a load balancer).
    ``details`` has ``status`` and, when there was one, the ``error`` code."""

    code = "unexpected_answer"


class ConnectionLost(DeadlineExceeded):
    """The connection to mg failed after the request may have reached it: like
    ``DeadlineExceeded``, the outcome is unknown."""


ERROR_CLASSES: Mapping[str, type[MgError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        Unauthorized,
        Forbidden,
        NamespaceNotFound,
        MachineNotFound,
        SinkNotFound,
        SinkEventsPruned,
        RouteNotFound,
        MethodNotAllowed,
        MachineAlreadyExists,
        MachineAlreadyWorking,
        MachineFailed,
        PayloadTooLarge,
        UnsupportedMediaType,
        RepairFailed,
        InvalidArgs,
        Overloaded,
        InternalError,
        ModernizerFailed,
        Unavailable,
        DeadlineExceeded,
    )
}

# Statuses that mean the same without an mg body (e.g. from a proxy in front of mg).
_BY_STATUS: Mapping[int, type[MgError]] = {
    429: Overloaded,
    502: Unavailable,
    503: Unavailable,
    504: DeadlineExceeded,
}


def _retry_after(headers: Mapping[str, str]) -> float:
    try:
        return max(0.0, float(headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def error_from_answer(status: int, headers: Mapping[str, str], body: Any) -> MgError:
    """The exception for a non-success answer; ``body`` is the decoded body or ``None``.

    ``headers`` must have lower-case names.
    """
    code = body.get("error") if isinstance(body, dict) else None
    cls = ERROR_CLASSES.get(code) if isinstance(code, str) else None
    if cls is None:
        cls = _BY_STATUS.get(status)
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str):
        message = f"mg answered {status}" + (f" ({code})" if code else "")
    if cls is Overloaded:
        return Overloaded(message, retry_after=_retry_after(headers))
    details: dict[str, Any] = {}
    if code:
        details = {
            k: v for k, v in body.items() if isinstance(k, str) and k not in ("error", "message")
        }
    if cls is None:
        return UnexpectedAnswer(message, status=status, **({"error": code} if code else {}))
    return cls(message, **details)


def _origin(error: httpx.TransportError) -> str:
    """The scheme, host and port the failed request went to, as a URL."""
    try:
        url = error.request.url
    except RuntimeError:  # an error raised without its request
        return "an unknown address"
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"


def error_from_transport(error: httpx.TransportError) -> MgError:
    """The exception for a request that got no answer.

    Before anything was sent (no connection) nothing can have been applied: ``Unavailable``.
    After, the outcome is unknown: ``DeadlineExceeded`` when the wait ran out, else
    ``ConnectionLost``.
    """
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return Unavailable(
            f"mg is unreachable at {_origin(error)}: {type(error).__name__}: {error}"
        )
    if isinstance(error, httpx.TimeoutException):
        return DeadlineExceeded(
            f"no answer from mg in time ({type(error).__name__}); the outcome is unknown"
        )
    return ConnectionLost(
        f"the connection to mg failed ({type(error).__name__}: {error}); the outcome is unknown"
    )


__all__ = [
    "ConnectionLost",
    "ERROR_CLASSES",
    "DeadlineExceeded",
    "Forbidden",
    "InternalError",
    "InvalidArgs",
    "InvalidRequest",
    "LogicError",
    "MachineAlreadyExists",
    "MachineAlreadyWorking",
    "MachineFailed",
    "MachineNotFound",
    "MethodNotAllowed",
    "MgError",
    "ModernizerFailed",
    "NamespaceNotFound",
    "Overloaded",
    "PayloadTooLarge",
    "RepairFailed",
    "RouteNotFound",
    "SinkEventsPruned",
    "SinkNotFound",
    "TransientError",
    "Unauthorized",
    "UnexpectedAnswer",
    "Unavailable",
    "UnsupportedMediaType",
    "error_from_answer",
    "error_from_transport",
]
