"""Waits after a 429: never shorter than the server's ``retryAfter``, spread in proportion to it, so that clients
told the same ``retryAfter`` at once do not all come back together (issue 20, item 7).

The waits are computed, never slept: each "client" is a wait strategy with a seeded random source.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence

import pytest
from tenacity import RetryCallState, Retrying

from airflow_provider_debitura.exceptions import DebituraRateLimitError, DebituraServerError
from airflow_provider_debitura.hooks import budget, retry


def after(exc: BaseException) -> RetryCallState:
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.set_exception((type(exc), exc, None))
    return state


def rate_limited(retry_after: float | None) -> RetryCallState:
    return after(DebituraRateLimitError("429", retry_after=retry_after, method="GET", path="/tasks", status=429))


def busiest_window(waits: Sequence[float], width: float) -> int:
    """The most waits that end within any window of ``width`` seconds."""
    ordered = sorted(waits)
    return max(bisect.bisect_left(ordered, start + width) - i for i, start in enumerate(ordered))


def test_fifty_clients_told_two_seconds_come_back_spread() -> None:
    """The issue's burst: 50 clients, ``retryAfter: 2`` at once (before: 2.02-2.32 s, 23 in one 100 ms window)."""
    state = rate_limited(2.0)
    for burst in range(20):  # 20 bursts of 50 clients, each client with a random source of its own
        waits = [retry.wait_retry_after_or_backoff(rng=random.Random(burst * 50 + c))(state) for c in range(50)]
        assert min(waits) >= 2.0
        assert max(waits) <= 3.0
        assert max(waits) - min(waits) >= 0.8, waits
        assert busiest_window(waits, 0.1) <= 12, sorted(waits)


@pytest.mark.parametrize("retry_after", [0.05, 1.0, 2.0, 7.5, 42.0, 600.0])
def test_the_wait_is_never_shorter_than_told_and_spread_in_proportion(retry_after: float) -> None:
    wait = retry.wait_retry_after(rng=random.Random(20))
    state = rate_limited(retry_after)
    waits = [wait(state) for _ in range(10_000)]
    bound = min(retry.RETRY_AFTER_MAX_SPREAD, max(retry.RETRY_AFTER_MIN_SPREAD, 0.5 * retry_after))
    assert min(waits) >= retry_after
    assert max(waits) <= retry_after + bound
    assert max(waits) - min(waits) >= 0.95 * bound  # the whole range is used
    # about uniform: no tenth of the range holds much more than a tenth of the returns
    assert busiest_window(waits, bound / 10) <= 1_300


def test_the_spread_grows_with_the_wait() -> None:
    def spread(retry_after: float) -> float:
        wait = retry.wait_retry_after(rng=random.Random(7))
        waits = [wait(rate_limited(retry_after)) for _ in range(2_000)]
        return max(waits) - min(waits)

    assert spread(1.0) < spread(4.0) < spread(16.0)
    assert spread(16.0) == pytest.approx(8.0, rel=0.02)


def test_each_hook_has_its_own_random_source() -> None:
    """Two clients built at the same moment do not draw the same jitter (no shared seed)."""
    state = rate_limited(2.0)
    first = [retry.wait_retry_after_or_backoff()(state) for _ in range(20)]
    assert len(set(first)) == 20


def test_without_retry_after_it_backs_off_exponentially() -> None:
    wait = retry.wait_retry_after_or_backoff(rng=random.Random(1))
    state = after(DebituraServerError("503", method="GET", path="/tasks", status=503))
    assert retry.BACKOFF_INITIAL <= wait(state) <= 2 * retry.BACKOFF_INITIAL
    assert retry.BACKOFF_INITIAL <= wait(rate_limited(None)) <= 2 * retry.BACKOFF_INITIAL
    assert retry.wait_retry_after()(state) == 0.0


def test_the_retry_and_the_requests_a_429_held_draw_one_spread() -> None:
    """The retry of the request that met the 429 and the requests the budget held for it (hooks/budget.py) come
    back over the same range: one function draws both, so a held request is never earlier or more bunched."""
    state = rate_limited(4.0)
    retried = [retry.wait_retry_after(rng=random.Random(seed))(state) for seed in range(200)]
    held = [budget.spread(4.0, random.Random(seed)) for seed in range(200)]
    assert retried == held
    assert min(held) >= 4.0 and max(held) <= 6.0 and max(held) - min(held) >= 1.8
