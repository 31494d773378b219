"""Process-wide tuning for ``mg serve``: the garbage collector.

Measured under load (docs/performance.md): with Python's default thresholds a young collection
runs every 700 allocations, so the objects of the requests in flight at that moment survive it
and are promoted, and the old generation grows by tens of thousands of such short-lived objects
a second. Every time it has grown by a quarter, a full collection walks the whole heap (modules,
classes, the app, the state cache): about 40 ms, every second or so, during which the node
answers nothing. That was the service's p99.

So, once the node is up: what exists then (imports, the app, the pools) is frozen out of every
future collection (``gc.freeze``), and young collections run every 50,000 allocations, by
which time nearly every request object has been freed by reference counting and nothing is
promoted. Cycles are still collected, only later.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
