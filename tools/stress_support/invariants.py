"""The checks a stress run ends with, read straight from the database.

- every acknowledged operation's event is stored exactly once; every refused one not at all;
- every history is contiguous (ids 1..last, matching the machine row);
- every stored event reached each subscribed sink exactly once, in per-machine order, and each
  sink's hash chain verifies;
- no machine failed that was not made to fail;
- with several databases, each holds only the namespaces placed on it and the sinks they feed
  (the tokens are counted over all of them: an event stored in two databases is stored twice).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from mg.postgres.bridge.interface import Bridge
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
IN_OUTBOX = """
SELECT ns, machine_id, incarnation, event_id FROM mg_sink_outbox WHERE sink = $1
"""
SINKS_HELD = """
SELECT sink FROM mg_sink_events UNION SELECT sink FROM mg_sink_outbox
"""


@dataclass(frozen=True)
class StressDatabase:
    """One database of a run: the sinks to check on it and, when known, the namespaces placed
    on it (``None``: nodes given, whose placement the tool was not told)."""

    bridge: Bridge
    sinks: Sequence[str] = ()
    namespaces: Sequence[str] | None = None
    name: str = "default"


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


class Snapshot:
    """Every table the checks read, as of one moment.

    Read in one repeatable-read transaction: read statement by statement, a step committing in
    between (a node is still running) would show events that the sink rows read earlier could
    not yet hold.
    """

    def __init__(self, tables: dict[str, list[Any]]) -> None:
        self.tables = tables

    @classmethod
    async def read(cls, bridge: Bridge, sinks: Sequence[str], placed: bool = False) -> Snapshot:
        """``placed``: also read which sinks the database holds rows of."""

        async def work(conn: Any) -> dict[str, list[Any]]:
            tables: dict[str, list[Any]] = {}
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                tables["events"] = await conn.fetch(EVENTS)
                tables["histories"] = await conn.fetch(HISTORIES)
                tables["failed"] = await conn.fetch(FAILED)
                sink_tables = await conn.fetchval(SINK_EXISTS)
                if placed and sink_tables:
                    tables["sinks held"] = await conn.fetch(SINKS_HELD)
                if sinks and sink_tables:
                    tables["live"] = await conn.fetch(LIVE_EVENTS)
                    for sink in sinks:
                        tables[f"sink {sink}"] = await conn.fetch(SINK_ROWS, sink)
                        tables[f"outbox {sink}"] = await conn.fetch(IN_OUTBOX, sink)
            return tables

        return cls(await bridge.run(work, timeout=300))


async def check(bridge: Bridge, ledger: Ledger, sinks: list[str]) -> Report:
    """The checks of a run on one database."""
    return await check_databases([StressDatabase(bridge, sinks)], ledger)


async def check_databases(databases: Sequence[StressDatabase], ledger: Ledger) -> Report:
    """The checks of a run over several databases: each database's own, then the tokens over
    all of them (the ledger does not know where an unacknowledged token went)."""
    report = Report()
    counts: Counter[str] = Counter()
    for database in databases:
        where = f"database {database.name}: " if len(databases) > 1 else ""
        snapshot = await Snapshot.read(
            database.bridge, database.sinks, placed=database.namespaces is not None
        )
        counts.update(_tokens(snapshot))
        _check_one(database, snapshot, ledger, report, where)
        if database.namespaces is not None:
            _check_placement(database, snapshot, ledger, report, where)
        if "live" in snapshot.tables:
            await _check_sinks(database.bridge, snapshot, database.sinks, report, where)
    _check_tokens(counts, ledger, report)
    return report


def _tokens(snapshot: Snapshot) -> Counter[str]:
    counts: Counter[str] = Counter()
    for row in snapshot.tables["events"]:
        data = msgpack.unpackb(row["data"], raw=False)
        if isinstance(data, dict) and "token" in data:
            counts[data["token"]] += 1
    return counts


def _check_tokens(counts: Counter[str], ledger: Ledger, report: Report) -> None:
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


def _check_one(
    database: StressDatabase, snapshot: Snapshot, ledger: Ledger, report: Report, where: str
) -> None:
    histories = snapshot.tables["histories"]
    for row in histories:
        if not (row["stored"] == row["last"] == row["last_event_id"] and row["first"] in (0, 1)):
            report.fail(
                f"{where}history of {row['id']} is not contiguous: {row['stored']} events, ids "
                f"{row['first']}..{row['last']}, row says {row['last_event_id']}"
            )
    report.checked["machines"] = report.checked.get("machines", 0) + len(histories)
    if where:
        report.checked[f"machines in database {database.name}"] = len(histories)

    for row in snapshot.tables["failed"]:
        if row["id"] not in ledger.made_to_fail:
            report.fail(f"{where}machine {row['id']} failed unexpectedly: {row['failure_reason']}")


def _check_placement(
    database: StressDatabase, snapshot: Snapshot, ledger: Ledger, report: Report, where: str
) -> None:
    """A namespace lives in exactly one database, and a sink in the database of the namespaces
    feeding it (PROTOCOL.md section 8): rows of any other here went to the wrong place. And
    every namespace placed here that was given machines holds some: a run whose load never
    reached a database would pass its checks without testing anything."""
    placed = set(database.namespaces or ())
    found = {row["ns"] for row in snapshot.tables["histories"]}
    found |= {row["ns"] for row in snapshot.tables["events"]}
    for ns in sorted(found - placed):
        report.fail(f"{where}holds namespace {ns!r}, which is placed elsewhere")
    for ns in sorted((placed & set(ledger.homes.values())) - found):
        report.fail(f"{where}holds no machine of namespace {ns!r}")
    for row in snapshot.tables.get("sinks held", []):
        if row["sink"] not in database.sinks:
            report.fail(f"{where}holds rows of sink {row['sink']!r}, which lives elsewhere")


def _event_key(row: Any, id_column: str) -> tuple[str, str, int, int]:
    return (row["ns"], row[id_column], row["incarnation"], row["event_id"])


async def _check_sinks(
    bridge: Bridge, snapshot: Snapshot, sinks: Sequence[str], report: Report, where: str
) -> None:
    from mg.postgres.sinks import PostgresSinks
    from mg.service.sink_verify import verify_chain

    live = {_event_key(r, "id") for r in snapshot.tables["live"]}
    for sink in sinks:
        rows = snapshot.tables[f"sink {sink}"]
        # Still in the outbox: on its way, which is not a loss (callers that need the sink
        # caught up wait until the outbox is empty before checking).
        in_flight = {_event_key(r, "machine_id") for r in snapshot.tables[f"outbox {sink}"]}
        seen: Counter[tuple[str, str, int, int]] = Counter()
        last_event: dict[tuple[str, str, int], int] = {}
        previous = 0
        for row in rows:
            key = _event_key(row, "machine_id")
            seen[key] += 1
            if row["id"] != previous + 1:
                report.fail(f"{where}sink {sink}: position {row['id']} follows {previous}")
            previous = row["id"]
            machine = key[:3]
            if last_event.get(machine, 0) >= row["event_id"]:
                report.fail(f"{where}sink {sink}: {machine} event {row['event_id']} out of order")
            last_event[machine] = row["event_id"]
        for key in live:
            if seen[key] != 1 and not (seen[key] == 0 and key in in_flight):
                report.fail(f"{where}sink {sink}: event {key} appears {seen[key]} times")
        verdict = await verify_chain(PostgresSinks(bridge), sink)
        if not verdict.intact:
            report.fail(where + verdict.summary())
        report.checked[f"sink {sink}"] = len(rows)
