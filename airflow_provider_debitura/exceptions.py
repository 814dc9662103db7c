"""Errors raised by the Debitura provider.

Every message names what was called (method and path), the HTTP status and what the
API itself said, and never the API key. Callers choose behaviour by class: auth and
not-found errors are final, rate-limit, server and transport errors are transient, and
:class:`DebituraAmbiguousWriteError` means "a write may or may not have happened: look
before you try again".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_debitura.models import ApiError

__all__ = [
    "DebituraAmbiguousWriteError",
    "DebituraApiError",
    "DebituraAuthError",
    "DebituraConfigError",
    "DebituraError",
    "DebituraMalformedResponseError",
    "DebituraNotFoundError",
    "DebituraRateLimitError",
    "DebituraReplyCasesFailedError",
    "DebituraRequestError",
    "DebituraServerError",
    "DebituraTransportError",
    "DebituraValidationError",
    "ReplyTemplateError",
]


class DebituraError(AirflowException):
    """Base class of every error this provider raises."""

    transient: bool = False
    """True when the same request may succeed if tried again later."""


class DebituraConfigError(DebituraError, ValueError):
    """A parameter or connection setting is wrong; raised before any request is made."""


class ReplyTemplateError(DebituraConfigError):
    """A reply template does not compile, does not render, or renders an unusable message."""


class DebituraReplyCasesFailedError(DebituraError):
    """Some cases could not be answered (each for a reason of its own); every other case was.

    Raised at the end of a reply run so that the Airflow task fails (alerts, retries) while every
    answerable case got its reply. A retry reads each history first and never posts twice.

    :param failed: the report's ``failed`` entries.
    :param replied_cases: how many cases were answered in this run.
    """

    def __init__(self, failed: Sequence[dict[str, Any]], replied_cases: int) -> None:
        # Imported here: replies/ imports this module, so a module-level import would be circular.
        from airflow_provider_debitura.replies.report import case_label

        names = "; ".join(f"{case_label(f['case_id'], f['creditor_reference'])}: {f['reason']}" for f in failed[:20])
        more = f"; and {len(failed) - 20} more" if len(failed) > 20 else ""
        super().__init__(
            f"{len(failed)} case(s) could not be answered and need a human: {names}{more}. Every other case was "
            f"handled ({replied_cases} answered in this run). A retry re-reads each case's chat history first, so "
            "it never posts twice."
        )
        self.failed = list(failed)
        self.replied_cases = replied_cases


class DebituraBudgetError(DebituraError):
    """The connection's request budget (``budget_*`` extras, docs/request-budget.md) cannot fit the request, or
    the run, within ``budget_max_wait``: the message names the window, the numbers and the extra to change."""


class DebituraRequestError(DebituraError):
    """A request went wrong; the error names the ``method``, the ``path`` and the HTTP ``status``.

    :param message: what went wrong and what to do.
    :param method: the HTTP method of the call.
    :param path: the path of the call.
    :param status: the HTTP status, or None when there was no answer (transport failure).
    """

    def __init__(self, message: str, *, method: str, path: str, status: int | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status


class DebituraApiError(DebituraRequestError):
    """The API answered with an error status.

    :param message: what went wrong and what to do.
    :param method: the HTTP method of the call.
    :param path: the path of the call.
    :param status: the HTTP status.
    :param api_error: the parsed error body, if it was one.
    """

    status: int

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status: int,
        api_error: ApiError | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path, status=status)
        self.api_error = api_error


class DebituraAuthError(DebituraApiError):
    """401/403: the key is missing, wrong, expired or lacks permission. Retrying will not help."""


class DebituraNotFoundError(DebituraApiError):
    """404: the case (or other resource) does not exist or belongs to another account."""


class DebituraValidationError(DebituraApiError):
    """400/422: the request itself is wrong."""


class DebituraRateLimitError(DebituraApiError):
    """429: the key's request budget (2,000/min, 20,000/h, 100,000/day) is spent.

    :param message: what went wrong.
    :param retry_after: seconds the server asked to wait, if it said.
    :param method: the HTTP method of the call.
    :param path: the path of the call.
    :param status: the HTTP status (429).
    :param api_error: the parsed error body, if it was one.
    """

    transient = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        method: str,
        path: str,
        status: int,
        api_error: ApiError | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path, status=status, api_error=api_error)
        self.retry_after = retry_after


class DebituraServerError(DebituraApiError):
    """5xx: Debitura (or a proxy in front of it) failed."""

    transient = True


class DebituraTransportError(DebituraRequestError):
    """No usable HTTP answer: connect error, timeout, dropped connection."""

    transient = True


class DebituraMalformedResponseError(DebituraRequestError):
    """A success status with a body that is not the JSON the API documents (e.g. a proxy's HTML page)."""

    transient = True


class DebituraAmbiguousWriteError(DebituraRequestError):
    """A write (chat post) failed in a way that leaves unknown whether the server applied it.

    The chat endpoint takes no Idempotency-Key, so blindly retrying could post a message twice.
    Read the case's chat history to find out, then decide.

    :param message: what went wrong.
    :param method: the HTTP method of the call.
    :param path: the path of the call.
    :param cause: the transport error, if that was the failure.
    :param status: the HTTP status, if there was an answer.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        cause: BaseException | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path, status=status)
        self.cause = cause


# ------------------------------------------------------------------------------- human handoff (HITL)

__all__ += [
    "DebituraHandoffCaseGoneError",
    "DebituraHandoffOutOfDateError",
    "DebituraHandoffStillOpenError",
    "DebituraHandoffUnverifiedError",
]


class DebituraHandoffStillOpenError(DebituraError):
    """A person answered "Done" but Debitura still shows a handed-over task open (``on_still_open="fail"``, or the
    timeout's default "Done"). A retry asks again only if the request's text still holds."""


class DebituraHandoffCaseGoneError(DebituraError, AirflowFailException):
    """A case of the handed-over tasks no longer exists (404): its tasks were not solved, they are gone. Not
    retried (the case does not come back), like the case gate's missing case."""


class DebituraHandoffUnverifiedError(DebituraError):
    """A person answered, but Debitura could not be read to check the answer before the handoff's deadline."""


class DebituraHandoffOutOfDateError(DebituraError, AirflowFailException):
    """A later try (a retry, a cleared task) would re-open the request an earlier try wrote, whose text no longer
    matches Debitura (Airflow keeps a task instance's first request text on every try): not asked with it."""
