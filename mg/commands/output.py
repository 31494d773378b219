"""How the commands print: values as one-line JSON, times in RFC 3339, fixed-width tables, and
the JSON documents of ``--json`` (the contract's own shapes, binary as ``{"$base64": ...}``).

No dependency: plain columns, no color, so output piped to a file or to ``grep`` stays clean.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from mg.client import Machine, MachineSummary, SinkEvent
from mg.core import values
from mg.core.clock import format_time
from mg.core.shapes import bounds_value, content_value, event_value, range_value

NOTHING = "-"


def document(value: Any) -> str:
    """A JSON document for scripts: binary as ``{"$base64": ...}``, non-ASCII kept. A value
    JSON cannot carry (stored before mg checked every value: NaN, nesting deeper than the
    encoder goes) is written as ``{"$unprintable": reason}`` in place of the values that hold
    it, so one odd event never ends a command with a traceback."""
    try:
        return json.dumps(values.to_json(value), ensure_ascii=False)
    except (values.ValueRejected, RecursionError) as error:
        return json.dumps(_printable(value, _reason(error)), ensure_ascii=False)


def _reason(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "nested too deep to print"
    return str(error)


def _printable(value: Any, reason: str) -> Any:
    """``value`` with each member that cannot be written as JSON replaced by a marker; a
    document's top level (a dict of the contract's shapes) is kept."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            try:
                out[str(key)] = json.loads(json.dumps(values.to_json(item)))
            except (values.ValueRejected, RecursionError) as error:
                out[str(key)] = (
                    _printable(item, _reason(error))
                    if isinstance(item, dict)
                    else {"$unprintable": _reason(error)}
                )
        return out
    return {"$unprintable": reason}


def inline(value: Any) -> str:
    """A value on one line for people: JSON, except that a bare string is shown unquoted."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(values.to_json(value), ensure_ascii=False)
    except values.ValueRejected:
        return repr(value)  # NaN and friends: JSON cannot spell them, people can read them
    except RecursionError:
        return "<nested too deep to print>"


def when(moment: datetime | None) -> str:
    return format_time(moment) if moment is not None else NOTHING


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()
) -> str:
    """Columns as wide as their widest cell, two spaces apart; ``numeric`` columns align right.
    The last column is padded only when numeric, so long data does not widen every line."""
    return "\n".join(Columns(headers, numeric).lines([tuple(row) for row in rows]))


class Columns:
    """A table printed as it grows (``mg sink tail --follow``): the first rows fix the widths;
    a later, wider cell pushes its line to the right instead of re-aligning what is printed."""

    def __init__(self, headers: Sequence[str], numeric: Sequence[int] = ()) -> None:
        self.headers, self.numeric = tuple(headers), tuple(numeric)
        self.widths: list[int] | None = None

    def lines(self, rows: Sequence[Sequence[str]]) -> list[str]:
        out: list[str] = []
        if self.widths is None:
            every = [self.headers, *rows]
            self.widths = [max(len(row[i]) for row in every) for i in range(len(self.headers))]
            out.append(self._line(self.headers))
        out.extend(self._line(row) for row in rows)
        return out

    def _line(self, row: Sequence[str]) -> str:
        assert self.widths is not None
        cells = [
            cell.rjust(width) if column in self.numeric else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, self.widths, strict=True))
        ]
        return "  ".join(cells).rstrip()


def fields(pairs: Sequence[tuple[str, str]]) -> str:
    """``name  value`` lines, the values aligned."""
    width = max(len(name) for name, _ in pairs)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in pairs)


def history_table(machine: Machine) -> str:
    rows = [
        (
            str(event.id),
            when(event.created_at),
            NOTHING if event.format_version is None else str(event.format_version),
            inline(event.data),
        )
        for event in machine.history
    ]
    return table(("EVENT", "CREATED_AT", "FORMAT", "DATA"), rows, numeric=(0, 2))


def machine_text(machine: Machine) -> str:
    """What ``mg machines get`` prints: the machine's state, then its history as a table."""
    aux = machine.aux_state
    aux_text = NOTHING
    if aux is not None:
        version = "" if aux.format_version is None else f"  (format {aux.format_version})"
        aux_text = inline(aux.data) + version
    shown = machine.history
    if shown:
        span = f"events {shown[0].id}..{shown[-1].id}" if len(shown) > 1 else f"event {shown[0].id}"
        history = f"{len(shown)} shown, {span}, {machine.history_range.direction.value}"
    else:
        history = "no events in range"
    pairs = [
        ("machine", f"{machine.ns}/{machine.id}"),
        ("status", machine.status.value),
        ("failure", machine.failure_reason or NOTHING),
        ("timer", when(machine.timer)),
        ("tags", ", ".join(machine.tags) or NOTHING),
        ("aux state", aux_text),
        ("history", history),
        ("held", held_text(machine)),
    ]
    if machine.retry is not None:
        pairs.insert(3, ("retry", retry_text(machine)))
    head = fields(pairs)
    return head + ("\n\n" + history_table(machine) if shown else "")


