"""Split a py-spy profile of an mg node into the parts of a call: ``python tools/profile_parts.py
PROFILE.txt`` (the ``raw`` format that ``bench.py steps --profile DIR`` writes).

Each sample is given to one part, decided by its innermost frame that belongs to a part; frames
of general-purpose code (trio's scheduler and sockets, h11, asyncio, contextlib, ...) are passed
over, so a socket send made for the processor call counts as the processor call, and one made to
answer the client counts as inbound HTTP. A sample made only of such frames is the scheduler's
own (trio's run loop, epoll, the asyncio loop of the bridge thread). Prints each thread's parts
as shares of its samples, and of all samples.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

# (part, pattern on a frame's file), first match from the innermost frame outwards.
PARTS: tuple[tuple[str, str], ...] = (
    ("logs", r"^logging/|^mg/logs|mg/observability/fact_log|mg/core/log_context"),
    (
        "metrics",
        r"prometheus_client/|mg/observability/(metrics|observers|cache_metrics)|mg/api/instrument",
    ),
    ("processor call (httpx, httpcore)", r"^httpx/|^httpcore/|mg/adapters/"),
    ("asyncpg", r"^asyncpg/"),
    ("bridge", r"mg/postgres/bridge/"),
    ("storage (state cache, SQL arguments, rows)", r"^mg/postgres/"),
    ("values (MessagePack, JSON)", r"^msgpack/|mg/core/values|^json/"),
    ("step rules and service", r"^mg/service/|^mg/core/"),
    ("mg API (front door, dispatch, routes, decoding)", r"^mg/api/"),
    ("Quart, Werkzeug", r"^quart|^werkzeug/"),
    ("inbound HTTP (hypercorn, mg.http_server)", r"^hypercorn/|^mg/http_server|^mg/connections"),
)
GENERAL = "scheduler and I/O (trio, asyncio, epoll, sockets)"
FILE = re.compile(r"\(([^():]+):\d+\)$")


def classify(frames: list[str]) -> str:
    for frame in reversed(frames):
        match = FILE.search(frame)
        if match is None:
            continue
        path = match.group(1)
        for part, pattern in PARTS:
            if re.search(pattern, path):
                return part
    return GENERAL


def account(path: Path) -> dict[str, Counter[str]]:
    threads: dict[str, Counter[str]] = defaultdict(Counter)
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread = frames[0].split(":", 1)[-1].strip() if frames[0].startswith("thread") else "all"
        threads[thread][classify(frames[1:])] += int(count)
    return threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument(
        "--thread-ms",
        action="append",
        default=[],
        metavar="THREAD=MS",
        help="a thread's CPU milliseconds per call, from /proc (bench.py steps records "
        "mg_main_thread for MainThread and mg_other_threads for mg-postgres-bridge): its "
        "parts are then also shown as milliseconds, each its share of the thread's samples",
    )
    args = parser.parse_args()
    per_thread = {
        name: float(value) for name, _, value in (item.partition("=") for item in args.thread_ms)
    }
    threads = account(args.profile)
    total = sum(sum(parts.values()) for parts in threads.values())
    for thread, parts in sorted(threads.items(), key=lambda item: -sum(item[1].values())):
        samples = sum(parts.values())
        print(f"\n{thread}: {samples} samples, {100 * samples / total:.0f} % of all")
        for part, count in parts.most_common():
            spent = per_thread.get(thread)
            ms = f"  {spent * count / samples:5.2f} ms" if spent is not None else ""
            print(
                f"  {100 * count / samples:5.1f} %  {100 * count / total:5.1f} % of all{ms}  {part}"
            )


if __name__ == "__main__":
    main()
