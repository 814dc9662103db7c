"""The Customer API's operations as plain data, and the one place that turns a response into a result.

Each builder returns an :class:`ApiCall`: the request to send and how to parse the answer. The sync
and the async hook both send ``ApiCall``s and hand the ``httpx.Response`` (or the transport error)
to :func:`parse_response` / :func:`transport_error`, so request building, error classification and
parsing live here once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from airflow_provider_debitura.exceptions import (
    DebituraAmbiguousWriteError,
    DebituraApiError,
    DebituraAuthError,
    DebituraConfigError,
    DebituraError,
    DebituraMalformedResponseError,
    DebituraNotFoundError,
    DebituraRateLimitError,
    DebituraServerError,
    DebituraTransportError,
    DebituraValidationError,
)
from airflow_provider_debitura.hooks.settings import is_transient_conn_id
from airflow_provider_debitura.models import (
    ApiError,
    Case,
    CasePage,
    ChatMessage,
    Creditor,
    Records,
    Task,
    TaskPage,
    UserPage,
    parse_records,
)

T = TypeVar("T")

MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class ApiCall(Generic[T]):
    """One request and how to read its answer.

    ``idempotent`` decides the retry policy: reads are retried on transient errors, writes only
    when the request provably never reached the server.

    :param method: the HTTP method.
    :param path: the path, segments already encoded.
    :param parse: turns the decoded JSON body into the result.
    :param params: query parameters, in order (repeated keys allowed).
    :param json_body: the JSON body of a write.
    :param idempotent: whether the call may be retried freely.
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    params: tuple[tuple[str, str], ...] = ()
    json_body: dict[str, Any] | None = field(default=None, repr=False)
    idempotent: bool = True

    @property
    def label(self) -> str:
        """``METHOD /path``, for messages."""
        return f"{self.method} {self.path}"


def _seg(value: str) -> str:
    """One encoded path segment. ``.`` and ``..`` are refused: httpx (like any URL library) removes such
    segments, so ``/cases/../chats`` would be sent as ``/chats``."""
    text = str(value)
    if text.strip() in ("", ".", ".."):
        raise DebituraConfigError(f"{text!r} cannot be used as a path segment (a case id, reference or task id).")
    return quote(text, safe="")


def _filters(status: str | None, types: Sequence[str] | None) -> tuple[tuple[str, str], ...]:
    params: list[tuple[str, str]] = []
    if status:
        params.append(("status", str(status)))
    params.extend(("type", str(t)) for t in (types or ()))
    return tuple(params)


def _page_size(page_size: int) -> str:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size={page_size} must be between 1 and {MAX_PAGE_SIZE}")
    return str(page_size)


def _case_tasks(body: object) -> Records[Task]:
    return parse_records(Task, body, "task")


def _chat_history(body: object) -> Records[ChatMessage]:
    return parse_records(ChatMessage, body, "chat message")


def get_me() -> ApiCall[Creditor]:
    """``GET /me``: the account of the API key."""
    return ApiCall("GET", "/me", Creditor.model_validate)


def get_tasks_page(
    *, status: str | None = "Open", types: Sequence[str] | None = None, page: int = 1, page_size: int = 100
) -> ApiCall[TaskPage]:
    """``GET /tasks``: one page of the account queue (unreadable records in ``TaskPage.rejected``).

    :param status: the ``status`` filter.
    :param types: the ``type`` filter (repeated query key).
    :param page: 1-based page number.
    :param page_size: tasks per page, 1 to 100.
    """
    params = (*_filters(status, types), ("Page", str(page)), ("PageSize", _page_size(page_size)))
    return ApiCall("GET", "/tasks", TaskPage.from_api, params=params)


def get_case_tasks(
    case_id: str, *, status: str | None = "Open", types: Sequence[str] | None = None
) -> ApiCall[Records[Task]]:
    """``GET /cases/{id}/tasks``: a case's tasks (a bare array; unreadable records in ``.rejected``).

    :param case_id: the case GUID.
    :param status: the ``status`` filter.
    :param types: the ``type`` filter.
    """
    return ApiCall("GET", f"/cases/{_seg(case_id)}/tasks", _case_tasks, params=_filters(status, types))


