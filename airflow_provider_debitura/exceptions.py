"""Errors raised by the Debitura provider.

Every message names what was called (method and path), the HTTP status and what the
API itself said, and never the API key. Callers choose behaviour by class: auth and
not-found errors are final, rate-limit, server and transport errors are transient, and
:class:`DebituraAmbiguousWriteError` means "a write may or may not have happened: look
before you try again".
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_debitura.models import ApiError

__all__ = [
    "DebituraAmbiguousWriteError",
    "DebituraApiError",
    "DebituraAuthError",
    "DebituraConfigError",
    "DebituraError",
    "DebituraInconsistentListingError",
    "DebituraMalformedResponseError",
    "DebituraNotFoundError",
    "DebituraRateLimitError",
    "DebituraRequestError",
    "DebituraServerError",
    "DebituraTransportError",
    "DebituraValidationError",
]


class DebituraError(AirflowException):
    """Base class of every error this provider raises."""

    transient: bool = False
    """True when the same request may succeed if tried again later."""


class DebituraConfigError(DebituraError, ValueError):
    """A parameter or connection setting is wrong; raised before any request is made."""


class DebituraRequestError(DebituraError):
    """A request went wrong: every such error names the ``method`` and ``path`` it was for, and the HTTP
    ``status`` when there was an answer (None for transport failures)."""

    def __init__(self, message: str, *, method: str, path: str, status: int | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status


class DebituraApiError(DebituraRequestError):
    """The API answered with an error status."""

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
    """429: the key's request budget (2,000/min, 20,000/h, 100,000/day) is spent."""

    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
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


class DebituraInconsistentListingError(DebituraError):
    """The queue kept changing while it was paged through, so no consistent listing was read."""

    transient = True


class DebituraAmbiguousWriteError(DebituraRequestError):
    """A write (chat post) failed in a way that leaves unknown whether the server applied it.

    The chat endpoint takes no Idempotency-Key, so blindly retrying could post a message twice.
    Read the case's chat history to find out, then decide.
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
