"""Timers and notifications that a processor or legacy rows poison (HOSTILE probes 53-55, 58,
59, 64) never stop the loops: other timers fire on time, the node stays up, and each poisoned
machine ends fired or failed with a reason."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio

from mg.core.clock import parse_time, utc_now
from tests.acceptance.test_timers import wait_for
from tests.support.api import Api, body
from tests.support.processes import NodeProcess, write_config
from tests.support.processor import Answer, FakeProcessor, Seen
from tests.support.sql import sql

FAST = {"type": "intervals", "intervals": ["100ms", "100ms"], "max_retries": 2}
YEAR_ONE = '{"action":{"timer":{"set":{"deadline":"0001-01-01T00:00:00Z"}}}}'
# Replies whose timer fields break the rule: the call fails the machine, nothing is armed.
# (MessagePack carries NaN and infinities; clients cannot send them, so the processor holds
# the replies and the call names one.)
BAD_TIMERS: dict[str, dict[str, Any]] = {
    "nan-timeout": {"timeout": math.nan},
    "inf-timeout": {"timeout": math.inf},
    "inf-handling": {"timeout": 0, "handling_timeout": math.inf},
    "huge-handling": {"timeout": 0, "handling_timeout": 1e300},
    "nan-handling": {"timeout": 0, "handling_timeout": math.nan},
}


async def behaviour(seen: Seen) -> Answer:
    """Calls and init answer ``args.raw`` (JSON text) or arm ``args.timer``; timeouts and
    notifications record an event."""
    if seen.kind in ("timeout", "notification"):
        return Answer(body={"events": [{"data": seen.kind}]})
    args = seen.body["signal"]["args"] if seen.kind == "init" else seen.body["args"]
    args = args if isinstance(args, dict) else {}
    if "bad" in args:
        return Answer(body={"action": {"timer": {"set": BAD_TIMERS[args["bad"]]}}})
    if "raw" in args:
        return Answer(raw=args["raw"].encode(), media="application/json")
    if "timer" in args:
        return Answer(body={"action": {"timer": {"set": args["timer"]}}})
    return Answer(body={"events": [{"data": "init"}]})


@pytest.mark.timeout(120)
async def test_poisoned_timers_neither_stop_other_timers_nor_the_node(
    database_url: str, processor: FakeProcessor
) -> None:
    processor.behaviour = behaviour
    namespace = {"processor": {"url": processor.url}, "retries": {"timers": FAST}}
    config = write_config(
        Path(tempfile.mkdtemp(prefix="mg-poison-")) / "mg.toml",
        {
            "server": {"port": 0},
            "namespaces": {
                "json": {
                    **namespace,
                    "processor": {"url": processor.url, "encoding": "json"},
                    "retries": {"timers": FAST, "notifications": FAST},
                },
                "other": namespace,
            },
        },
    )
    async with trio.open_nursery() as nursery, sql(database_url) as db:
        node = NodeProcess(config, env={"MG_DATABASE_URL": database_url})
        api = Api(await node.start(nursery), ns="json")
        try:
            # 20 machines whose processor armed a timer for year 1: due at once.
            for n in range(20):
                assert (await api.start(f"year1-{n}", {"raw": YEAR_ONE})).status_code == 201
            # Timer fields NaN, infinite or huge: the call fails the machine.
            for name in BAD_TIMERS:
                assert (await api.start(name)).status_code == 201
                answer = await api.call(name, {"bad": name})
                assert answer.status_code == 409, (name, answer.text)
                assert "timeout" in body(answer)["reason"], name
            # Legacy rows, written as older mg could: -infinity and infinite durations.
            due = "timer_fire_at = now(), wake_at = now()"
            legacy = {
                "legacy-minus-infinity": "timer_fire_at = '-infinity', wake_at = '-infinity'",
                "legacy-inf-handling": f"timer_handling_timeout = 'Infinity', {due}",
                "legacy-nan-handling": f"timer_handling_timeout = 'NaN', {due}",
                "legacy-nan-event": f"last_event_id = 1, {due}",
            }
            for machine_id in legacy:
                assert (await api.start(machine_id, {"timer": {"timeout": 3600}})).is_success
            await db.execute(
                "INSERT INTO mg_events (ns, machine_id, event_id, created_at, data) "
                "VALUES ('json', 'legacy-nan-event', 1, now(), $1)",
                msgpack.packb(math.nan),
            )
            for machine_id, change in legacy.items():
                # The version moves so that no cached copy of the row is trusted.
                await db.execute(
                    f"UPDATE mg_machines SET {change}, version = version + 1 WHERE id = $1",
                    machine_id,
                )
            # A failed machine keeps its timer without firing it: GET and search show it.
            assert (await api.start("legacy-failed", {"timer": {"timeout": 3600}})).is_success
            await db.execute(
                "UPDATE mg_machines SET status = 'failed', failure_reason = 'old', "
                "status_before_failure = 'waiting', timer_fire_at = '-infinity', "
                "wake_at = NULL, version = version + 1 WHERE id = 'legacy-failed'"
            )
            for accept in ("application/json", "application/msgpack"):
                shown = await api.http.get(
                    api.machine_path("legacy-failed"), headers={"accept": accept}
                )
                assert shown.status_code == 200, shown.text
                assert body(shown)["timer"] == "1970-01-01T00:00:00.000000Z"
            assert (await api.search(status="failed")).status_code == 200
            # A legacy notification whose args a JSON processor request cannot carry, and one
            # queued behind it.
            assert (await api.start("legacy-nan-notify")).is_success
            await db.execute(
                "INSERT INTO mg_notifications (ns, machine_id, args, created_at, deliver_at) "
                "VALUES ('json', 'legacy-nan-notify', $1, now(), now())",
                msgpack.packb(math.inf),
            )
            queued = await api.post(api.machine_path("legacy-nan-notify") + "/notify", {})
            assert queued.status_code == 202
            # Meanwhile another namespace's 1 s timer fires on time.
            other = Api(api.http.base_url.__str__(), ns="other")
            try:
                set_at = utc_now()
                assert (await other.start("victim", {"timer": {"timeout": 1}})).is_success

                async def victim_fired() -> bool:
                    return bool(body(await other.get("victim"))["status"] == "sleeping")

                await wait_for(victim_fired, seconds=5)
                [fired] = processor.of_kind("timeout", "victim")
                assert (fired.received_at - set_at).total_seconds() < 3
            finally:
                await other.aclose()

            async def settled(machine_id: str, status: str) -> bool:
                return bool(body(await api.get(machine_id, limit=0))["status"] == status)

            for n in range(20):
                await wait_for(lambda n=n: settled(f"year1-{n}", "sleeping"), seconds=10)
            for name in BAD_TIMERS:
                machine = body(await api.get(name))
                assert machine["status"] == "failed"
                assert machine["timer"] is None
            for machine_id in (
                "legacy-minus-infinity",
                "legacy-inf-handling",
                "legacy-nan-handling",
            ):
                await wait_for(lambda m=machine_id: settled(m, "sleeping"), seconds=10)
                history = body(await api.get(machine_id))["history"]
                assert history[-1]["data"] == "timeout"
            # A step that breaks on a stored value (NaN in the history of a JSON namespace)
            # counts as failed attempts, then fails the machine with the reason.
            await wait_for(lambda: settled("legacy-nan-event", "failed"), seconds=10)
            machine = body(await api.get("legacy-nan-event", limit=0))
            assert "unexpected error" in machine["failure"]["reason"], machine
            assert "retries exhausted after 3" in machine["failure"]["reason"], machine
            await wait_for(lambda: settled("legacy-nan-notify", "failed"), seconds=10)
            machine = body(await api.get("legacy-nan-notify", limit=0))
            assert "notification retries exhausted after 3" in machine["failure"]["reason"]
            rows = await db.fetch(
                "SELECT attempt, last_error, deliver_at FROM mg_notifications "
                "WHERE machine_id = 'legacy-nan-notify' ORDER BY id"
            )
            assert len(rows) == 2
            assert rows[0]["attempt"] == 3
            assert "unexpected error" in rows[0]["last_error"]
            assert rows[0]["deliver_at"] is None  # parked until repair
            # The legacy NaN event is readable in JSON too, marked where JSON cannot carry it.
            shown = await api.http.get(
                api.machine_path("legacy-nan-event"), headers={"accept": "application/json"}
            )
            assert shown.status_code == 200, shown.text
            assert body(shown)["history"][0]["data"] == {"$unrepresentable": "float nan"}
            # Every reader answers, with RFC 3339 times of four-digit years.
            page = body(await api.search(limit=100))
            assert len(page["machines"]) == 20 + len(BAD_TIMERS) + len(legacy) + 2
            for row in page["machines"]:
                if row["timer"] is not None:
                    parse_time(row["timer"])
            assert node.process is not None
            assert node.process.returncode is None
            # No hot loop: each broken attempt was logged once.
            broke = [m for m in node.messages() if "broke; counted as a failed attempt" in m]
            assert 4 <= len(broke) <= 12, broke
        finally:
            await api.aclose()
            node.signal(2)
            await node.wait()
