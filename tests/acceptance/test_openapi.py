"""The OpenAPI document against the live service: schemathesis generates requests from
``/openapi.json`` (valid ones and deliberately invalid ones, JSON and MessagePack bodies) and
checks every answer: no 5xx, only documented statuses, content types, headers and bodies, and
invalid input refused."""

from __future__ import annotations

from typing import Any

import hypothesis
import msgpack
import pytest
import schemathesis
import trio
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis import checks as st_checks

from mg.api import routes
from mg.api.openapi import document
from mg.core.clock import parse_time
from mg.core.deadline import Deadline
from mg.node import Node
from tests.support.api import Api
from tests.support.cluster import NodeFactory, api_for
from tests.support.metrics import Scrape
from tests.support.processor import Answer, FakeProcessor, Seen, echo

EXAMPLES_PER_OPERATION = 25


@schemathesis.serializer("application/msgpack")
def _msgpack_body(_: Any, value: Any) -> dict[str, Any]:
    try:
        return {"data": msgpack.packb(value)}
    except (OverflowError, TypeError, ValueError):
        # A negative case MessagePack cannot carry (an integer past 64 bits): not sendable.
        hypothesis.reject()


@schemathesis.deserializer("application/msgpack")
def _msgpack_answer(_: Any, response: Any) -> Any:
    return msgpack.unpackb(response.content, raw=False, strict_map_key=False)


def _short_deadline(headers: dict[str, str]) -> bool:
    """Whether the case gave itself less than a second (a 504 is then the right answer)."""
    found = {name.lower(): value for name, value in (headers or {}).items()}
    timeout = found.get("x-request-timeout")
    if timeout is not None and timeout.strip().isdigit() and int(timeout) < 1000:
        return True
    deadline = found.get("x-request-deadline")
    if deadline is None:
        return False
    try:
        return Deadline(parse_time(deadline.strip())).remaining() < 1
    except ValueError:
        return False


@schemathesis.check
def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx, except the contract's 504 for a deadline the request made too short to meet."""
    if response.status_code < 500:
        return None
    if response.status_code == 504 and _short_deadline(case.headers):
        return None
    raise AssertionError(f"server error {response.status_code}: {response.text[:500]}")


CHECKS = [
    no_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_headers_conformance,
    st_checks.response_schema_conformance,
]


def _exercise(schema: Any, base_url: str, mode: GenerationMode, fixed: dict[str, str]) -> list[str]:
    """Run every operation with generated cases (path parameters in ``fixed`` held to those
    values); the failures found, one line each."""
    failures: list[str] = []
    checks = (
        [*CHECKS, st_checks.negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS
    )
    for result in schema.get_all_operations():
        operation = result.ok()
        raw = operation.definition.raw
        parameters = _parameters(schema, raw)
        names = {p.get("name") for p in parameters}
        pinned = {name: value for name, value in fixed.items() if name in names}
        # Something to get wrong: a body, a query parameter, or a path parameter with a pattern
        # (a free-form path segment such as a sink's name has no wrong value but the empty one,
        # which a path cannot carry).
        wrongable = "requestBody" in raw or any(
            p.get("in") != "path" or "pattern" in p.get("schema", {}) for p in parameters
        )
        if mode is GenerationMode.NEGATIVE and not wrongable:
            continue
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=pinned or None)

        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(case=strategy)
        def check(case: Any) -> None:
            case.call_and_validate(base_url=base_url, checks=checks, timeout=30)

        try:
            check()
        except (Exception, BaseExceptionGroup) as error:
            failures.append(f"{mode.value} {operation.label}: {error}")
    return failures


def _parameters(schema: Any, raw: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    shared = schema.raw_schema["components"]["parameters"]
    for item in raw.get("parameters", []):
        found.append(shared[item["$ref"].rsplit("/", 1)[1]] if "$ref" in item else item)
    return found


# Free path parameters mostly meet unknown namespaces and machines; pinned ones reach the
# processor, the existing machine, its tag, conflicts and removal.
PINNED = {"ns": "test", "id": "m1", "tag": "t1", "sink": "main"}
PASSES = (
    (GenerationMode.POSITIVE, {}),
    (GenerationMode.POSITIVE, {"ns": "test", "sink": "main"}),
    (GenerationMode.POSITIVE, PINNED),
    (GenerationMode.NEGATIVE, {}),
    (GenerationMode.NEGATIVE, PINNED),
)


@pytest.mark.timeout(300)
async def tag_on_init(seen: Seen) -> Answer:
    """Echo, and ``init`` of m1 claims tag t1 (so /tags/t1 paths find it)."""
    answer = await echo(seen)
    if seen.kind == "init" and seen.machine["id"] == "m1":
        answer.body["action"] = {"tag": "t1"}
    return answer


async def test_the_live_service_keeps_its_openapi_document(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    # Sink "main" gets the namespace's events; long-polls are cut to a second.
    node: Node = await nodes(sinks_config={"main": {"max_wait": "1s"}}, sinks=["main"])
    async with api_for(node) as api:
        await _exercise_node(node, api, processor)


async def _exercise_node(node: Node, api: Api, processor: FakeProcessor) -> None:
    served = (await api.http.get("/openapi.json")).json()
    assert served == document()
    # The document has exactly the client API's routes.
    documented = {
        (method.upper(), path)
        for path, operations in served["paths"].items()
        for method in operations
        if path.startswith("/v1/")
    }
    assert documented == {(r.method, "/" + "/".join(r.pattern)) for r in routes.ROUTES}
    processor.behaviour = tag_on_init
    await api.start("m1")  # something for reads and calls to find
    schema = schemathesis.openapi.from_dict(served)
    failures: list[str] = []
    for mode, fixed in PASSES:
        failures += await trio.to_thread.run_sync(_exercise, schema, node.url, mode, fixed)
    assert not failures, "\n\n".join(failures)
    # Not a vacuous pass: the node answered many generated requests, with many statuses.
    counted = Scrape((await api.http.get("/metrics")).text)
    answered = counted.total("mg_http_requests_total")
    statuses = {
        dict(labels)["status"]
        for name, labels in counted.samples
        if name == "mg_http_requests_total"
    }
    print(f"schemathesis: {answered:.0f} requests, statuses {sorted(statuses)}")
    assert answered > 300
    assert {"200", "201", "202", "204", "400", "404", "409"} <= statuses
