"""Plan: which cases a reply run answers, from a listing and from what was read for each case.

:func:`select_cases` is pure (listing in, ordered candidates and refusals out). :func:`read_cases`
reads through any :class:`CaseReader` (the hook is one; a test double is another) and stops as soon
as ``max_replies`` cases need an answer, so a capped run reads about ``max_replies`` histories, not
the whole queue's.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from airflow_provider_debitura.models import Case, ChatMessage, RejectedRecord, Task
from airflow_provider_debitura.replies.failures import case_failure
from airflow_provider_debitura.replies.report import ReplyReport
from airflow_provider_debitura.replies.rules import action_refusal, answered_by

__all__ = [
    "CaseCandidate",
    "CaseReader",
    "CaseReading",
    "Selection",
    "examine",
    "read_cases",
    "read_one",
    "select_cases",
    "unreadable_history",
]


class CaseReader(Protocol):
    """What the plan phase reads: a case's chat history and the case itself (``DebituraHook`` fits)."""

    def get_chats(self, case_id: str) -> list[ChatMessage]:
        """The case's chat history.

        :param case_id: the case GUID.
        """

    def get_case(self, case_id: str) -> Case:
        """The case.

        :param case_id: the case GUID.
        """


@dataclass
class CaseCandidate:
    """A case with open chat tasks whose actions may be followed.

    :param case_id: the case GUID (canonical lower case).
    :param tasks: its chat tasks, oldest first.
    """

    case_id: str
    tasks: list[Task] = field(default_factory=list)

    @property
    def reference(self) -> str | None:
        """The tasks' ``caseReference`` ("your reference" in the spec), a name for logs before the case is read."""
        return next((t.case_reference for t in self.tasks if t.case_reference), None)


@dataclass
class Selection:
    """The cases a run may answer, in answer order (oldest open task first), and the refused tasks.

    :param candidates: the cases.
    :param refused: ``(task, reason)`` for each task whose action must not be followed.
    :param unreadable: task records the listing could not understand (the cases they name are not answered).
    """

    candidates: list[CaseCandidate]
    refused: list[tuple[Task, str]]
    unreadable: list[RejectedRecord] = field(default_factory=list)


@dataclass
class CaseReading:
    """What was read for one case that needs an answer.

    :param candidate: the case and its chat tasks.
    :param chats: the chat history as read.
    :param case: the case, when a template needs it (else None).
    :param pending: the tasks the history does not answer yet.
    """

    candidate: CaseCandidate
    chats: list[ChatMessage]
    case: Case | None
    pending: list[Task]

    @property
    def creditor_reference(self) -> str | None:
        """Your reference of the case: from the case when read, else the tasks' ``caseReference``."""
        if self.case is not None and self.case.creditor_reference:
            return self.case.creditor_reference
        return self.candidate.reference


def select_cases(tasks: Iterable[Task], types: Collection[str], rejected: Iterable[RejectedRecord] = ()) -> Selection:
    """Group the listed chat tasks of ``types`` by case, oldest first; set refused actions aside.

    A case named by a task record that could not be read is not answered (the reply would clear a
    task nobody read): it is reported as failed, so a person looks.

    :param tasks: the open tasks as listed.
    :param types: the chat-driven types this run answers (tasks of other types are ignored).
    :param rejected: the listing's unreadable records (``Records.rejected``).
    """
    by_case: dict[str, CaseCandidate] = {}
    refused: list[tuple[Task, str]] = []
    for task in sorted((t for t in tasks if t.type in types), key=lambda t: (t.date_created, t.id)):
        refusal = action_refusal(task)
        if refusal is not None:
            refused.append((task, refusal))
            continue
        case_id = (task.case_id or "").strip().lower()  # a GUID: action_refusal checked it
        by_case.setdefault(case_id, CaseCandidate(case_id)).tasks.append(task)
    unreadable = list(rejected)
    blocked = {(r.case_id or "").strip().lower() for r in unreadable if r.case_id}
    return Selection([c for c in by_case.values() if c.case_id not in blocked], refused, unreadable)


