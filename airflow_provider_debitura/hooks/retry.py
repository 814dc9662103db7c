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

from airflow_provider_debitura.exceptions import DebituraRateLimitError
from airflow_provider_debitura.hooks.endpoints import ApiCall, is_retryable
from airflow_provider_debitura.hooks.settings import ConnectionSettings

log = logging.getLogger(__name__)

BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0


class wait_retry_after_or_backoff:
    """Honour the server's ``retryAfter`` on a 429; otherwise capped exponential backoff with jitter.

    :param initial: the first backoff, in seconds.
    :param maximum: the longest backoff, in seconds.
    """

    def __init__(self, initial: float = BACKOFF_INITIAL, maximum: float = BACKOFF_MAX) -> None:
        self._backoff = wait_exponential(multiplier=initial, max=maximum) + wait_random(0, initial)

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, DebituraRateLimitError) and exc.retry_after is not None:
            # A little jitter on top, so that many clients told the same retryAfter do not return at once.
            return exc.retry_after + random.uniform(0, min(1.0, 0.1 + 0.1 * exc.retry_after))
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
