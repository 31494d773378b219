"""Seeing inside a running node: traces through processor calls and log lines, Prometheus
series that move when steps run, and health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

from mg.node import Node, running_node
from mg.settings import from_mapping
from tests.support.api import Api, body
from tests.support.logs import captured_logs
from tests.support.metrics import Scrape
from tests.support.processor import Answer, FakeProcessor, Seen, echo
from tests.support.sql import sql

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"


@asynccontextmanager
async def node_on(database_url: str, processor: FakeProcessor, **top: Any) -> AsyncIterator[Node]:
    """A node with namespace ``test`` (subscribed to sink ``main``) and extra top-level config."""
    config: dict[str, Any] = {
        "database": {"pool_size": 8},
        "sinks": {"main": {}},
        "namespaces": {
            "test": {
                "processor": {"url": processor.url},
                "default_processing_timeout": "10s",
                "sinks": ["main"],
            }
        },
        **top,
    }
    async with running_node(from_mapping(config, environ={}), database_url, port=0) as node:
        yield node


async def scrape(api: Api) -> Scrape:
    answer = await api.http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return Scrape(answer.text)


def trace_of(seen: Seen) -> tuple[str, str]:
    version, trace_id, span_id, flags = seen.headers["traceparent"].split("-")
    assert (version, flags) == ("00", "01")
    return trace_id, span_id


# --- tracing ---------------------------------------------------------------------------------


async def test_a_client_trace_reaches_the_processor_and_every_log_line_of_the_step(
    api: Api, processor: FakeProcessor
) -> None:
    with captured_logs() as lines:
        started = await api.start("m1", "a", headers={"traceparent": TRACEPARENT})
        called = await api.call(
            "m1", "b", headers={"traceparent": TRACEPARENT, "x-request-id": "req-42"}
        )
    assert started.status_code == 201
    assert called.status_code == 200
    assert called.headers["x-request-id"] == "req-42"
    for seen in processor.seen:
        trace_id, span_id = trace_of(seen)
        assert trace_id == TRACE_ID
        assert span_id != CLIENT_SPAN  # mg's own span, a child of the client's
    call_lines = [line for line in lines() if line.get("request_id") == "req-42"]
    steps = [line for line in call_lines if line["logger"] == "mg.facts"]
    assert {line["message"] for line in steps} >= {"step call ok", "processor call call ok"}
    assert call_lines, "the call left no log line"
    for line in call_lines:
        assert line["trace_id"] == TRACE_ID, line
        assert line["ns"] == "test", line
        assert line["machine_id"] == "m1", line
    # The processor saw mg's span; the step's lines carry that same span.
    _, sent_span = trace_of(processor.seen[-1])
    assert {line["span_id"] for line in steps} == {sent_span}


async def test_without_a_traceparent_each_request_starts_its_own_trace(
    api: Api, processor: FakeProcessor
) -> None:
    await api.start("m1")
    await api.call("m1", headers={"traceparent": "not-a-valid-header"})
    first, second = (trace_of(seen)[0] for seen in processor.seen)
    assert first != second
    assert TRACE_ID not in (first, second)


async def test_a_machine_by_tag_logs_under_its_id(api: Api, processor: FakeProcessor) -> None:
    async def tagging(seen: Seen) -> Answer:
        if seen.kind == "init":
            return Answer(body={"action": {"tag": "the-tag"}})
        return await echo(seen)

    processor.behaviour = tagging
    await api.start("m1")
    with captured_logs() as lines:
        answer = await api.post(
            "/v1/namespaces/test/tags/the-tag/call", {"args": 1}, {"x-request-id": "by-tag"}
        )
    assert answer.status_code == 200
    [step] = [line for line in lines() if line["message"] == "step call ok"]
    assert (step["machine_id"], step["request_id"]) == ("m1", "by-tag")


async def test_the_trace_continues_when_the_timer_set_by_a_traced_step_fires(
    api: Api, processor: FakeProcessor
) -> None:
    fired = trio.Event()

    async def timer_then_record(seen: Seen) -> Answer:
        if seen.kind == "init":
            return Answer(body={"action": {"timer": {"set": {"timeout": 0}}}})
        if seen.kind == "timeout":
            fired.set()
        return await echo(seen)

    processor.behaviour = timer_then_record
    with captured_logs() as lines:
        assert (await api.start("m1", headers={"traceparent": TRACEPARENT})).status_code == 201
        with trio.fail_after(5):
            await fired.wait()
        with trio.fail_after(5):
            while True:
                if any(line.get("kind") == "timeout" for line in lines()):
                    break
                await trio.sleep(0.05)
    timeout_request = next(seen for seen in processor.seen if seen.kind == "timeout")
    assert trace_of(timeout_request)[0] == TRACE_ID
    timer_lines = [line for line in lines() if line.get("kind") == "timeout"]
    assert timer_lines
    for line in timer_lines:
        assert line["trace_id"] == TRACE_ID
        assert line["machine_id"] == "m1"


# --- metrics ---------------------------------------------------------------------------------

FAMILIES = (
    "mg_steps",
    "mg_step_duration_seconds",
    "mg_processor_call_duration_seconds",
    "mg_machine_failures",
    "mg_timers_fired",
    "mg_timer_fire_lag_seconds",
    "mg_notifications_delivered",
    "mg_notification_queued_seconds",
    "mg_machines_retrying",
    "mg_machines_failed",
    "mg_notifications_queued",
    "mg_sink_sequenced_events",
    "mg_sink_sequencer_lag_seconds",
    "mg_sink_position",
    "mg_sink_outbox_pending",
    "mg_sink_outbox_oldest_seconds",
    "mg_steps_in_flight",
    "mg_step_slots",
    "mg_steps_waiting_for_slot",
    "mg_requests_queued_on_machines",
    "mg_machines_busy",
    "mg_postgres_pool_connections",
    "mg_postgres_pool_max",
    "mg_http_requests",
    "mg_http_request_duration_seconds",
    "mg_sampler_failures",
    "mg_sampled_at_seconds",
)


async def test_metrics_expose_every_family(api: Api) -> None:
    found = await scrape(api)
    missing = [name for name in FAMILIES if name not in found.families]
    assert not missing


async def test_step_processor_and_http_series_move_when_steps_run(
    api: Api, processor: FakeProcessor
) -> None:
    before = await scrape(api)
    await api.start("m1")
    await api.call("m1", "x")
    await api.call("m1", "y")
    assert (await api.call("missing")).status_code == 404
    after = await scrape(api)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("mg_steps_total", ns="test", kind="call", outcome="ok") == 2
    assert moved("mg_steps_total", ns="test", kind="init", outcome="ok") == 1
    assert moved("mg_steps_total", ns="test", kind="call", outcome="rejected") == 1
    assert moved("mg_step_duration_seconds_count", ns="test", kind="call") == 3
    assert (
        moved("mg_processor_call_duration_seconds_count", ns="test", kind="call", outcome="ok") == 2
    )
    assert moved("mg_http_requests_total", route="call", method="POST", status="200") == 2
    assert moved("mg_http_requests_total", route="call", method="POST", status="404") == 1
    assert moved("mg_http_requests_total", route="start", method="POST", status="201") == 1
    assert moved("mg_http_requests_total", route="metrics", method="GET", status="200") == 1
    assert moved("mg_http_request_duration_seconds_count", route="call") == 3


async def test_in_flight_steps_queues_and_pool_usage_are_visible_while_a_step_runs(
    api: Api, processor: FakeProcessor
) -> None:
    await api.start("m1")
    entered, release = trio.Event(), trio.Event()

    async def slow(seen: Seen) -> Answer:
        if seen.kind == "call":
            entered.set()
            await release.wait()
        return await echo(seen)

    processor.behaviour = slow
    idle = await scrape(api)
    assert idle.value("mg_steps_in_flight") == 0
    assert idle.value("mg_step_slots") > 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(api.call, "m1", "first")
        await entered.wait()
        nursery.start_soon(api.call, "m1", "second")
        busy = await wait_for_sample(api, lambda s: s.value("mg_requests_queued_on_machines") >= 1)
        assert busy.value("mg_steps_in_flight") == 1
        assert busy.value("mg_machines_busy") == 1
        assert busy.value("mg_postgres_pool_connections", state="busy") >= 1
        assert busy.value("mg_postgres_pool_max") == 16
        release.set()
    done = await scrape(api)
    assert done.value("mg_steps_in_flight") == 0
    assert done.value("mg_requests_queued_on_machines") == 0


async def wait_for_sample(api: Api, check: Any) -> Scrape:
    """Scrape until ``check(scrape)`` holds (the sampler and the steps run on their own)."""
    with trio.fail_after(15):
        while True:
            found = await scrape(api)
            if check(found):
                return found
            await trio.sleep(0.05)


async def test_sampled_gauges_follow_the_database(
    database_url: str, processor: FakeProcessor
) -> None:
    async def fail_calls(seen: Seen) -> Answer:
        if seen.kind == "call":
            return Answer(status=500, raw=b"no", media="text/plain")
        return await echo(seen)

    async with node_on(database_url, processor, metrics={"sample_interval": "50ms"}) as node:
        api = Api(node.url)
        try:
            first = await wait_for_sample(api, lambda s: s.value("mg_sampled_at_seconds") > 0)
            assert first.value("mg_machines_failed", ns="test") == 0
            for name in ("m1", "m2", "m3"):
                await api.start(name, "event")  # one event each, to sink main's outbox
            processor.behaviour = fail_calls
            await api.call("m1")
            await api.call("m2")
            await wait_for_sample(api, lambda s: s.value("mg_machines_failed", ns="test") == 2)
            # Retrying and notifications are driven by the timer and notification loops; their
            # gauges read the same rows, set here by hand.
            async with sql(database_url) as db:
                await db.execute("UPDATE mg_machines SET status = 'retrying' WHERE id = 'm3'")
                await db.execute(
                    "INSERT INTO mg_notifications (ns, machine_id, args, created_at) "
                    "VALUES ('test', 'm1', '\\xc0', now()), ('test', 'm1', '\\xc0', now())"
                )
            found = await wait_for_sample(
                api, lambda s: s.value("mg_machines_retrying", ns="test") == 1
            )
            await wait_for_sample(api, lambda s: s.value("mg_notifications_queued", ns="test") == 2)
            # The sink's sequencer moved the three start events: position 3, nothing pending.
            found = await wait_for_sample(
                api,
                lambda s: (
                    s.value("mg_sink_position", sink="main") == 3
                    and s.value("mg_sink_outbox_pending", sink="main") == 0
                ),
            )
            assert found.value("mg_sink_sequenced_events_total", sink="main") == 3
            assert found.value("mg_sink_sequencer_lag_seconds_count", sink="main") >= 1
            assert found.value("mg_sink_outbox_oldest_seconds", sink="main") == 0
        finally:
            await api.aclose()


# --- health ----------------------------------------------------------------------------------


async def test_health_live_and_ready(api: Api) -> None:
    live = await api.http.get("/health/live")
    ready = await api.http.get("/health/ready")
    assert (live.status_code, live.json()["status"]) == (200, "live")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    assert ready.headers["x-request-id"]
    refused = await api.http.post("/health/ready", json={})
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD"


async def test_not_ready_when_the_schema_is_behind(
    database_url: str, processor: FakeProcessor
) -> None:
    async with (
        node_on(database_url, processor) as node,
        httpx.AsyncClient(base_url=node.url, trust_env=False) as client,
    ):
        async with sql(database_url) as db:
            await db.execute(
                "DELETE FROM mg_schema_migrations "
                "WHERE version = (SELECT max(version) FROM mg_schema_migrations)"
            )
        behind = await client.get("/health/ready")
        assert behind.status_code == 503
        assert body(behind)["error"] == "unavailable"
        assert "migrated" in body(behind)["message"]
        assert (await client.get("/health/live")).status_code == 200
