"""The peer for ``tools/bench.py steps``: the same durable work through DBOS Transact, a workflow
with one step, on the same Postgres (a database of its own).

The step does what mg's step does besides its bookkeeping: it sends the processor the call (a
MessagePack body of the same shape, over httpx) and returns its response; DBOS records the
workflow and the step's output durably. Workflows are called in-process, with no HTTP server in
front (mg's figures include one): the comparison flatters DBOS by that much.

Runs as a process of its own, driven over stdin: each line ``<concurrency> <seconds>`` runs one
closed-loop measurement and answers one JSON line on stdout. Needs ``pip install -e '.[bench]'``
(or ``pip install dbos``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from typing import Any

MISSING = (
    "DBOS Transact is not installed; it is a bench-only dependency: "
    "pip install -e '.[bench]'   (or: pip install dbos)"
)


def measure(workflow: Any, concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[int] = [0] * concurrency
    stop_at = time.perf_counter() + seconds

    def worker(number: int) -> None:
        turn = 0
        while True:
            began = time.perf_counter()
            try:
                workflow(f"dbos-{number}-{uuid.uuid4().hex[:8]}", {"n": turn})
            except Exception:
                errors[number] += 1
            done = time.perf_counter()
            if done > stop_at:
                return
            latencies[number].append(done - began)
            turn += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(x for mine in latencies for x in mine)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    return {
        "per_s": len(ordered) / seconds,
        "requests": len(ordered),
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "errors": {"exception": sum(errors)} if sum(errors) else {},
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True, help="the database DBOS may use as its own")
    parser.add_argument("--processor", required=True, help="the processor's URL")
    parser.add_argument("--pool", type=int, default=64, help="DBOS's system database pool")
    args = parser.parse_args()
    try:
        import httpx
        import msgpack
        from dbos import DBOS, DBOSConfig
    except ImportError:
        print(json.dumps({"error": MISSING}), flush=True)
        return 2
    config: DBOSConfig = {
        "name": "mg-bench",
        "system_database_url": args.dsn,
        "sys_db_pool_size": args.pool,
        "log_level": "WARNING",
        "max_executor_threads": 128,
    }
    DBOS(config=config)
    local = threading.local()

    @DBOS.step()
    def call_processor(machine_id: str, call_args: Any) -> Any:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(trust_env=False, timeout=30)
        body = msgpack.packb(
            {
                "kind": "call",
                "args": call_args,
                "machine": {"ns": "bench", "id": machine_id, "history": [], "aux_state": None},
            }
        )
        answer = client.post(
            args.processor, content=body, headers={"content-type": "application/msgpack"}
        )
        answer.raise_for_status()
        return msgpack.unpackb(answer.content, raw=False).get("response")

    @DBOS.workflow()
    def call_workflow(machine_id: str, call_args: Any) -> Any:
        return call_processor(machine_id, call_args)

    DBOS.launch()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        concurrency, seconds = line.split()
        print(json.dumps(measure(call_workflow, int(concurrency), float(seconds))), flush=True)
    DBOS.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
