"""The one table from error codes to HTTP statuses."""

from __future__ import annotations

from typing import Any

from mg.errors import MethodNotAllowed, MgError, Overloaded, PayloadTooLarge, Unauthorized

STATUS_OF_CODE: dict[str, int] = {
    "invalid_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "namespace_not_found": 404,
    "machine_not_found": 404,
    "sink_not_found": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "machine_already_exists": 409,
    "machine_already_working": 409,
    "machine_failed": 409,
    "sink_events_pruned": 410,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "repair_failed": 422,
    "invalid_args": 422,
    "overloaded": 429,
    "internal_error": 500,
    "modernizer_failed": 502,
    "unavailable": 503,
    "deadline_exceeded": 504,
}


def status_of(error: MgError) -> int:
    return STATUS_OF_CODE.get(error.code, 500)


def error_body(error: MgError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error.code, "message": error.message}
    body.update(error.details)
    return body


def error_headers(error: MgError) -> dict[str, str]:
    if isinstance(error, Overloaded):
        return {"Retry-After": str(max(1, round(error.retry_after)))}
    if isinstance(error, MethodNotAllowed) and error.allowed:
        return {"Allow": ", ".join(error.allowed)}
    if isinstance(error, Unauthorized):
        return {"WWW-Authenticate": 'Bearer realm="mg"'}
    if isinstance(error, PayloadTooLarge):
        # The rest of the body was never read: the connection cannot carry another request.
        return {"Connection": "close"}
    return {}
