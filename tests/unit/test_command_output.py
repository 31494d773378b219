"""How the commands print: tables, one-line values and the JSON documents of ``--json``."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from mg.client import Content, Event, Machine, Range, Retry, Status
from mg.commands.output import Columns, document, inline, machine_document, machine_text, table

AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def test_tables_pad_columns_align_numbers_right_and_leave_the_last_column_ragged() -> None:
    text = table(("ID", "N", "DATA"), [("a", "1", "x"), ("long-id", "100", "yy")], numeric=(1,))
    assert text.splitlines() == [
        "ID         N  DATA",
        "a          1  x",
        "long-id  100  yy",
    ]


def test_a_growing_table_keeps_the_widths_of_its_first_rows() -> None:
    columns = Columns(("A", "B"))
    assert columns.lines([("x", "1")]) == ["A  B", "x  1"]
    assert columns.lines([("wider", "2")]) == ["wider  2"]


def test_values_print_as_one_line_json_with_binary_as_base64() -> None:
    assert inline("plain text") == "plain text"
    assert (
        inline({"a": b"\x00\x01", "n": [1, None]}) == '{"a": {"$base64": "AAE="}, "n": [1, null]}'
    )
    assert inline(float("nan")) == "nan"
    assert json.loads(document({"é": b"\xff"})) == {"é": {"$base64": "/w=="}}


def test_a_machine_prints_as_fields_and_a_history_table_or_the_contract_shape() -> None:
    machine = Machine(
        ns="orders",
        id="o-1",
        status=Status.FAILED,
        failure_reason="boom",
        history=(Event(7, AT, None, "seven"),),
        history_range=Range(limit=1),
        aux_state=Content({"paid": 1}, 2),
        timer=AT,
        tags=("t1", "t2"),
    )
    lines = machine_text(machine).splitlines()
    assert lines[:7] == [
        "machine    orders/o-1",
        "status     failed",
        "failure    boom",
        "timer      2026-01-02T03:04:05.678901Z",
        "tags       t1, t2",
        'aux state  {"paid": 1}  (format 2)',
        "history    1 shown, event 7, forward",
    ]
    assert lines[-1] == "    7  2026-01-02T03:04:05.678901Z       -  seven"
    assert machine_document(machine) == {
        "ns": "orders",
        "id": "o-1",
        "status": "failed",
        "failure": {"reason": "boom"},
        "history": [
            {
                "id": 7,
                "created_at": "2026-01-02T03:04:05.678901Z",
                "format_version": None,
                "data": "seven",
            }
        ],
        "history_range": {"after": None, "limit": 1, "direction": "forward"},
        "aux_state": {"data": {"paid": 1}, "format_version": 2},
        "timer": "2026-01-02T03:04:05.678901Z",
        "tags": ["t1", "t2"],
        "retry": None,
    }


def test_a_retrying_machine_says_what_it_retries_and_why() -> None:
    retry = Retry(subject="timer", attempt=2, next_at=AT, last_error="the processor answered 503")
    machine = Machine(
        ns="subs",
        id="s-1",
        status=Status.RETRYING,
        failure_reason=None,
        history=(),
        history_range=Range(),
        aux_state=None,
        timer=AT,
        tags=(),
        retry=retry,
    )
    lines = machine_text(machine).splitlines()
    assert lines[3] == (
        "retry      timer, 2 failed attempts, next at 2026-01-02T03:04:05.678901Z: "
        "the processor answered 503"
    )
    assert machine_document(machine)["retry"] == {
        "subject": "timer",
        "attempt": 2,
        "next_at": "2026-01-02T03:04:05.678901Z",
        "last_error": "the processor answered 503",
    }


def test_values_json_cannot_print_never_end_a_command_with_a_traceback() -> None:
    from mg.client import SinkEvent
    from mg.commands.output import sink_event_document, sink_row

    deep: object = 0
    for _ in range(5000):  # stored before mg checked values: deeper than the encoder goes
        deep = [deep]
    for data in (deep, math.nan):
        item = SinkEvent(7, "ns", "m", Event(1, AT, None, data), "h")
        row = sink_row(item)
        assert row[0] == "7"
        printed = json.loads(document(sink_event_document(item)))
        assert printed["id"] == 7
        assert "$unprintable" in printed["event"]["data"]
