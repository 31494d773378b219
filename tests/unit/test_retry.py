"""Retry policies: delays by attempt, caps, exhaustion, jitter."""

import pytest

from mg.core.retry import RetryPolicy, next_delay


def test_exponential_grows_by_factor_and_is_capped() -> None:
    policy = RetryPolicy(type="exponential", max_retries=10, factor=2, timeout=1, max_timeout=5)
    assert [next_delay(policy, n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_linear_grows_by_the_timeout() -> None:
    policy = RetryPolicy(type="linear", max_retries=None, timeout=0.5, max_timeout=2)
    assert [next_delay(policy, n) for n in range(1, 6)] == [0.5, 1.0, 1.5, 2, 2]


def test_intervals_are_taken_in_turn_and_then_exhausted() -> None:
    policy = RetryPolicy(type="intervals", max_retries=None, intervals=(0.1, 5, 60))
    assert [next_delay(policy, n) for n in range(1, 5)] == [0.1, 5, 60, None]


def test_max_retries_exhausts_the_policy() -> None:
    policy = RetryPolicy(max_retries=2)
    assert next_delay(policy, 2) is not None
    assert next_delay(policy, 3) is None


def test_infinite_retries_never_overflow() -> None:
    policy = RetryPolicy(max_retries=None, factor=10, timeout=1, max_timeout=60)
    assert next_delay(policy, 10_000) == 60


def test_jitter_spreads_both_ways() -> None:
    policy = RetryPolicy(timeout=10, jitter=0.5, max_timeout=100)
    assert next_delay(policy, 1, rng=lambda: 0.0) == pytest.approx(5.0)
    assert next_delay(policy, 1, rng=lambda: 1.0) == pytest.approx(15.0)


def test_failures_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        next_delay(RetryPolicy(), 0)
