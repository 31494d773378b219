"""The OpenAPI 3.1 document of the client API (PROTOCOL section 3), served at ``/openapi.json``.

Written by hand in one place, from a few shapes: the ``/machines/{id}`` and ``/tags/{tag}``
forms of a path are generated from one operation each, and every error response comes from
the one status table (``mg.api.errors``), so the document cannot list a status the service does
not give. Both media types carry the same schemas: MessagePack bodies are the same values, with
binary as ``bin`` where JSON has ``{"$base64": ...}``. A test runs schemathesis against a live
node with this document.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from mg.api.errors import STATUS_OF_CODE
from mg.core.shapes import MAX_ID_BYTES

JSON = "application/json"
MSGPACK = "application/msgpack"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def _schemas() -> dict[str, Schema]:
    value: Schema = {
        "description": 'Any MessagePack value. In JSON, binary is {"$base64": "..."}.',
    }
    int64: Schema = {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}
    range_properties: dict[str, Schema] = {
        "after": _nullable(int64),
        "limit": _nullable({"type": "integer", "minimum": 0, "maximum": INT64_MAX}),
        "direction": {"enum": ["forward", "backward"]},
    }
    time: Schema = {"type": "string", "format": "date-time"}
    return {
        "Value": value,
        "Content": _object(
            {"data": ref("Value"), "format_version": _nullable({"type": "integer"})},
            ("data", "format_version"),
        ),
        "Event": _object(
            {
                "id": {"type": "integer", "minimum": 1},
                "created_at": time,
                "format_version": _nullable({"type": "integer"}),
                "data": ref("Value"),
            },
            ("id", "created_at", "format_version", "data"),
        ),
        "Range": {
            **_object(range_properties),
            "description": "Which events: after an id, at most limit, in a direction. "
            "All members are optional; the default is the whole history, forward.",
        },
        "RangeEcho": _object(range_properties, ("after", "limit", "direction")),
        "Status": {"enum": ["sleeping", "waiting", "retrying", "failed"]},
        "Machine": _object(
            {
                "ns": {"type": "string"},
                "id": {"type": "string"},
                "status": ref("Status"),
                "failure": _nullable(_object({"reason": {"type": "string"}}, ("reason",))),
                "history": {"type": "array", "items": ref("Event")},
                "history_range": ref("RangeEcho"),
                "history_bounds": {
                    **_object(
                        {
                            "first": {"type": "integer", "minimum": 1},
                            "last": {"type": "integer", "minimum": 0},
                        },
                        ("first", "last"),
                    ),
                    "description": "The events held, first..last: last is the newest event "
                    "ever appended (0 for none); first = last + 1 when none is held; ids below "
                    "first were trimmed.",
                },
                "aux_state": _nullable(ref("Content")),
                "timer": _nullable(time),
                "tags": {"type": "array", "items": {"type": "string"}},
                "retry": _nullable(ref("Retry")),
            },
            (
                "ns",
                "id",
                "status",
                "failure",
                "history",
                "history_range",
                "history_bounds",
                "aux_state",
                "timer",
                "tags",
                "retry",
            ),
        ),
        "Retry": {
            **_object(
                {
                    "subject": {"enum": ["timer", "notification"]},
                    "attempt": {"type": "integer", "minimum": 1},
                    "next_at": time,
                    "last_error": {"type": "string"},
                },
                ("subject", "attempt", "next_at", "last_error"),
            ),
            "description": "Set while the status is retrying (v1.1): what is retried, the "
            "attempts failed so far, when the next one is due and why the last one failed.",
        },
        "SearchPage": _object(
            {
                "machines": {
                    "type": "array",
                    "items": _object(
                        {
                            "id": {"type": "string"},
                            "status": ref("Status"),
                            "timer": _nullable(time),
                            "updated_at": time,
                        },
                        ("id", "status", "timer", "updated_at"),
                    ),
                },
                "next_cursor": _nullable({"type": "string"}),
            },
            ("machines", "next_cursor"),
        ),
        "SinkEvent": _object(
            {
                "id": {"type": "integer", "minimum": 1},
                "ns": {"type": "string"},
                "machine_id": {"type": "string"},
                "incarnation": {
                    "type": "integer",
                    "description": "Tells apart machines of one id separated by a remove "
                    "(beyond the contract; not hashed).",
                },
                "event": ref("Event"),
                "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            },
            ("id", "ns", "machine_id", "incarnation", "event", "hash"),
        ),
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            "required": ["error", "message"],
            "additionalProperties": True,
            "description": "Every error. Some carry more members: machine_failed, "
            "repair_failed and invalid_args have reason; sink_events_pruned has first.",
        },
    }


# --- parameters ------------------------------------------------------------------------------

_MACHINE_KEY: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_ID_BYTES,
    "pattern": "^[^\\u0000]+$",
}

PARAMETERS: dict[str, Schema] = {
    "ns": {
        "name": "ns",
        "in": "path",
        "required": True,
        "description": "A configured namespace.",
        "schema": {"type": "string", "minLength": 1},
    },
    "id": {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "Machine id: 1..1024 bytes of UTF-8 without NUL, percent-encoded.",
        "schema": _MACHINE_KEY,
    },
    "tag": {
        "name": "tag",
        "in": "path",
        "required": True,
        "description": "A tag held by the machine (same rules as ids).",
        "schema": _MACHINE_KEY,
    },
    "sink": {
        "name": "sink",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
    },
    "after": {
        "name": "after",
        "in": "query",
        "schema": {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
    },
    "limit": {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
    },
    "direction": {"name": "direction", "in": "query", "schema": {"enum": ["forward", "backward"]}},
    "status": {"name": "status", "in": "query", "schema": ref("Status")},
    "searchLimit": {
        "name": "limit",
        "in": "query",
        "description": "Page size, 1..1000 (default 100).",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    "cursor": {
        "name": "cursor",
        "in": "query",
        "description": "next_cursor of the previous page (opaque).",
        "schema": {"type": "string", "minLength": 1},
    },
    "wait": {
        "name": "wait",
        "in": "query",
        "description": "Seconds to long-poll for an event after `after` (default 0); a longer "
        "wait than the sink's max_wait is cut to it.",
        "schema": {"type": "number", "minimum": 0},
    },
    "deadline": {
        "name": "X-Request-Deadline",
        "in": "header",
        "description": "RFC 3339 time by which the request must be done. Wins over "
        "X-Request-Timeout; without either the namespace's default_processing_timeout applies.",
        "schema": {"type": "string", "format": "date-time"},
    },
    "timeout": {
        "name": "X-Request-Timeout",
        "in": "header",
        "description": "Milliseconds the request may take (at most a day).",
        "schema": {"type": "integer", "minimum": 0, "maximum": 86_400_000},
    },
    "traceparent": {
        "name": "traceparent",
        "in": "header",
        "description": "W3C trace context, continued into the processor call, the logs, and "
        "the timers and notifications the step sets. An invalid one is ignored (W3C).",
        "schema": {"type": "string"},
    },
    "requestId": {
        "name": "X-Request-Id",
        "in": "header",
        "description": "Echoed when it is 1..128 characters of [A-Za-z0-9._:/+=@-], "
        "else replaced by one mg makes.",
        "schema": {"type": "string"},
    },
}


def param(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


_STEP_HEADERS = [param("deadline"), param("timeout"), param("traceparent"), param("requestId")]


# --- responses -------------------------------------------------------------------------------

_REQUEST_ID_HEADER: Schema = {
    "description": "The request's id (the client's X-Request-Id when sane).",
    "schema": {"type": "string"},
    "required": True,
}

_ERROR_HEADERS: dict[int, dict[str, Schema]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
    405: {"Allow": {"schema": {"type": "string"}, "required": True}},
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 1},
            "required": True,
        }
    },
}


def _both(schema: Schema) -> dict[str, Schema]:
    return {JSON: {"schema": schema}, MSGPACK: {"schema": schema}}


def _error_response(status: int, codes: tuple[str, ...]) -> Schema:
    schema: Schema = {
        "allOf": [ref("Error"), {"properties": {"error": {"enum": list(codes)}}}],
    }
    if "repair_failed" in codes or "invalid_args" in codes:
        schema["allOf"].append({"required": ["reason"]})
    if "sink_events_pruned" in codes:
        schema["allOf"].append(
            {"properties": {"first": {"type": "integer"}}, "required": ["first"]}
        )
    return {
        "description": ", ".join(codes),
        "headers": {"X-Request-Id": _REQUEST_ID_HEADER, **_ERROR_HEADERS.get(status, {})},
        "content": _both(schema),
    }


def _errors(*codes: str) -> dict[str, Schema]:
    """Error responses for these codes, grouped by status from the one table."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(STATUS_OF_CODE[code], []).append(code)
    return {str(s): _error_response(s, tuple(found)) for s, found in sorted(by_status.items())}


