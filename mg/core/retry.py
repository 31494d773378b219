"""Retry policies (``retries.timers`` / ``retries.notifications``): when the next attempt of a
step that failed transiently is due, or that there is none left."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed-transiently timer or notification step is retried.

    ``exponential``: ``timeout * factor ** (attempt - 1)``, capped by ``max_timeout``;
    ``linear``: ``timeout * attempt``, capped; ``intervals``: the listed delays in turn.
    ``jitter`` (0..1) spreads each delay by up to that fraction either way.
    """

    type: str = "exponential"
    max_retries: int | None = 10
    factor: float = 2.0
    timeout: float = 1.0
    max_timeout: float = 1800.0
    intervals: tuple[float, ...] = ()
    jitter: float = 0.0


def next_delay(
    policy: RetryPolicy, failures: int, rng: Callable[[], float] = random.random
) -> float | None:
    """Seconds until the next attempt after ``failures`` failed attempts (1 after the first),
    or None when the policy is exhausted."""
    if failures < 1:
        raise ValueError("failures counts from 1")
    if policy.max_retries is not None and failures > policy.max_retries:
        return None
    if policy.type == "intervals":
        if failures > len(policy.intervals):
            return None
        delay = policy.intervals[failures - 1]
    elif policy.type == "linear":
        delay = min(policy.timeout * failures, policy.max_timeout)
    else:
        # Cap the exponent first: factor ** failures overflows long before max_retries="infinity"
        # stops mattering.
        exponent = min(failures - 1, 1000)
        try:
            delay = min(policy.timeout * policy.factor**exponent, policy.max_timeout)
        except OverflowError:
            delay = policy.max_timeout
    if policy.jitter:
        delay *= 1 + policy.jitter * (2 * rng() - 1)
    return max(delay, 0.0)