def retry_text(machine: Machine) -> str:
    """Why a ``retrying`` machine retries, on one line."""
    retry = machine.retry
    if retry is None:
        return NOTHING
    return (
        f"{retry.subject}, {retry.attempt} failed attempt{'s' if retry.attempt != 1 else ''}, "
        f"next at {when(retry.next_at)}: {retry.last_error}"
    )


def held_text(machine: Machine) -> str:
    """``history_bounds`` for people: which events the machine still holds."""
    bounds = machine.history_bounds
    if bounds is None:
        return NOTHING
    if bounds.held == 0:
        return f"no events (last id {bounds.last})"
    trimmed = f", 1..{bounds.first - 1} trimmed" if bounds.first > 1 else ""
    return f"events {bounds.first}..{bounds.last}{trimmed}"


def machine_document(machine: Machine) -> dict[str, Any]:
    """The contract's ``Machine`` shape (``history_bounds`` only when the node sent it)."""
    failure = machine.failure_reason
    shape = {
        "ns": machine.ns,
        "id": machine.id,
        "status": machine.status.value,
        "failure": {"reason": failure} if failure is not None else None,
        "history": [event_value(event) for event in machine.history],
        "history_range": range_value(machine.history_range),
        "aux_state": content_value(machine.aux_state),
        "timer": format_time(machine.timer) if machine.timer else None,
        "tags": list(machine.tags),
        "retry": retry_document(machine),
    }
    if machine.history_bounds is not None:
        shape["history_bounds"] = bounds_value(machine.history_bounds)
    return shape


def retry_document(machine: Machine) -> dict[str, Any] | None:
    retry = machine.retry
    if retry is None:
        return None
    return {
        "subject": retry.subject,
        "attempt": retry.attempt,
        "next_at": format_time(retry.next_at),
        "last_error": retry.last_error,
    }


def summary_document(summary: MachineSummary) -> dict[str, Any]:
    return {
        "id": summary.id,
        "status": summary.status.value,
        "timer": format_time(summary.timer) if summary.timer else None,
        "updated_at": format_time(summary.updated_at),
    }


SUMMARY_HEADERS = ("ID", "STATUS", "TIMER", "UPDATED_AT")


def summary_rows(summaries: Sequence[MachineSummary]) -> list[tuple[str, ...]]:
    return [(m.id, m.status.value, when(m.timer), when(m.updated_at)) for m in summaries]


def sink_event_document(item: SinkEvent) -> dict[str, Any]:
    """The contract's ``SinkEvent`` shape."""
    return {
        "id": item.id,
        "ns": item.ns,
        "machine_id": item.machine_id,
        "event": event_value(item.event),
        "hash": item.hash,
    }


SINK_HEADERS = ("POSITION", "NS", "MACHINE", "EVENT", "CREATED_AT", "DATA")


def sink_row(item: SinkEvent) -> tuple[str, ...]:
    return (
        str(item.id),
        item.ns,
        item.machine_id,
        str(item.event.id),
        when(item.event.created_at),
        inline(item.event.data),
    )


def sink_table(items: Sequence[SinkEvent]) -> str:
    return table(SINK_HEADERS, [sink_row(item) for item in items], numeric=(0, 3))
