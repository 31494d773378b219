"""Facts become Prometheus series; observers never break the step they watch."""

from __future__ import annotations

from mg.core.facts import (
    MachineFailedFact,
    NotificationDelivered,
    ProcessorCalled,
    SinkSequenced,
    StepFinished,
    TimerFired,
)
from mg.observability.metrics import Metrics
from mg.observability.observers import fan_out
from mg.service.steps import Activity
from tests.support.metrics import Scrape


def scrape(metrics: Metrics) -> Scrape:
    return Scrape(metrics.render().decode())


def test_steps_and_processor_calls_are_counted_and_timed() -> None:
    metrics = Metrics(["orders"])
    metrics.observe(StepFinished("orders", "o1", "call", "ok", 0.02))
    metrics.observe(StepFinished("orders", "o1", "call", "ok", 0.03))
    metrics.observe(StepFinished("orders", "o2", "init", "failed", 0.5, "boom"))
    metrics.observe(ProcessorCalled("orders", "o1", "call", "ok", 0.01))
    metrics.observe(MachineFailedFact("orders", "o2", "init", "boom"))
    found = scrape(metrics)
    assert found.value("mg_steps_total", ns="orders", kind="call", outcome="ok") == 2
    assert found.value("mg_steps_total", ns="orders", kind="init", outcome="failed") == 1
    assert found.value("mg_step_duration_seconds_count", ns="orders", kind="call") == 2
    assert found.value("mg_step_duration_seconds_sum", ns="orders", kind="call") == 0.05
    assert found.value("mg_step_duration_seconds_bucket", ns="orders", kind="call", le="0.025") == 1
    assert (
        found.value(
            "mg_processor_call_duration_seconds_count", ns="orders", kind="call", outcome="ok"
        )
        == 1
    )
    assert found.value("mg_machine_failures_total", ns="orders", kind="init") == 1


def test_timer_notification_and_sink_facts_move_their_series() -> None:
    metrics = Metrics(["orders"], ["main"])
    metrics.observe(TimerFired("orders", "o1", "ok", 0.004))
    metrics.observe(TimerFired("orders", "o2", "transient", 1.5))
    metrics.observe(NotificationDelivered("orders", "o1", "ok", 0.2))
    metrics.observe(SinkSequenced("main", 3, 42, 0.07))
    metrics.observe(SinkSequenced("main", 2, 44, 0.01))
    found = scrape(metrics)
    assert found.value("mg_timers_fired_total", ns="orders", outcome="ok") == 1
    assert found.value("mg_timer_fire_lag_seconds_count", ns="orders") == 2
    assert found.value("mg_timer_fire_lag_seconds_bucket", ns="orders", le="0.005") == 1
    assert found.value("mg_notifications_delivered_total", ns="orders", outcome="ok") == 1
    assert found.value("mg_notification_queued_seconds_count", ns="orders") == 1
    assert found.value("mg_sink_sequenced_events_total", sink="main") == 5
    assert found.value("mg_sink_position", sink="main") == 44
    assert found.value("mg_sink_sequencer_lag_seconds_count", sink="main") == 2


def test_configured_names_start_at_zero_and_live_gauges_are_read_at_scrape() -> None:
    metrics = Metrics(["orders"], ["main"])
    load = {"in_flight": 0}
    metrics.watch(
        lambda: Activity(load["in_flight"], 24, 0, 3, 2),
        lambda: {"size": 5, "idle": 2, "max": 16},
    )
    first = scrape(metrics)
    assert ("mg_machines_failed", (("ns", "orders"),)) in first.samples
    assert first.value("mg_sink_outbox_pending", sink="main") == 0
    assert first.value("mg_steps_in_flight") == 0
    load["in_flight"] = 7
    second = scrape(metrics)
    assert second.value("mg_steps_in_flight") == 7
    assert second.value("mg_step_slots") == 24
    assert second.value("mg_requests_queued_on_machines") == 3
    assert second.value("mg_postgres_pool_connections", state="busy") == 3
    assert second.value("mg_postgres_pool_connections", state="idle") == 2
    assert second.value("mg_postgres_pool_max") == 16


def test_http_requests_are_counted_by_route_method_and_status() -> None:
    metrics = Metrics()
    metrics.observe_http("call", "POST", 200, 0.01)
    metrics.observe_http("call", "POST", 409, 0.01)
    metrics.observe_http("call", "POST", 200, 0.02)
    found = scrape(metrics)
    assert found.value("mg_http_requests_total", route="call", method="POST", status="200") == 2
    assert found.value("mg_http_request_duration_seconds_count", route="call") == 3


def test_a_failing_observer_does_not_stop_the_others() -> None:
    seen = []

    def broken(_: object) -> None:
        raise RuntimeError("observer bug")

    observe = fan_out(broken, seen.append)
    fact = StepFinished("orders", "o1", "call", "ok", 0.01)
    observe(fact)
    assert seen == [fact]
