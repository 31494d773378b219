"""The checks a stress run ends with, read straight from the database.

- every acknowledged operation's event is stored exactly once; every refused one not at all;
- every history is contiguous (ids 1..last, matching the machine row);
- every stored event reached each subscribed sink exactly once, in per-machine order, and each
  sink's hash chain verifies;
- no machine failed that was not made to fail.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgpack

from mg.postgres.bridge import Bridge
from tools.stress_support.workload import Ledger

EVENTS = "SELECT ns, machine_id, event_id, data FROM mg_events"
HISTORIES = """
SELECT m.ns, m.id, m.last_event_id, count(e.event_id) AS stored,
       coalesce(min(e.event_id), 0) AS first, coalesce(max(e.event_id), 0) AS last
FROM mg_machines m LEFT JOIN mg_events e ON e.ns = m.ns AND e.machine_id = m.id
GROUP BY m.ns, m.id, m.last_event_id
"""
FAILED = "SELECT id, failure_reason FROM mg_machines WHERE status = 'failed'"
SINK_EXISTS = "SELECT to_regclass('mg_sink_events') IS NOT NULL"
SINK_ROWS = """
SELECT sink, id, ns, machine_id, incarnation, event_id FROM mg_sink_events
WHERE sink = $1 ORDER BY id
"""
LIVE_EVENTS = """
SELECT m.ns, m.id, m.incarnation, e.event_id
FROM mg_machines m JOIN mg_events e ON e.ns = m.ns AND e.machine_id = m.id
"""


@dataclass
class Report:
    violations: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        if len(self.violations) < 50:
            self.violations.append(message)

    @property
    def ok(self) -> bool:
        return not self.violations


async def _fetch(bridge: Bridge, statement: str, *args: Any) -> list[Any]:
    return list(await bridge.run(lambda conn: conn.fetch(statement, *args), timeout=300))


async def check(bridge: Bridge, ledger: Ledger, sinks: list[str]) -> Report:
    report = Report()
    counts: Counter[str] = Counter()
    for row in await _fetch(bridge, EVENTS):
        data = msgpack.unpackb(row["data"], raw=False)
        if isinstance(data, dict) and "token" in data:
            counts[data["token"]] += 1
    for token in ledger.acknowledged:
        if counts[token] != 1:
            report.fail(f"acknowledged operation {token} stored {counts[token]} times")
    for token in ledger.refused:
        if counts[token]:
            report.fail(f"operation {token} was refused but stored {counts[token]} times")
    for token in ledger.unknown:
        if counts[token] > 1:
            report.fail(f"operation {token} (outcome unknown) stored {counts[token]} times")
    duplicated = [token for token, n in counts.items() if n > 1]
    for token in duplicated[:10]:
        report.fail(f"event token {token} stored {counts[token]} times")
    report.checked["acknowledged"] = len(ledger.acknowledged)
    report.checked["events"] = sum(counts.values())

    histories = await _fetch(bridge, HISTORIES)
    for row in histories:
        if not (row["stored"] == row["last"] == row["last_event_id"] and row["first"] in (0, 1)):
            report.fail(
                f"history of {row['id']} is not contiguous: {row['stored']} events, ids "
                f"{row['first']}..{row['last']}, row says {row['last_event_id']}"
            )
    report.checked["machines"] = len(histories)

    for row in await _fetch(bridge, FAILED):
        if row["id"] not in ledger.made_to_fail:
            report.fail(f"machine {row['id']} failed unexpectedly: {row['failure_reason']}")

    if sinks and (await _fetch(bridge, SINK_EXISTS))[0][0]:
        await _check_sinks(bridge, sinks, report)
    return report


async def _check_sinks(bridge: Bridge, sinks: list[str], report: Report) -> None:
    from mg.postgres.sinks import PostgresSinks
    from mg.service.sink_verify import verify_chain

    live = {
        (r["ns"], r["id"], r["incarnation"], r["event_id"])
        for r in await _fetch(bridge, LIVE_EVENTS)
    }
    for sink in sinks:
        rows = await _fetch(bridge, SINK_ROWS, sink)
        seen: Counter[tuple[str, str, int, int]] = Counter()
        last_event: dict[tuple[str, str, int], int] = {}
        previous = 0
        for row in rows:
            key = (row["ns"], row["machine_id"], row["incarnation"], row["event_id"])
            seen[key] += 1
            if row["id"] != previous + 1:
                report.fail(f"sink {sink}: position {row['id']} follows {previous}")
            previous = row["id"]
            machine = key[:3]
            if last_event.get(machine, 0) >= row["event_id"]:
                report.fail(f"sink {sink}: {machine} event {row['event_id']} out of order")
            last_event[machine] = row["event_id"]
        for key in live:
            if seen[key] != 1:
                report.fail(f"sink {sink}: event {key} appears {seen[key]} times")
        verdict = await verify_chain(PostgresSinks(bridge), sink)
        if not verdict.intact:
            report.fail(verdict.summary())
        report.checked[f"sink {sink}"] = len(rows)
