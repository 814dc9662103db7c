"""What a reply run did, case by case: the XCom report and the log lines that name each case."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_provider_debitura.models import Task

__all__ = ["ReplyReport", "TaskLog", "case_label"]


class TaskLog(Protocol):
    """What the reply phases log through: a stdlib logger, an adapter, or Airflow's task logger."""

    def info(self, msg: str, /, *args: Any) -> Any:
        """Log at INFO.

        :param msg: the %-format string.
        :param args: its arguments.
        """

    def warning(self, msg: str, /, *args: Any) -> Any:
        """Log at WARNING.

        :param msg: the %-format string.
        :param args: its arguments.
        """


def case_label(case_id: str, creditor_reference: str | None) -> str:
    """How logs and errors name a case: ``INV-1002 (1d8d5c67-…)``, or the GUID alone when no reference is known.

    :param case_id: the case GUID.
    :param creditor_reference: your own reference of the case, if known.
    """
    return f"{creditor_reference} ({case_id})" if creditor_reference else case_id


@dataclass
class ReplyReport:
    """The outcome of a reply run, entry by entry, JSON-serialisable through :meth:`as_xcom`.

    :param dry_run: True when nothing was (or will be) posted.
    """

    dry_run: bool = False
    replied: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    needs_human: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    rendered: list[dict[str, Any]] = field(default_factory=list)
    capped: dict[str, int] | None = None

    def skip(self, task_id: str, case_id: str | None, reason: str, creditor_reference: str | None = None) -> None:
        """Record a task that is not answered, and why.

        :param task_id: the task.
        :param case_id: its case (None for a caseless task).
        :param reason: why it is skipped, in words.
        :param creditor_reference: your reference of the case, if known.
        """
        self.skipped.append(
            {"task_id": task_id, "case_id": case_id, "creditor_reference": creditor_reference, "reason": reason}
        )

    def human(self, task: Task, reason: str) -> None:
        """Record a task a person must resolve in Debitura (its action cannot be followed).

        :param task: the task.
        :param reason: why no API call resolves it.
        """
        self.needs_human.append(
            {
                "task_id": task.id,
                "type": task.type,
                "case_id": task.case_id,
                "solution_url": task.solution_url,
                "reason": reason,
            }
        )

    def fail(
        self, case_id: str, creditor_reference: str | None, task_ids: Sequence[str], reason: str, status: int | None
    ) -> None:
        """Record a case that could not be answered because of a definite error of its own (e.g. HTTP 404).

        :param case_id: the case GUID.
        :param creditor_reference: your reference of the case, if known.
        :param task_ids: the case's chat tasks that stay unanswered.
        :param reason: what went wrong and what it means.
        :param status: the HTTP status, if any.
        """
        self.failed.append(
            {
                "case_id": case_id,
                "creditor_reference": creditor_reference,
                "task_ids": list(task_ids),
                "status": status,
                "reason": reason,
            }
        )

    def reply(self, case_id: str, creditor_reference: str | None, task_ids: Sequence[str], message_id: str) -> None:
        """Record one posted (or found-after-an-ambiguous-post) message and the tasks it answers.

        :param case_id: the case GUID.
        :param creditor_reference: your reference of the case, if known.
        :param task_ids: the tasks the message answers.
        :param message_id: the chat message's id.
        """
        for task_id in task_ids:
            self.replied.append(
                {
                    "task_id": task_id,
                    "case_id": case_id,
                    "creditor_reference": creditor_reference,
                    "chat_message_id": message_id,
                }
            )

    def cap(self, max_replies: int, cases: int, tasks: int) -> None:
        """Record that ``cases`` further cases (``tasks`` tasks) were left for the next run, unread.

        :param max_replies: the cap that was reached.
        :param cases: cases not examined.
        :param tasks: their chat tasks.
        """
        self.capped = {"max_replies": max_replies, "cases": cases, "tasks": tasks}

    @property
    def first_solution_url(self) -> str | None:
        """The URL the "Resolve in Debitura" link opens: the first task that needs a human."""
        return next((h["solution_url"] for h in self.needs_human if h["solution_url"]), None)

    def as_xcom(self) -> dict[str, Any]:
        """The report as plain JSON data (the operator's return value)."""
        out: dict[str, Any] = {
            "replied": self.replied,
            "skipped": self.skipped,
            "needs_human": self.needs_human,
            "failed": self.failed,
            "capped": self.capped,
            "dry_run": self.dry_run,
        }
        if self.dry_run:
            out["rendered"] = self.rendered
        return out

    def log_summary(self, log: TaskLog) -> None:
        """Log one line per skipped task and per failed case, then the totals.

        :param log: the task logger.
        """
        for entry in self.skipped:
            where = case_label(entry["case_id"], entry["creditor_reference"]) if entry["case_id"] else "no case"
            log.info("Skipped task %s on case %s: %s", entry["task_id"], where, entry["reason"])
        for entry in self.failed:
            log.warning(
                "Could not answer case %s: %s",
                case_label(entry["case_id"], entry["creditor_reference"]),
                entry["reason"],
            )
        if self.needs_human:
            log.info(
                "Needs a human in Debitura: %s",
                ", ".join(f"{h['task_id']} ({h['type']})" for h in self.needs_human),
            )
        if self.capped:
            more = "at least " if "pages" in self.capped else ""  # listing pages left unread: more may wait
            log.info(
                "max_replies=%d reached: %s%d more case(s) with %s%d chat task(s) left for the next run (not read).",
                self.capped["max_replies"],
                more,
                self.capped["cases"],
                more,
                self.capped["tasks"],
            )
        log.info(
            "Replied to %d task(s), skipped %d, %d need a human, %d case(s) failed.",
            len(self.replied),
            len(self.skipped),
            len(self.needs_human),
            len(self.failed),
        )
