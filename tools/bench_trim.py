"""trim: a machine that appends one event per step and trims to the newest 100 stays flat.

One node and a fake processor in this process. The processor answers every call with one new
event and ``action.trim.before = last + 1 - (keep - 1)``, so the machine holds ``--keep`` events
after every step. One client calls the machine ``--steps`` times in a row. At each checkpoint
(1,000, 10,000, 100,000 steps, and the last) it reports the step latency (p50, p99) over the
1,000 steps before it, the events the machine holds, and the size of ``mg_events`` (table and
indexes, as Postgres reports it; dead rows wait for autovacuum).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import httpx
import trio

from mg.node import running_node
from mg.postgres.bridge.factory import make_bridge
from mg.settings import from_mapping
from tests.support.processor import Answer, FakeProcessor, Seen, serving

CHECKPOINTS = (1_000, 10_000, 100_000)
WINDOW = 1_000

SIZES = """
SELECT (SELECT count(*) FROM mg_events WHERE ns = 'bench' AND machine_id = 'm') AS held,
       pg_total_relation_size('mg_events') AS events_bytes,
       (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'mg_events') AS dead
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=100_000, help="calls of the machine")
    parser.add_argument(
        "--keep", type=int, default=100, help="events held after each step (0: no trim, a baseline)"
    )


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
    }


async def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    keep = args.keep

    async def trimming(seen: Seen) -> Answer:
        last = seen.machine["history_bounds"]["last"]
        body: dict[str, Any] = {"events": [{"data": {"n": last + 1}}]}
        if keep:
            body["action"] = {"trim": {"before": max(1, last + 2 - keep)}}
        return Answer(body=body)

    checkpoints = sorted({c for c in CHECKPOINTS if c <= args.steps} | {args.steps})
    figures: list[dict[str, Any]] = []
    async with serving(FakeProcessor(trimming)) as processor:
        processor.seen = _Forget()  # type: ignore[assignment]  # 100,000 requests: keep none
        config = {
            "database": {"pool_size": 4},
            "logging": {"level": "warning"},
            "namespaces": {
                "bench": {"processor": {"url": processor.url}, "default_processing_timeout": "30s"}
            },
        }
        settings = from_mapping(config, environ={})
        async with (
            running_node(settings, url, port=0) as node,
            httpx.AsyncClient(base_url=node.url, timeout=30, trust_env=False) as client,
            make_bridge("thread", url, min_size=1, max_size=1) as bridge,
        ):
            path = "/v1/namespaces/bench/machines/m"
            assert (await client.post(path + "/start", json={"args": None})).status_code == 201
            samples: list[float] = []
            for step in range(1, args.steps + 1):
                began = time.perf_counter()
                answer = await client.post(path + "/call", json={"args": step})
                samples.append(time.perf_counter() - began)
                assert answer.status_code == 200, answer.text
                if step in checkpoints:
                    row = await bridge.run(lambda conn: conn.fetchrow(SIZES))
                    figure = {
                        "steps": step,
                        **percentiles(samples[-WINDOW:]),
                        "held": row["held"],
                        "mg_events_bytes": row["events_bytes"],
                        "dead_rows": row["dead"],
                    }
                    figures.append(figure)
                    print(
                        f"{step:>7} steps: p50 {figure['p50_ms']:.2f} ms, p99 "
                        f"{figure['p99_ms']:.2f} ms, held {figure['held']}, mg_events "
                        f"{figure['mg_events_bytes'] / 1024:.0f} kB ({figure['dead_rows']} dead)",
                        flush=True,
                    )
            node.stop()
    return {"trim": {"keep": keep, "window": WINDOW, "checkpoints": figures}}


class _Forget(list[Any]):
    def append(self, item: Any) -> None:
        pass


def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    return trio.run(measure, args, url)