# Errors any client API request may get: from the front door, the machine's queue, storage.
_COMMON = (
    "invalid_request",
    "unauthorized",
    "forbidden",
    "namespace_not_found",
    "payload_too_large",
    "unsupported_media_type",
    "overloaded",
    "unavailable",
    "deadline_exceeded",
)


def _ok(status: int, description: str, schema: Schema | None) -> dict[str, Schema]:
    response: Schema = {"description": description, "headers": {"X-Request-Id": _REQUEST_ID_HEADER}}
    if schema is not None:
        response["content"] = _both(schema)
    return {str(status): response}


def _body(properties: dict[str, Schema]) -> Schema:
    return {"required": False, "content": _both(_object(properties))}


def _operation(
    operation_id: str,
    summary: str,
    parameters: list[Schema],
    responses: dict[str, Schema],
    body: Schema | None = None,
) -> Schema:
    found: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "parameters": parameters,
        "responses": responses,
    }
    if body is not None:
        found["requestBody"] = body
    return found


def _response_of(args: Schema) -> Schema:
    return _object({"response": args}, ("response",))


def _machine_paths() -> dict[str, Schema]:
    """Every path with /machines/{id}; all but start and DELETE also as /tags/{tag}."""
    args: Schema = ref("Value")
    paths: dict[str, Schema] = {}
    for base, key in (("machines", "id"), ("tags", "tag")):
        suffix = "" if key == "id" else "ByTag"
        prefix = f"/v1/namespaces/{{ns}}/{base}/{{{key}}}"
        common = [param("ns"), param(key)]
        steps = [*common, *_STEP_HEADERS]
        found_errors = _errors(*_COMMON, "machine_not_found")
        paths[prefix] = {
            "get": _operation(
                f"get{suffix}",
                "Read the machine: status, history cut by the range, aux state, timer, tags",
                [*common, param("after"), param("limit"), param("direction"), param("requestId")],
                {**_ok(200, "The machine", ref("Machine")), **found_errors},
            )
        }
        paths[f"{prefix}/call"] = {
            "post": _operation(
                f"call{suffix}",
                "Run the processor's call with the args; answer its response",
                steps,
                {
                    **_ok(
                        200, "The processor's response", _object({"response": args}, ("response",))
                    ),
                    **_errors(*_COMMON, "machine_not_found", "machine_failed"),
                },
                _body({"args": args, "range": ref("Range")}),
            )
        }
        paths[f"{prefix}/repair"] = {
            "post": _operation(
                f"repair{suffix}",
                "Repair a failed machine through the processor's repair",
                steps,
                {
                    **_ok(
                        200, "The processor's response", _object({"response": args}, ("response",))
                    ),
                    **_errors(
                        *_COMMON,
                        "machine_not_found",
                        "machine_already_working",
                        "machine_failed",
                        "repair_failed",
                    ),
                },
                _body({"args": args, "range": ref("Range")}),
            )
        }
        paths[f"{prefix}/simple-repair"] = {
            "post": _operation(
                f"simpleRepair{suffix}",
                "Restore a failed machine's previous status without the processor",
                steps,
                {
                    **_ok(200, "Repaired", _object({})),
                    **_errors(*_COMMON, "machine_not_found", "machine_already_working"),
                },
                _body({}),
            )
        }
        paths[f"{prefix}/notify"] = {
            "post": _operation(
                f"notify{suffix}",
                "Queue a notification for the machine; it is delivered at least once, in order",
                # It returns at once: no deadline applies; the trace goes with the notification.
                [*common, param("traceparent"), param("requestId")],
                {
                    **_ok(202, "Queued", _object({"id": {"type": "string"}}, ("id",))),
                    **_errors(*_COMMON, "machine_not_found"),
                },
                _body({"args": args, "range": ref("Range")}),
            )
        }
        paths[f"{prefix}/modernize"] = {
            "post": _operation(
                f"modernize{suffix}",
                "Send old events in range to the namespace's modernizer and store its answers",
                steps,
                {
                    **_ok(
                        200,
                        "How many events changed",
                        _object({"modernized": {"type": "integer", "minimum": 0}}, ("modernized",)),
                    ),
                    **_errors(*_COMMON, "machine_not_found"),
                },
                _body({"range": ref("Range")}),
            )
        }
    machine = "/v1/namespaces/{ns}/machines/{id}"
    paths[f"{machine}/start"] = {
        "post": _operation(
            "start",
            "Create the machine through the processor's init signal",
            [param("ns"), param("id"), *_STEP_HEADERS],
            {
                **_ok(
                    201,
                    "Created",
                    _object({"ns": {"type": "string"}, "id": {"type": "string"}}, ("ns", "id")),
                ),
                **_errors(*_COMMON, "machine_already_exists", "machine_failed", "invalid_args"),
            },
            _body({"args": args}),
        )
    }
    paths[machine]["delete"] = _operation(
        "remove",
        "Delete the machine, its events, tags, timer and queued notifications",
        [param("ns"), param("id"), *_STEP_HEADERS],
        {**_ok(204, "Removed", None), **_errors(*_COMMON, "machine_not_found")},
    )
    return paths