def unreadable_history(chats: Sequence[ChatMessage]) -> str | None:
    """Why a case must not be answered from this history (some messages could not be read), or None.

    An unreadable message may be an earlier reply: answering without it risks a second message.

    :param chats: the history as read (``Records`` from the hook carry ``rejected``).
    """
    rejected: Sequence[RejectedRecord] = getattr(chats, "rejected", ())
    if not rejected:
        return None
    return (
        f"{len(rejected)} message(s) of the case's chat history could not be read ({rejected[0].reason}); not "
        "answering it, since one of them may be an earlier reply"
    )


def examine(
    candidate: CaseCandidate, chats: Sequence[ChatMessage]
) -> tuple[list[Task], list[tuple[Task, ChatMessage]]]:
    """Split a case's tasks into those still to answer and those its history already answers.

    :param candidate: the case and its tasks.
    :param chats: its chat history.
    """
    pending: list[Task] = []
    answered: list[tuple[Task, ChatMessage]] = []
    for task in candidate.tasks:
        answer = answered_by(task, chats)
        if answer is None:
            pending.append(task)
        else:
            answered.append((task, answer))
    return pending, answered


def read_cases(
    reader: CaseReader,
    selection: Selection,
    report: ReplyReport,
    *,
    max_replies: int | None,
    read_case: bool,
    known_cases: Mapping[str, Case] | None = None,
) -> list[CaseReading]:
    """Read candidates in order until ``max_replies`` of them need an answer; report the rest.

    A definite error of one case (404: merged or deleted) is reported in ``report.failed`` and the
    next case is read; any other error stops the run.

    :param reader: reads chats and cases (the hook).
    :param selection: the candidates from :func:`select_cases`.
    :param report: where skips, refusals, failures and the cap are recorded.
    :param max_replies: stop once this many cases need an answer (None: no limit).
    :param read_case: also read each case that needs an answer (when a template uses ``case``).
    :param known_cases: cases already read, by lower-case GUID (a case scope's own case), not read again.
    """
    for task, reason in selection.refused:
        report.skip(task.id, task.case_id, reason, task.case_reference)
        report.human(task, reason)
    for record in selection.unreadable:
        reason = f"the task record could not be read ({record.reason}); its case is not answered blind"
        if record.case_id:
            report.fail(record.case_id.strip().lower(), None, [record.id or "(no id)"], reason, None)
        else:
            report.skip(record.id or "(no id)", None, reason)
    readings: list[CaseReading] = []
    for index, candidate in enumerate(selection.candidates):
        if max_replies is not None and len(readings) >= max_replies:
            rest = selection.candidates[index:]
            report.cap(max_replies, len(rest), sum(len(c.tasks) for c in rest))
            break
        known = (known_cases or {}).get(candidate.case_id)
        reading = read_one(reader, candidate, report, read_case and known is None)
        if reading is not None and known is not None:
            reading.case = known
        if reading is not None:
            readings.append(reading)
    return readings


def read_one(reader: CaseReader, candidate: CaseCandidate, report: ReplyReport, read_case: bool) -> CaseReading | None:
    """Read one case's history (and the case, when ``read_case`` and it needs an answer): its reading, or None when
    nothing is to be answered (already answered, or a failure recorded in ``report``).

    :param reader: reads chats and cases.
    :param candidate: the case and the tasks to answer.
    :param report: where skips and failures are recorded.
    :param read_case: read the case too (a template uses ``case``).
    """
    try:
        chats = reader.get_chats(candidate.case_id)
        unreadable = unreadable_history(chats)
        if unreadable is not None:
            report.fail(candidate.case_id, candidate.reference, [t.id for t in candidate.tasks], unreadable, None)
            return None
        pending, answered = examine(candidate, chats)
        case = reader.get_case(candidate.case_id) if pending and read_case else None
    except Exception as exc:
        reason = case_failure(exc)
        if reason is None:
            raise
        report.fail(candidate.case_id, candidate.reference, [t.id for t in candidate.tasks], reason, _status(exc))
        return None
    reading = CaseReading(candidate, chats, case, pending)
    for task, answer in answered:
        report.skip(
            task.id,
            candidate.case_id,
            f"already answered: creditor message {answer.id} at {answer.date_created.isoformat()} is not older "
            "than the task",
            reading.creditor_reference,
        )
    return reading if pending else None


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None
