"""Wire-format rendering (camelCase DTOs as in the official spec) and error bodies."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

from airflow_provider_debitura.sandbox.records import CHAT_ROLE_LABELS, Chat, Task


class ApiError(Exception):
    """An API error, rendered as ApiErrorResponseDto, or ProblemDetails where the spec says so.

    :param status: the HTTP status.
    :param error: the error code (ApiErrorResponseDto ``error``) or the ProblemDetails title.
    :param message: the human-readable message (``detail`` for ProblemDetails).
    :param problem: render as ProblemDetails.
    """

    def __init__(self, status: int, error: str, message: str, *, problem: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.problem = problem

    def body(self) -> dict[str, Any] | None:
        """The JSON body of this error."""
        if self.problem:
            return problem_body(self.status, self.error, self.message)
        return api_error_body(self.error, self.message)


def api_error_body(error: str, message: str, solution_url: str | None = None) -> dict[str, Any]:
    """ApiErrorResponseDto: legacy ``error``/``message`` plus the canonical ``businessErrors[]``.

    :param error: the error code.
    :param message: the message.
    :param solution_url: where a human can fix it, if anywhere.
    """
    # Dual-write, as the real API does: legacy error/message plus the canonical businessErrors[].
    return {
        "error": error,
        "message": message,
        "businessErrors": [{"type": error, "message": message, "solutionUrl": solution_url}],
    }


_PROBLEM_TYPES = {
    400: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
    401: "https://tools.ietf.org/html/rfc9110#section-15.5.2",
    404: "https://tools.ietf.org/html/rfc9110#section-15.5.5",
    413: "https://tools.ietf.org/html/rfc9110#section-15.5.14",
    415: "https://tools.ietf.org/html/rfc9110#section-15.5.16",
    500: "https://tools.ietf.org/html/rfc9110#section-15.6.1",
}


def problem_body(status: int, title: str, detail: str | None = None) -> dict[str, Any]:
    """RFC 7807 ProblemDetails.

    :param status: the HTTP status.
    :param title: the title.
    :param detail: the detail, if any.
    """
    body: dict[str, Any] = {"type": _PROBLEM_TYPES.get(status), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return body


def fmt_ts(value: datetime | None, naive: bool = False) -> str | None:
    """UTC ISO-8601 with ``Z``; zone-less when the scenario mimics the API's naive timestamps.

    :param value: the time, or None.
    :param naive: leave the zone out.
    """
    if value is None:
        return None
    value = value.astimezone(timezone.utc).replace(tzinfo=None)
    text = value.isoformat(timespec="microseconds")
    return text if naive else text + "Z"


def task_dto(task: Task, naive: bool = False) -> dict[str, Any]:
    """The TaskDto JSON of a task; a scenario's ``wire`` / ``wireOmit`` apply last, verbatim.

    :param task: the task.
    :param naive: emit zone-less timestamps.
    """
    dto = {
        "id": task.id,
        "type": task.type,
        "typeLabel": task.type_label,
        "title": task.title,
        "description": task.description,
        "status": task.status,
        "caseId": task.case_id,
        "caseReference": task.case_reference,
        "leadId": task.lead_id,
        "deadline": fmt_ts(task.deadline, naive),
        "dateCreated": fmt_ts(task.date_created, naive),
        "dateSolved": fmt_ts(task.date_solved, naive),
        "solutionUrl": task.solution_url,
        "action": dict(task.action) if task.action is not None else None,
    }
    if task.wire:
        dto.update(copy.deepcopy(task.wire))
    for key in task.wire_omit:
        dto.pop(key, None)
    return dto


def chat_dto(chat: Chat, naive: bool = False) -> dict[str, Any]:
    """The ChatDto JSON of a chat message.

    :param chat: the message.
    :param naive: emit zone-less timestamps.
    """
    return {
        "id": chat.id,
        "dateCreated": fmt_ts(chat.date_created, naive),
        "dateUpdated": None,
        "role": chat.role,
        "roleLabel": CHAT_ROLE_LABELS.get(chat.role),
        "message": chat.message,
        "isSeen": chat.is_seen,
        "user": dict(chat.user),
    }


def page_data(total: int, page: int, page_size: int, count: int) -> dict[str, int]:
    """PageData: the paging envelope of every list.

    :param total: results over all pages.
    :param page: the 1-based page.
    :param page_size: the page size asked for.
    :param count: results on this page.
    """
    total_pages = (total + page_size - 1) // page_size if page_size else 0
    return {
        "totalResults": total,
        "pageSize": page_size,
        "currentPage": page,
        "responseCount": count,
        "totalPages": total_pages,
    }