def _other_paths() -> dict[str, Schema]:
    text: Schema = {"text/plain": {"schema": {"type": "string"}}}
    status: Schema = {
        "type": "object",
        "properties": {
            "status": {"type": "string"},
            "message": {"type": "string"},
            # Nodes with several databases: each database's name and state.
            "databases": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["status"],
    }
    operator_ok = {"X-Request-Id": _REQUEST_ID_HEADER}
    return {
        "/v1/namespaces/{ns}/machines": {
            "get": _operation(
                "search",
                "List machines of the namespace by id, optionally of one status",
                [param("ns"), param("status"), param("searchLimit"), param("cursor")],
                {**_ok(200, "A page of machines", ref("SearchPage")), **_errors(*_COMMON)},
            )
        },
        "/v1/sinks/{sink}/events": {
            "get": _operation(
                "readSink",
                "Read a sink's events in their total order; optionally long-poll",
                [param("sink"), param("after"), param("limit"), param("direction"), param("wait")],
                {
                    **_ok(
                        200,
                        "Events",
                        _object(
                            {"events": {"type": "array", "items": ref("SinkEvent")}}, ("events",)
                        ),
                    ),
                    **_errors(
                        "invalid_request",
                        "unauthorized",
                        "forbidden",
                        "sink_not_found",
                        "sink_events_pruned",
                        "unavailable",
                        "deadline_exceeded",
                    ),
                },
            )
        },
        "/v1/sinks/{sink}": {
            "get": _operation(
                "describeSink",
                "The positions a sink holds (first..last, first = last + 1 when none) and the "
                "anchor, the hash of position first - 1, to verify the chain from first",
                [param("sink")],
                {
                    **_ok(
                        200,
                        "The sink's held span",
                        _object(
                            {
                                "sink": {"type": "string"},
                                "first": {"type": "integer", "minimum": 1},
                                "last": {"type": "integer", "minimum": 0},
                                "anchor": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                            },
                            ("sink", "first", "last", "anchor"),
                        ),
                    ),
                    **_errors(
                        "invalid_request",
                        "unauthorized",
                        "forbidden",
                        "sink_not_found",
                        "unavailable",
                        "deadline_exceeded",
                    ),
                },
            )
        },
        "/health/live": {
            "get": {
                "operationId": "live",
                "summary": "The process answers",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Live",
                        "headers": operator_ok,
                        "content": {JSON: {"schema": status}},
                    }
                },
            }
        },
        "/health/ready": {
            "get": {
                "operationId": "ready",
                "summary": "Postgres answers and the schema is migrated to this version",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Ready",
                        "headers": operator_ok,
                        "content": {JSON: {"schema": status}},
                    },
                    "503": {
                        "description": "Not ready",
                        "headers": operator_ok,
                        "content": {JSON: {"schema": ref("Error")}},
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus text exposition",
                "security": [],
                "responses": {"200": {"description": "Metrics", "content": text}},
            }
        },
    }


@cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mg client API",
            "version": "1",
            "description": "Durable, event-sourced state machines. Bodies are JSON or "
            "MessagePack by Content-Type; answers follow Accept, else the request's type, "
            "else JSON. See PROTOCOL.md for the semantics.",
        },
        "servers": [{"url": "/"}],
        "security": [{}, {"bearer": []}],
        "paths": {**_machine_paths(), **_other_paths()},
        "components": {
            "schemas": _schemas(),
            "parameters": PARAMETERS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Needed when the node has [auth] enabled = true.",
                }
            },
        },
    }
