"""Wire-format rendering (camelCase DTOs as in the official spec) and error bodies."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

from airflow_provider_debitura.sandbox.models import CHAT_ROLE_LABELS, Chat, Task


class ApiError(Exception):
    """An API error, rendered as ApiErrorResponseDto, or ProblemDetails where the spec says so."""

    def __init__(self, status: int, error: str, message: str, *, problem: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.problem = problem

    def body(self) -> dict[str, Any] | None:
        if self.problem:
            return problem_body(self.status, self.error, self.message)
        return api_error_body(self.error, self.message)


def api_error_body(error: str, message: str, solution_url: str | None = None) -> dict[str, Any]:
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
    body: dict[str, Any] = {"type": _PROBLEM_TYPES.get(status), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return body


def fmt_ts(value: datetime | None, naive: bool = False) -> str | None:
    """UTC ISO-8601 with ``Z``; zone-less when the scenario mimics the API's naive timestamps."""
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
    total_pages = (total + page_size - 1) // page_size if page_size else 0
    return {
        "totalResults": total,
        "pageSize": page_size,
        "currentPage": page,
        "responseCount": count,
        "totalPages": total_pages,
    }
