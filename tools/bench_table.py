"""The table ``tools/bench.py steps`` prints: per system and concurrency, the median rate and
its spread, latency percentiles, and mg's ratios to the ceilings."""

from __future__ import annotations

from typing import Any

NAMES = {
    "mg_call": "mg call",
    "mg_start": "mg start",
    "http_ceiling": "HTTP ceiling (bare quart-trio)",
    "pgbench": "pgbench, SQL of one call step",
    "dbos": "DBOS workflow, one step",
}


def _cell(point: dict[str, Any] | None, key: str = "per_s") -> str:
    if not point or key not in point:
        return "-"
    found = point[key]
    if key == "per_s":
        return f"{found['median']:,.0f} ({found['min']:,.0f}-{found['max']:,.0f})"
    return f"{found['median']:.1f}"


def _ratio(top: dict[str, Any] | None, bottom: dict[str, Any] | None) -> str:
    if not top or not bottom or "per_s" not in top or "per_s" not in bottom:
        return "-"
    below = bottom["per_s"]["median"]
    return f"{top['per_s']['median'] / below:.2f}" if below else "-"


def print_table(results: dict[str, Any]) -> None:
    points: dict[str, dict[str, Any]] = results["points"]
    columns = [str(c) for c in results["concurrency"]]
    width = 24
    print()
    heads = "".join(f"{'c=' + c:>{width}}" for c in columns)
    print(f"{'per second: median (min-max)':<34}{heads}")
    for system, name in NAMES.items():
        if system not in points:
            continue
        by_c = points[system]
        print(f"{name:<34}" + "".join(f"{_cell(by_c.get(c)):>{width}}" for c in columns))
        print(
            f"{'  latency p50 / p99 ms':<34}"
            + "".join(
                f"{_cell(by_c.get(c), 'p50_ms') + ' / ' + _cell(by_c.get(c), 'p99_ms'):>{width}}"
                for c in columns
            )
        )
    calls = points.get("mg_call", {})
    for label, other in (
        ("mg call / pgbench", "pgbench"),
        ("mg call / HTTP ceiling", "http_ceiling"),
        ("mg call / DBOS", "dbos"),
    ):
        if other in points:
            print(
                f"{label:<34}"
                + "".join(f"{_ratio(calls.get(c), points[other].get(c)):>{width}}" for c in columns)
            )
    half = results.get("half_load")
    if half:
        print(
            f"\nmg call open loop at half of its peak ({half['rate_per_s']:,.0f}/s of "
            f"{half['peak_per_s']:,.0f}/s): p50 {half['p50_ms']['median']:.1f} ms, "
            f"p99 {half['p99_ms']['median']:.1f} ms "
            f"(spread {half['p99_ms']['min']:.1f}-{half['p99_ms']['max']:.1f})"
        )
        failed = [r["errors"] for r in half["rounds"] if r.get("errors")]
        if failed:
            print(f"  answers other than 200 (not timed): {failed}")
