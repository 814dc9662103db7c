"""Which errors belong to one case (skip it, answer the others) and which stop the whole run."""

from __future__ import annotations

from airflow_provider_debitura.exceptions import (
    DebituraApiError,
    DebituraError,
    DebituraNotFoundError,
    DebituraReplyCasesFailedError,  # defined in exceptions.py; re-exported here for older imports
    DebituraValidationError,
)

__all__ = ["SENDER_ERROR_CODES", "DebituraReplyCasesFailedError", "case_failure"]

SENDER_ERROR_CODES = frozenset({"InvalidUser", "MissingUserIdentifier"})
"""API error codes that blame the sender (``user_email``), not the case: they would fail every case alike."""


def case_failure(exc: BaseException) -> str | None:
    """The reason to skip one case when ``exc`` is a definite error of that case alone, else None.

    Definite per-case errors: 404 (the case was merged or deleted while the queue still lists its
    task) and 400/422 on that case's request (Debitura refused it), except the sender errors, which
    would fail every case. Auth, rate-limit, server and transport errors, malformed answers and
    ambiguous posts are not per-case: they stop the run (the task's retry decides later).

    :param exc: the error raised by a request for one case.
    """
    if isinstance(exc, DebituraNotFoundError):
        return (
            f"case not found (HTTP 404 on {exc.method} {exc.path}): merged or deleted while the queue still "
            f"lists its task{_api_says(exc)}"
        )
    if isinstance(exc, DebituraValidationError) and _error_code(exc) not in SENDER_ERROR_CODES:
        return f"Debitura refused the request (HTTP {exc.status} on {exc.method} {exc.path}){_api_says(exc)}"
    return None


def _error_code(exc: DebituraApiError) -> str | None:
    return exc.api_error.error if exc.api_error is not None else None


def _api_says(exc: DebituraApiError) -> str:
    summary = exc.api_error.summary() if exc.api_error is not None else ""
    return f"; the API said: {summary}" if summary else ""


def is_definite(exc: BaseException) -> bool:
    """True when ``exc`` is a definite per-case error (see :func:`case_failure`).

    :param exc: the error.
    """
    return isinstance(exc, DebituraError) and case_failure(exc) is not None
