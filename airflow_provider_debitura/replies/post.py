"""Post: send each case's draft exactly once, through any :class:`ChatGateway` (the hook is one).

Right before posting to a case, its chat history is read again, so a message another run (or a
person) sent since the draft was made is seen, and the case is skipped. That leaves a race window of
one request per case instead of the whole read phase. When the message that answered it came from our
own sender, another run of this integration is answering the same cases ahead of this one: this run
then leaves the rest to it (and to the next run) instead of racing it case by case. Reasoning and the
measured before/after table: docs/operators.md, docs/reliability.md.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Protocol

from airflow_provider_debitura.exceptions import DebituraAmbiguousWriteError
from airflow_provider_debitura.models import ChatMessage, Task
from airflow_provider_debitura.replies.drafts import CaseDraft, DraftTask
from airflow_provider_debitura.replies.failures import case_failure
from airflow_provider_debitura.replies.plan import unreadable_history
from airflow_provider_debitura.replies.report import ReplyReport, TaskLog
from airflow_provider_debitura.replies.rules import find_own_message
from airflow_provider_debitura.replies.templates import validate_reply

__all__ = ["ChatGateway", "post_drafts", "validate_drafts"]

_log = logging.getLogger(__name__)


class ChatGateway(Protocol):
    """What the post phase calls (``DebituraHook`` fits)."""

    def get_chats(self, case_id: str) -> list[ChatMessage]:
        """The case's chat history.

        :param case_id: the case GUID.
        """

    def post_chat(self, case_id: str, message: str, *, user_email: str | None = None) -> ChatMessage:
        """Post one message; raises ``DebituraAmbiguousWriteError`` when it may or may not have arrived.

        :param case_id: the case GUID.
        :param message: the text.
        :param user_email: the sender.
        """

    def get_case_tasks(
        self, case_id: str, *, status: str | None = "Open", types: Sequence[str] | None = None
    ) -> list[Task]:
        """The case's tasks (used only with ``recheck_open_tasks``).

        :param case_id: the case GUID.
        :param status: task status filter.
        :param types: task type filter.
        """


def validate_drafts(drafts: Sequence[CaseDraft]) -> None:
    """Check every draft's text (visible, at most 10,000 characters) before the first post.

    :param drafts: the drafts (rendered, or edited by a person).
    """
    for draft in drafts:
        if not draft.tasks:
            raise ValueError(f"the draft for case {draft.label} answers no task")
        validate_reply(draft.message, where=f"the reply for case {draft.label}")


def post_drafts(
    gateway: ChatGateway,
    drafts: Sequence[CaseDraft],
    *,
    sender: str,
    report: ReplyReport,
    recheck_open_tasks: Collection[str] | None = None,
    yield_to_other_run: bool | None = None,
    log: TaskLog = _log,
) -> None:
    """Post each draft at most once, re-checking its case right before; one case's 404 skips only that case.

    Every draft is validated first (one bad text posts nothing). A definite per-case error is recorded
    in ``report.failed`` and the next case is posted; an ambiguous post that is not found in the history
    stops the run with :class:`~airflow_provider_debitura.exceptions.DebituraAmbiguousWriteError` (never
    posted again in the same run).

    :param gateway: reads chats and posts (the hook).
    :param drafts: the drafts, in posting order.
    :param sender: the ``userEmail`` the messages are sent as.
    :param report: where replies, skips and failures are recorded.
    :param recheck_open_tasks: also re-read each case's open tasks of these types and answer only
        those still open (for drafts that waited, e.g. for a person's approval). None: do not.
    :param yield_to_other_run: leave the remaining drafts to another run of ours once one of its messages
        is found on a case this run was about to answer (it is answering the same cases ahead of this one).
        Default: True for fresh drafts, False with ``recheck_open_tasks`` (drafts that waited, e.g. for an
        approval, where an earlier run's message on one case says nothing about the others).
    :param log: where per-case lines go (the operator passes its task logger).
    """
    if yield_to_other_run is None:
        yield_to_other_run = recheck_open_tasks is None
    validate_drafts(drafts)
    for index, draft in enumerate(drafts):
        try:
            other_run = _post_case(gateway, draft, sender, report, recheck_open_tasks, log)
        except DebituraAmbiguousWriteError:
            raise
        except Exception as exc:
            reason = case_failure(exc)
            if reason is None:
                raise
            status = getattr(exc, "status", None)
            report.fail(draft.case_id, draft.creditor_reference, draft.task_ids, reason, status)
            log.warning("Could not answer case %s: %s", draft.label, reason)
            continue
        if other_run is not None and yield_to_other_run:
            _leave_to_other_run(drafts[index + 1 :], other_run, draft, report, log)
            return


def _leave_to_other_run(
    rest: Sequence[CaseDraft], answer: ChatMessage, draft: CaseDraft, report: ReplyReport, log: TaskLog
) -> None:
    reason = (
        f"left to a concurrent run: case {draft.label} was answered at {answer.date_created.isoformat()} by "
        "another run with the same sender while this one was about to; the next run answers what it missed"
    )
    if rest:
        log.warning("Another run is answering these cases ahead of this one: leaving %d case(s) to it.", len(rest))
    for other in rest:
        for task in other.tasks:
            report.skip(task.id, other.case_id, reason, other.creditor_reference)


def _post_case(
    gateway: ChatGateway,
    draft: CaseDraft,
    sender: str,
    report: ReplyReport,
    recheck_open_tasks: Collection[str] | None,
    log: TaskLog,
) -> ChatMessage | None:
    """Re-check and post one case; returns the answer of another run of ours when one got there first."""
    chats = gateway.get_chats(draft.case_id)
    unreadable = unreadable_history(chats)
    if unreadable is not None:
        report.fail(draft.case_id, draft.creditor_reference, draft.task_ids, unreadable, None)
        log.warning("Could not answer case %s: %s", draft.label, unreadable)
        return None
    pending = _still_pending(draft, chats, report, log)
    if pending and recheck_open_tasks is not None:
        pending = _still_open(gateway, draft, pending, recheck_open_tasks, report)
    if not pending:
        return _from_other_run(draft, chats, sender)
    posted = _post_once(gateway, draft, pending, sender, [c.id for c in chats], report, log)
    if posted is not None:
        report.reply(draft.case_id, draft.creditor_reference, [t.id for t in pending], posted.id)
        log.info("Replied on case %s (message %s) for %d task(s).", draft.label, posted.id, len(pending))
    return None


def _still_pending(
    draft: CaseDraft,
    chats: Sequence[ChatMessage],
    report: ReplyReport,
    log: TaskLog,
) -> list[DraftTask]:
    pending = []
    for task in draft.tasks:
        answer = task.answered_by(chats)
        if answer is None:
            pending.append(task)
            continue
        reason = (
            f"answered since this run read the case: creditor message {answer.id} at "
            f"{answer.date_created.isoformat()} (another run or a person)"
        )
        report.skip(task.id, draft.case_id, reason, draft.creditor_reference)
        log.info("Not replying on case %s for task %s: %s", draft.label, task.id, reason)
    return pending


def _from_other_run(draft: CaseDraft, chats: Sequence[ChatMessage], sender: str) -> ChatMessage | None:
    """A creditor message that appeared since the draft was made, sent as our own sender: another run of ours."""
    seen = set(draft.seen_chat_ids)
    for chat in chats:
        email = (chat.user.email if chat.user is not None else None) or ""
        if chat.is_from_creditor and chat.id not in seen and email.strip().lower() == sender.strip().lower():
            return chat
    return None


def _still_open(
    gateway: ChatGateway,
    draft: CaseDraft,
    pending: list[DraftTask],
    types: Collection[str],
    report: ReplyReport,
) -> list[DraftTask]:
    open_ids = {t.id for t in gateway.get_case_tasks(draft.case_id, status="Open", types=sorted(types))}
    for task in pending:
        if task.id not in open_ids:
            report.skip(task.id, draft.case_id, "no longer open in Debitura", draft.creditor_reference)
    return [t for t in pending if t.id in open_ids]


def _post_once(
    gateway: ChatGateway,
    draft: CaseDraft,
    pending: Sequence[DraftTask],
    sender: str,
    known_ids: list[str],
    report: ReplyReport,
    log: TaskLog,
) -> ChatMessage | None:
    try:
        return gateway.post_chat(draft.case_id, draft.message, user_email=sender)
    except DebituraAmbiguousWriteError as exc:
        log.warning(
            "Posting to case %s may or may not have worked (%s); reading the chat before anything else.",
            draft.label,
            exc,
        )
        chats = gateway.get_chats(draft.case_id)
        found = find_own_message(chats, draft.message, not_before=draft.not_before, known_ids=known_ids)
        if found is not None:
            log.info("Our message is in case %s's chat (id %s): counted as sent.", draft.label, found.id)
            return found
        new = [c for c in chats if c.id not in set(known_ids)]
        if all(t.answered_by(new) is not None for t in pending):
            for task in pending:
                reason = "answered by another creditor message while our post was in doubt"
                report.skip(task.id, draft.case_id, reason, draft.creditor_reference)
            return None
        raise _not_posting_again(draft, exc) from exc


def _not_posting_again(draft: CaseDraft, exc: DebituraAmbiguousWriteError) -> DebituraAmbiguousWriteError:
    # Even a 5xx can come back after the backend stored the message (a proxy's 502, a gateway's 504), and
    # the chat history may show it only later: never post again in this run.
    return DebituraAmbiguousWriteError(
        f"Posting the reply to case {draft.label} failed after the request was sent ({exc}), so Debitura may "
        "still have stored it, and it is not in the case's chat history yet. Not posting again in this run. A "
        "re-run (task retry) reads the history first, so it sends the reply only if this one never arrived.",
        method=exc.method,
        path=exc.path,
        cause=exc,
        status=exc.status,
    )
