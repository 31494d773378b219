"""mg benchmarks: ``python tools/bench.py <mode> [options]``.

Each mode prints its conditions and figures and writes them to ``bench-results/<mode>-<time>.json``
(the directory is gitignored). Without ``--dsn`` a mode starts an embedded Postgres (PostgreSQL
18 from the wheel, default durability: fsync and synchronous commit on) in a temporary directory.

Modes:
    steps   mg start/call throughput and latency at several concurrencies, next to pgbench
            running the same SQL, a bare quart-trio HTTP ceiling and DBOS Transact
    timers  fire lag of timers due at a steady rate on top of many pending ones (1 or more nodes)
    scale   get/call latency on 10,000 vs 1,000,000 machines; a node's RSS after 100,000
    sink    events/s moved by one sink's sequencer with many writers, and the visibility lag
            from a step's commit to the event being readable in the sink, end to end over HTTP;
            with retention, events/s sequenced while the pruner runs, and the prune rate
    trim    step latency and table size of a machine that appends one event per step and trims
            to the newest 100, at 1,000, 10,000 and 100,000 steps

Add a mode: a module ``tools/bench_<mode>.py`` with ``add_arguments(parser)`` and
``run(args, database_url) -> dict``, and one line in ``MODES``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

MODES = {
    "steps": "bench_steps",
    "timers": "bench_timers",
    "scale": "bench_scale",
    "sink": "bench_sink",
    "trim": "bench_trim",
}


@contextlib.contextmanager
def database(dsn: str | None) -> Iterator[str]:
    """``dsn``, or an embedded Postgres with default durability, stopped at the end."""
    if dsn:
        yield dsn
        return
    from mg.embedded.server import EmbeddedPostgres

    base = Path(tempfile.mkdtemp(prefix="mg-bench-"))
    base.chmod(0o755)  # under root the server runs as nobody
    server = EmbeddedPostgres(base / "data")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def write_results(mode: str, results: dict[str, Any]) -> Path:
    directory = ROOT / "bench-results"
    directory.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = directory / f"{mode}-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/bench.py",
        description=__doc__.split("\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[2:]) if __doc__ else None,
    )
    parser.add_argument("--dsn", help="Postgres to use (default: an embedded one)")
    modes = parser.add_subparsers(dest="mode", required=True)
    loaded = {}
    for name, module_name in MODES.items():
        module = importlib.import_module(module_name)
        loaded[name] = module
        summary = (module.__doc__ or name).split("\n")[0]
        module.add_arguments(modes.add_parser(name, help=summary))
    args = parser.parse_args(argv)
    conditions = {"mode": args.mode, "machine": machine(), "arguments": vars(args)}
    with database(args.dsn) as url:
        figures = loaded[args.mode].run(args, url)
    path = write_results(args.mode, {**conditions, **figures})
    print(f"\nwritten to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
