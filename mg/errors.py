"""The error hierarchy shared by every layer.

Three families, because a caller must react to each differently:

- ``LogicError``: the answer to the request (the machine does not exist, is failed, ...).
  Retrying the same request gives the same answer.
- ``TransientError``: nothing was applied; the same request may succeed later.
- ``DeadlineExceeded``: the deadline passed; the outcome is unknown.

Each error carries its contract code (PROTOCOL.md section 3). The HTTP status of each code lives
in exactly one table, in ``mg.api.errors``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MgError(Exception):
    """Base of every error mg reports to a client."""

    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class LogicError(MgError):
    """The request's answer; retrying it changes nothing."""


class InvalidRequest(LogicError):
    code = "invalid_request"


class NamespaceNotFound(LogicError):
    code = "namespace_not_found"


class MachineNotFound(LogicError):
    code = "machine_not_found"


class SinkNotFound(LogicError):
    code = "sink_not_found"


class SinkEventsPruned(LogicError):
    """A sink read would start below the sink's first held position (PROTOCOL section 7);
    ``details["first"]`` is that position."""

    code = "sink_events_pruned"

    @property
    def first(self) -> Any:
        return self.details.get("first")


class MachineAlreadyExists(LogicError):
    code = "machine_already_exists"


class MachineAlreadyWorking(LogicError):
    code = "machine_already_working"


class MachineFailed(LogicError):
    """The machine is failed, or failed during this request; ``reason`` says why."""

    code = "machine_failed"

    @property
    def reason(self) -> Any:
        return self.details.get("reason")


class PayloadTooLarge(LogicError):
    code = "payload_too_large"


class UnsupportedMediaType(LogicError):
    code = "unsupported_media_type"


class RepairFailed(LogicError):
    """The processor refused a repair; ``details["reason"]`` is its reason value."""

    code = "repair_failed"

    @property
    def reason(self) -> Any:
        return self.details.get("reason")


class InvalidArgs(LogicError):
    """The processor refused a start's arguments (``422``); nothing was stored.
    ``reason`` is the processor's reason value."""

    code = "invalid_args"

    @property
    def reason(self) -> Any:
        return self.details.get("reason")


class ModernizerFailed(LogicError):
    """The modernizer answered with an error or with content mg must refuse (a version lower
    than the stored one); nothing was changed."""

    code = "modernizer_failed"


class Unauthorized(LogicError):
    code = "unauthorized"


class Forbidden(LogicError):
    code = "forbidden"


class RouteNotFound(LogicError):
    code = "not_found"


class MethodNotAllowed(LogicError):
    code = "method_not_allowed"

    def __init__(self, message: str, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.allowed = allowed  # for the Allow header


class TransientError(MgError):
    """Nothing was applied; the same request may succeed later."""

    code = "unavailable"


class Unavailable(TransientError):
    code = "unavailable"


class Overloaded(TransientError):
    """A queue limit was hit; nothing was done. ``retry_after`` is in seconds."""

    code = "overloaded"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(MgError):
    """The deadline passed; the outcome is unknown (it may yet be applied)."""

    code = "deadline_exceeded"


# Errors that never leave mg's inside as such: they are classified at the service boundary.


class StorageUnavailable(Unavailable):
    """Postgres could not be reached or failed transiently (connection lost, serialisation)."""


class VersionConflict(Unavailable):
    """The machine row changed under a step: this node lost its lock (fencing)."""


class ProcessorTransientFailure(Unavailable):
    """The processor was unreachable, answered 503, or did not answer in time."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class ProcessorPermanentFailure(LogicError):
    """The processor answered another non-2xx status or a body that breaks the contract."""

    code = "machine_failed"


class TagConflict(LogicError):
    """A step asked for a tag that another existing machine holds."""

    code = "machine_failed"

    def __init__(self, tag: str, holder: str) -> None:
        super().__init__(f"tag {tag!r} is held by machine {holder!r}")
        self.tag = tag
        self.holder = holder
