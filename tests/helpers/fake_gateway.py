"""An in-memory stand-in for the hook in the reply phases' unit tests (no server, no HTTP).

It implements what :class:`~airflow_provider_debitura.replies.CaseReader` and
:class:`~airflow_provider_debitura.replies.ChatGateway` need, records every call, and can be told to
fail a call for one case with a given error. What it stores follows the sandbox's rules: a post
appends a creditor message stamped "now".
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_debitura.exceptions import DebituraNotFoundError
from airflow_provider_debitura.models import Case, ChatMessage, Task

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def make_task(n: int, case_id: str | None, *, minutes: float = 0, **fields: Any) -> Task:
    """A ReplyToChat task created ``minutes`` after T0 (API field names in ``fields`` override)."""
    body: dict[str, Any] = {
        "id": f"task-{n:04d}",
        "type": "ReplyToChat",
        "title": f"Task {n}",
        "caseId": case_id,
        "caseReference": f"REF-{case_id[:4]}" if case_id else None,
        "dateCreated": (T0 + timedelta(minutes=minutes)).isoformat(),
        "solutionUrl": f"https://app.debitura.com/t/{n}",
        "action": {"method": "POST", "path": "/cases/{caseId}/chats"},
        **fields,
    }
    return Task.model_validate(body)


def chat(cid: str, role: int, minutes: float, text: str = "hi") -> ChatMessage:
    return ChatMessage.model_validate(
        {"id": cid, "role": role, "message": text, "dateCreated": (T0 + timedelta(minutes=minutes)).isoformat()}
    )


def not_found(method: str, case_id: str, suffix: str = "/chats") -> DebituraNotFoundError:
    path = f"/cases/{case_id}{suffix}"
    return DebituraNotFoundError(f"HTTP 404 {method} {path}", method=method, path=path, status=404)


class FakeGateway:
    """Chats per case in memory; ``fail[(method, case_id)]`` entries are raised (or called) instead, once each."""

    def __init__(self, chats: dict[str, list[ChatMessage]] | None = None) -> None:
        self.chats: dict[str, list[ChatMessage]] = {k: list(v) for k, v in (chats or {}).items()}
        self.open_tasks: dict[str, list[Task]] = {}
        self.fail: dict[tuple[str, str], list[Any]] = {}  # an exception to raise, or a callable that raises
        self.calls: list[tuple[str, str]] = []
        self.posted: list[tuple[str, str, str | None]] = []
        self.on_get_chats: Any = None  # callable(case_id) run before answering (e.g. a concurrent post)
        self._ids = itertools.count(1)
        self.now = T0 + timedelta(hours=1)

    def _maybe_fail(self, method: str, case_id: str) -> None:
        self.calls.append((method, case_id))
        errors = self.fail.get((method, case_id))
        if errors:
            error = errors.pop(0)
            if isinstance(error, BaseException):
                raise error
            error()

    def get_chats(self, case_id: str) -> list[ChatMessage]:
        self._maybe_fail("GET chats", case_id)
        if self.on_get_chats is not None:
            self.on_get_chats(case_id)
        return list(self.chats.get(case_id, []))

    def get_case(self, case_id: str) -> Case:
        self._maybe_fail("GET case", case_id)
        return Case.model_validate({"id": case_id, "creditorReference": f"INV-{case_id[:4]}"})

    def get_case_tasks(
        self, case_id: str, *, status: str | None = "Open", types: Sequence[str] | None = None
    ) -> list[Task]:
        self._maybe_fail("GET tasks", case_id)
        return list(self.open_tasks.get(case_id, []))

    def post_chat(self, case_id: str, message: str, *, user_email: str | None = None) -> ChatMessage:
        self._maybe_fail("POST chats", case_id)
        return self.store(case_id, message, user_email)

    def store(self, case_id: str, message: str, user_email: str | None = None) -> ChatMessage:
        """Append a creditor message, as a successful post does."""
        self.now += timedelta(seconds=1)
        posted = ChatMessage.model_validate(
            {
                "id": f"msg-{next(self._ids)}",
                "role": 1,
                "message": message,
                "dateCreated": self.now.isoformat(),
                "user": {"email": user_email},
            }
        )
        self.chats.setdefault(case_id, []).append(posted)
        self.posted.append((case_id, message, user_email))
        return posted

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)
