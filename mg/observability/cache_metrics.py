"""Series of the node's state cache, read from it at each scrape (``mg.postgres.state_cache``)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mg.postgres.state_cache import StateCache


class StateCacheCollector(Collector):
    def __init__(self, cache: StateCache) -> None:
        self._cache = cache

    def describe(self) -> Iterable[Metric]:
        return list(self._families(fill=False))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(fill=True))

    def _families(self, *, fill: bool) -> Iterable[Metric]:
        cache = self._cache
        gauges = (
            ("mg_state_cache_bytes", "Estimated memory of the state cache", cache.bytes),
            ("mg_state_cache_max_bytes", "The state cache's budget (cache.max_bytes)",
             cache.max_bytes),
            ("mg_state_cache_machines", "Machines held in the state cache", len(cache)),
        )  # fmt: skip
        counters = (
            ("mg_state_cache_hits", "Steps whose cached machine was still current", cache.hits),
            ("mg_state_cache_misses", "Steps that read the machine from Postgres", cache.misses),
            ("mg_state_cache_evictions", "Machines evicted to stay within the budget",
             cache.evictions),
        )  # fmt: skip
        for name, text, value in gauges:
            gauge = GaugeMetricFamily(name, text)
            if fill:
                gauge.add_metric([], value)
            yield gauge
        for name, text, value in counters:
            counter = CounterMetricFamily(name, text)
            if fill:
                counter.add_metric([], value)
            yield counter
