"""The context every log line carries: trace, request id, namespace and machine id.

They live in ContextVars, so they follow a request (or a timer's or notification's step)
through every call of its trio task without being passed around, and children spawned by that
task start with a copy. ``ContextFilter`` stamps them on each log record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from mg.core.trace import TraceContext

_trace: ContextVar[TraceContext | None] = ContextVar("mg_trace", default=None)
_request_id: ContextVar[str | None] = ContextVar("mg_request_id", default=None)
_ns: ContextVar[str | None] = ContextVar("mg_ns", default=None)
_machine_id: ContextVar[str | None] = ContextVar("mg_machine_id", default=None)

# Names of the attributes stamped on log records (and so of the JSON fields).
FIELDS = ("trace_id", "span_id", "request_id", "ns", "machine_id")


@contextmanager
def bound(
    *,
    trace: TraceContext | None = None,
    request_id: str | None = None,
    ns: str | None = None,
    machine_id: str | None = None,
) -> Iterator[None]:
    """Set the given fields for the block; the others keep their values. On exit every field
    goes back to what it was before the block, including one changed inside it by
    ``set_trace``, so a step's context never leaks into the next step of the same task."""
    trace_token = _trace.set(trace if trace is not None else _trace.get())
    request_token = _request_id.set(request_id if request_id is not None else _request_id.get())
    ns_token = _ns.set(ns if ns is not None else _ns.get())
    machine_token = _machine_id.set(machine_id if machine_id is not None else _machine_id.get())
    try:
        yield
    finally:
        _machine_id.reset(machine_token)
        _ns.reset(ns_token)
        _request_id.reset(request_token)
        _trace.reset(trace_token)


def set_trace(trace: TraceContext | None) -> None:
    """Make ``trace`` current until the enclosing ``bound`` block ends."""
    _trace.set(trace)


def set_machine(ns: str | None, machine_id: str | None) -> None:
    """Name the machine being worked on until the enclosing ``bound`` block ends."""
    _ns.set(ns)
    _machine_id.set(machine_id)


def current_trace() -> TraceContext | None:
    return _trace.get()


def current() -> dict[str, str]:
    """The fields that are set, by their log record names."""
    found: dict[str, str] = {}
    trace = _trace.get()
    if trace is not None:
        found["trace_id"] = trace.trace_id
        found["span_id"] = trace.span_id
    for name, var in (("request_id", _request_id), ("ns", _ns), ("machine_id", _machine_id)):
        value = var.get()
        if value is not None:
            found[name] = value
    return found


class ContextFilter(logging.Filter):
    """Stamps the current context on every record that passes a handler. Fields a record
    already has (given with ``extra=``) win: a fact names its own machine."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True
