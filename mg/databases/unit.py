"""One database of a node and everything that runs on it."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from mg.loops.claims import ClaimLoop
from mg.observability.health import Health
from mg.observability.sampler import Sampler
from mg.placement import Placement
from mg.postgres.bridge.interface import Bridge
from mg.postgres.pruner import Pruner
from mg.postgres.sequencer import Sequencer
from mg.postgres.sinks import PostgresSinks
from mg.postgres.storage import PostgresStorage
from mg.postgres.wakeups import Wakeups
from mg.service.ports import NotificationClaim, Nudges, TimerClaim


@dataclass
class Database:
    """A database's storage and loops. ``ready`` is set once it answered, was migrated and its
    loops run; until then its namespaces and sinks answer ``503 unavailable``. An outage later
    is its alone: its loops back off, its requests fail, the other databases never wait on it."""

    placement: Placement
    bridge: Bridge
    storage: PostgresStorage
    wakeups: Wakeups
    nudges: Nudges
    sinks: PostgresSinks
    health: Health
    ready: trio.Event = field(default_factory=trio.Event)
    # Made once the service exists (``mg.wiring.assemble``).
    timer_loop: ClaimLoop[TimerClaim] | None = None
    notification_loop: ClaimLoop[NotificationClaim] | None = None
    sequencers: tuple[Sequencer, ...] = ()
    pruners: tuple[Pruner, ...] = ()
    sampler: Sampler | None = None

    @property
    def name(self) -> str:
        return self.placement.name


def pool_size(settings_pool: int, step_slots: int, loop_concurrency: int) -> int:
    """A database's pool: what its namespaces' steps and its loops can hold at once (plus the
    sequencers, the sampler and the wake-up sender), never above ``database.pool_size``."""
    return max(2, min(settings_pool, step_slots + loop_concurrency + 4))
