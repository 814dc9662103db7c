"""The retry policy, as tenacity arguments shared by ``Retrying`` (sync) and ``AsyncRetrying`` (async)."""

from __future__ import annotations

import logging
import random
from typing import Any

from tenacity import (
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

from airflow_provider_debitura.exceptions import DebituraRateLimitError
from airflow_provider_debitura.hooks.budget import (  # one place for the spread after a 429
    RETRY_AFTER_MAX_SPREAD,
    RETRY_AFTER_MIN_SPREAD,
    RETRY_AFTER_SPREAD,
)
from airflow_provider_debitura.hooks.budget import spread as spread_wait
from airflow_provider_debitura.hooks.endpoints import ApiCall, is_retryable
from airflow_provider_debitura.hooks.settings import ConnectionSettings

__all__ = [
    "RETRY_AFTER_MAX_SPREAD",
    "RETRY_AFTER_MIN_SPREAD",
    "RETRY_AFTER_SPREAD",
    "retry_kwargs",
    "wait_retry_after",
    "wait_retry_after_or_backoff",
]

log = logging.getLogger(__name__)

BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0


class wait_retry_after(wait_base):
    """The server's ``retryAfter`` (never less) plus jitter proportional to it (see :data:`RETRY_AFTER_SPREAD`);
    0 when the last error carries no ``retryAfter``.

    :param spread: the jitter's upper bound as a fraction of ``retryAfter``.
    :param rng: the random source (a seeded ``random.Random`` makes the waits reproducible).
    """

    def __init__(self, spread: float = RETRY_AFTER_SPREAD, rng: random.Random | None = None) -> None:
        self.spread = spread
        self._rng = rng if rng is not None else random.Random()

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if not isinstance(exc, DebituraRateLimitError) or exc.retry_after is None:
            return 0.0
        return spread_wait(exc.retry_after, self._rng, self.spread)


class wait_retry_after_or_backoff:
    """Honour the server's ``retryAfter`` on a 429 (spread by :class:`wait_retry_after`); otherwise capped
    exponential backoff with jitter.

    :param initial: the first backoff, in seconds.
    :param maximum: the longest backoff, in seconds.
    :param rng: the random source of the ``retryAfter`` jitter (default: a fresh ``random.Random``).
    """

    def __init__(
        self, initial: float = BACKOFF_INITIAL, maximum: float = BACKOFF_MAX, rng: random.Random | None = None
    ) -> None:
        self._backoff = wait_exponential(multiplier=initial, max=maximum) + wait_random(0, initial)
        self._retry_after = wait_retry_after(rng=rng)

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, DebituraRateLimitError) and exc.retry_after is not None:
            return self._retry_after(retry_state)
        return self._backoff(retry_state)


def _log_retry(retry_state: RetryCallState) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    sleep = retry_state.next_action.sleep if retry_state.next_action else 0
    log.warning("%s; retrying in %.1f s (attempt %d)", exc, sleep, retry_state.attempt_number + 1)


def retry_kwargs(call: ApiCall[Any], settings: ConnectionSettings) -> dict[str, Any]:
    """Stop after ``max_attempts`` or before a wait would pass ``retry_deadline``; re-raise the last error.

    :param call: the call (its idempotency decides what is retried).
    :param settings: the connection settings (attempts and deadline).
    """
    return {
        "retry": retry_if_exception(is_retryable(call)),
        "stop": stop_after_attempt(settings.max_attempts) | stop_before_delay(settings.retry_deadline),
        "wait": wait_retry_after_or_backoff(),
        "before_sleep": _log_retry,
        "reraise": True,
    }