def get_case(case_id: str) -> ApiCall[Case]:
    """``GET /cases/{id}``.

    :param case_id: the case GUID.
    """
    return ApiCall("GET", f"/cases/{_seg(case_id)}", Case.model_validate)


def get_case_by_creditor_reference(creditor_reference: str) -> ApiCall[Case]:
    """``GET /cases/by-creditor-reference/{ref}``, the reference encoded as one path segment (``/`` is ``%2F``).

    :param creditor_reference: the creditor's own reference.
    """
    return ApiCall("GET", f"/cases/by-creditor-reference/{_seg(creditor_reference)}", Case.model_validate)


def get_case_by_reference(case_reference: str) -> ApiCall[Case]:
    """``GET /cases/case-reference/{ref}``.

    :param case_reference: Debitura's 8-character reference.
    """
    return ApiCall("GET", f"/cases/case-reference/{_seg(case_reference)}", Case.model_validate)


def get_cases_page(*, page: int = 1, page_size: int = 100, sort: str = "DateCreated:desc") -> ApiCall[CasePage]:
    """``GET /cases``: one page of the account's cases (unreadable records in ``CasePage.rejected``).

    :param page: 1-based page number.
    :param page_size: cases per page, 1 to 100.
    :param sort: the ``Sort`` parameter, e.g. ``DateCreated:desc``.
    """
    params = (("Page", str(page)), ("PageSize", _page_size(page_size)), ("Sort", sort))
    return ApiCall("GET", "/cases", CasePage.from_api, params=params)


def get_chats(case_id: str) -> ApiCall[Records[ChatMessage]]:
    """``GET /cases/{id}/chats``: the whole chat history (unreadable messages in ``.rejected``).

    :param case_id: the case GUID.
    """
    return ApiCall("GET", f"/cases/{_seg(case_id)}/chats", _chat_history)


def post_chat(case_id: str, message: str, user_email: str) -> ApiCall[ChatMessage]:
    """``POST /cases/{id}/chats``: a write, never retried once it may have reached the server.

    :param case_id: the case GUID.
    :param message: the checked message text.
    :param user_email: the sender, a member of the key's team.
    """
    return ApiCall(
        "POST",
        f"/cases/{_seg(case_id)}/chats",
        ChatMessage.model_validate,
        json_body={"message": message, "userEmail": user_email},
        idempotent=False,
    )


def get_users(*, page: int = 1, page_size: int = 100) -> ApiCall[UserPage]:
    """``GET /users``: one page of the key's team.

    :param page: 1-based page number.
    :param page_size: users per page, 1 to 100.
    """
    return ApiCall(
        "GET", "/users", UserPage.from_api, params=(("Page", str(page)), ("PageSize", _page_size(page_size)))
    )


# --- responses -------------------------------------------------------------------------------------


def _retry_after(response: httpx.Response, api_error: ApiError | None) -> float | None:
    """Seconds to wait after a 429: the body's ``retryAfter`` first (what Debitura documents), then the
    ``Retry-After`` header (seconds or an HTTP date), else None (the caller backs off)."""
    if api_error is not None and api_error.retry_after is not None and math.isfinite(api_error.retry_after):
        return max(0.0, api_error.retry_after)
    header = response.headers.get("Retry-After")
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            import time

            return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _api_error(response: httpx.Response) -> ApiError | None:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    try:
        return ApiError.model_validate(body)
    except ValidationError:
        return None


_STATUS_CLASSES: dict[int, type[DebituraApiError]] = {
    400: DebituraValidationError,
    401: DebituraAuthError,
    403: DebituraAuthError,
    404: DebituraNotFoundError,
    422: DebituraValidationError,
    429: DebituraRateLimitError,
}


