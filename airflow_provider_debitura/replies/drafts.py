"""A case's reply between rendering and posting: plain data that survives XCom, params and a human edit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from airflow_provider_debitura.models import ChatMessage, Task
from airflow_provider_debitura.replies.report import case_label
from airflow_provider_debitura.replies.rules import creditor_message_since

__all__ = ["CaseDraft", "DraftTask"]


@dataclass(frozen=True)
class DraftTask:
    """One open chat task a draft answers.

    :param id: the task id.
    :param type: the task type.
    :param date_created: when Debitura raised it (a creditor message at or after it answers it).
    """

    id: str
    type: str | None
    date_created: datetime

    @classmethod
    def of(cls, task: Task) -> DraftTask:
        """The draft view of a listed task.

        :param task: the task.
        """
        return cls(task.id, task.type, task.date_created)

    def answered_by(self, chats: Iterable[ChatMessage]) -> ChatMessage | None:
        """The creditor message in ``chats`` that answers this task (see :func:`~.rules.answered_by`).

        :param chats: the case's chat history.
        """
        return creditor_message_since(self.date_created, chats)


@dataclass(frozen=True)
class CaseDraft:
    """The one message a case will receive, with what the post must re-check first.

    JSON round trip: :meth:`to_dict` / :meth:`from_dict` (ISO timestamps), so a draft can wait in XCom
    or in a Required Action while a person reads and edits ``message`` (:meth:`with_message`).

    :param case_id: the case GUID (the chat the message goes to).
    :param creditor_reference: your reference of the case, for logs and reports.
    :param tasks: the open chat tasks the message answers.
    :param message: the text to post.
    :param seen_chat_ids: the chat messages that were in the history when the draft was made.
    """

    case_id: str
    creditor_reference: str | None
    tasks: tuple[DraftTask, ...]
    message: str
    seen_chat_ids: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``INV-1002 (1d8d5c67-…)``: how logs name the case."""
        return case_label(self.case_id, self.creditor_reference)

    @property
    def task_ids(self) -> list[str]:
        """The ids of the tasks this draft answers."""
        return [t.id for t in self.tasks]

    @property
    def not_before(self) -> datetime:
        """The oldest task's creation: no message older than this can be ours."""
        return min(t.date_created for t in self.tasks)

    def with_message(self, message: str) -> CaseDraft:
        """The same draft with another (e.g. edited) text; the post checks it like a rendered one.

        :param message: the new text.
        """
        return replace(self, message=message)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for XCom, params, a Required Action's body)."""
        return {
            "case_id": self.case_id,
            "creditor_reference": self.creditor_reference,
            "tasks": [{"id": t.id, "type": t.type, "dateCreated": t.date_created.isoformat()} for t in self.tasks],
            "message": self.message,
            "seen_chat_ids": list(self.seen_chat_ids),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseDraft:
        """Rebuild a draft from :meth:`to_dict`'s output.

        :param data: the dict (e.g. pulled from XCom).
        """
        tasks = tuple(
            DraftTask(str(t["id"]), t.get("type"), _utc(datetime.fromisoformat(str(t["dateCreated"]))))
            for t in data["tasks"]
        )
        if not tasks:
            raise ValueError(f"draft for case {data.get('case_id')!r} answers no task")
        return cls(
            case_id=str(data["case_id"]),
            creditor_reference=data.get("creditor_reference"),
            tasks=tasks,
            message=str(data["message"]),
            seen_chat_ids=tuple(str(i) for i in data.get("seen_chat_ids", ())),
        )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
