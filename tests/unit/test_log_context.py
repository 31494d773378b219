"""Log lines carry the context of their work: trace, request id, namespace and machine id."""

from __future__ import annotations

import io
import json
import logging

from mg.core import log_context as context
from mg.core.facts import StepFinished
from mg.core.trace import TraceContext
from mg.logs import make_handler
from mg.observability.fact_log import log_fact
from tests.support.logs import captured_logs

TRACE = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def test_bound_fields_are_stamped_on_json_lines() -> None:
    with captured_logs() as lines, context.bound(trace=TRACE, request_id="r-1", ns="orders"):
        logging.getLogger("mg.test").info("hello %s", "world")
    [line] = [line for line in lines() if line["logger"] == "mg.test"]
    assert line["message"] == "hello world"
    assert line["trace_id"] == TRACE.trace_id
    assert line["span_id"] == TRACE.span_id
    assert line["request_id"] == "r-1"
    assert line["ns"] == "orders"
    assert "machine_id" not in line


def test_context_is_restored_after_the_block_even_when_changed_inside() -> None:
    other = TraceContext("1" * 32, "2" * 16)
    with context.bound(trace=TRACE, ns="a"):
        with context.bound(machine_id="m1"):
            context.set_trace(other)
            context.set_machine("b", "m2")
            assert context.current()["trace_id"] == other.trace_id
        assert context.current() == {
            "trace_id": TRACE.trace_id,
            "span_id": TRACE.span_id,
            "ns": "a",
        }
    assert context.current() == {}


def test_a_facts_own_machine_wins_over_the_context() -> None:
    with captured_logs() as lines, context.bound(ns="outer", machine_id="outer-id"):
        log_fact(StepFinished("orders", "o-1", "call", "ok", 0.25))
    [line] = [line for line in lines() if line["logger"] == "mg.facts"]
    assert (line["ns"], line["machine_id"], line["kind"], line["outcome"]) == (
        "orders",
        "o-1",
        "call",
        "ok",
    )
    assert line["level"] == "info"


def test_a_step_that_failed_the_machine_is_a_warning_with_its_reason() -> None:
    with captured_logs() as lines:
        log_fact(StepFinished("orders", "o-1", "call", "failed", 0.1, reason="boom"))
    [line] = [line for line in lines() if line["logger"] == "mg.facts"]
    assert line["level"] == "warning"
    assert line["reason"] == "boom"


def test_text_lines_are_human_readable_with_the_context_first() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("mg.test.text")
    handler = make_handler("text", stream)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with context.bound(trace=TRACE, ns="orders", machine_id="o-1"):
            logger.warning("slow step", extra={"seconds": 2.5})
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    text = stream.getvalue().strip()
    assert "WARNING mg.test.text: slow step" in text
    assert text.endswith(
        f"trace_id={TRACE.trace_id} span_id={TRACE.span_id} ns=orders machine_id=o-1 seconds=2.5"
    )
    try:
        json.loads(text)
    except ValueError:
        pass
    else:
        raise AssertionError("text lines must not be JSON")