def error_for_status(call: ApiCall[Any], response: httpx.Response, conn_id: str) -> DebituraError:
    """The error for a non-2xx answer: the class by status, the message with what the server said.

    :param call: the call that was answered.
    :param response: the answer.
    :param conn_id: the Airflow connection, named in auth errors.
    """
    status = response.status_code
    name = "the connection under test" if is_transient_conn_id(conn_id) else f"Airflow connection {conn_id!r}"
    api_error = _api_error(response)
    said = api_error.summary() if api_error else ""
    if not said and response.content and "json" not in response.headers.get("content-type", ""):
        said = f"non-JSON body ({response.headers.get('content-type', 'no content type')})"
    message = f"Debitura API {call.label} answered HTTP {status}" + (f": {said}" if said else "")
    if status in (401, 403):
        message += (
            f". Check the API key (password field) and the auth_type extra of {name}"
            if status == 401
            else f". The key of {name} lacks permission for this call"
        )
    if status >= 500 and not call.idempotent:
        return DebituraAmbiguousWriteError(
            message + ". The server failed while handling a write, so it may or may not have been applied",
            method=call.method,
            path=call.path,
            status=status,
        )
    if status == 429:
        return DebituraRateLimitError(
            message,
            retry_after=_retry_after(response, api_error),
            method=call.method,
            path=call.path,
            status=status,
            api_error=api_error,
        )
    cls = _STATUS_CLASSES.get(status) or (DebituraServerError if status >= 500 else DebituraApiError)
    return cls(message, method=call.method, path=call.path, status=status, api_error=api_error)


def parse_response(call: ApiCall[T], response: httpx.Response, conn_id: str) -> T:
    """Turn an HTTP answer into the call's result or the right :class:`DebituraError`.

    :param call: the call that was answered.
    :param response: the answer.
    :param conn_id: the Airflow connection, named in auth errors.
    """
    if not response.is_success:
        raise error_for_status(call, response, conn_id)
    try:
        body = response.json() if response.content else None
        return call.parse(body)
    except (ValueError, UnicodeDecodeError, ValidationError) as exc:
        content_type = response.headers.get("content-type", "no content type")
        detail = (
            exc.errors(include_url=False, include_input=False)[:3]
            if isinstance(exc, ValidationError)
            else str(exc)[:200]
        )
        message = (
            f"Debitura API {call.label} answered HTTP {response.status_code} with a body that is not the "
            f"documented JSON ({content_type}): {detail}"
        )
        if not call.idempotent:
            raise DebituraAmbiguousWriteError(
                message + ". The write was probably applied; check before posting again",
                method=call.method,
                path=call.path,
            ) from None
        raise DebituraMalformedResponseError(
            message, method=call.method, path=call.path, status=response.status_code
        ) from None


_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def transport_error(call: ApiCall[Any], exc: httpx.TransportError) -> DebituraError:
    """Classify a failure with no HTTP answer. For a write, only a failure before the request left
    (connect errors) is safe to retry; anything later is ambiguous.

    :param call: the call that failed.
    :param exc: the transport failure.
    """
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if not call.idempotent and not isinstance(exc, _NEVER_SENT):
        return DebituraAmbiguousWriteError(
            f"Debitura API {call.label} failed after the request was sent ({what}); the server may or may "
            "not have applied it",
            method=call.method,
            path=call.path,
            cause=exc,
        )
    return DebituraTransportError(f"Debitura API {call.label} failed: {what}", method=call.method, path=call.path)


def is_retryable(call: ApiCall[Any]) -> Callable[[BaseException], bool]:
    """The retry predicate for one call: transient errors for reads; for writes only errors that
    prove the request was not applied (rate limited, or never sent).

    :param call: the call the predicate is for.
    """

    def predicate(exc: BaseException) -> bool:
        if isinstance(exc, DebituraRateLimitError):
            return True
        if call.idempotent:
            return isinstance(exc, DebituraError) and exc.transient
        return isinstance(exc, DebituraTransportError)

    return predicate


def dumps_body(call: ApiCall[Any]) -> bytes | None:
    """The encoded JSON body of a write, or None.

    :param call: the call.
    """
    return None if call.json_body is None else json.dumps(call.json_body).encode()
