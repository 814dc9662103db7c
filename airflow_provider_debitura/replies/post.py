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
import random
from collections.abc import Collection, Sequence
from typing import Protocol

from airflow_provider_debitura.exceptions import DebituraAmbiguousWriteError
from airflow_provider_debitura.models import ChatMessage, Task
from airflow_provider_debitura.replies.drafts import CaseDraft, DraftTask
from airflow_provider_debitura.replies.failures import case_failure
from airflow_provider_debitura.replies.plan import unreadable_history
from airflow_provider_debitura.replies.report import ReplyReport, TaskLog
from airflow_provider_debitura.replies.rules import action_refusal, find_own_message
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
    own_order: bool | random.Random = False,
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
        approval, where an earlier run's message on one case says nothing about the others; such a caller
        can refresh ``seen_chat_ids`` right before posting and pass True, as the approval operator does).
    :param own_order: post in this run's own order: the given one from a random case (True, or a seeded
        ``random.Random``), wrapped around; the first case found answered by another run of ours makes this
        run leave the rest to it. Meetings at a run's start are settled by :func:`_twin_start` (1 request
        per run, 2 at such a meeting; docs/operators.md, "Two runs at once").
    :param log: where per-case lines go (the operator passes its task logger).
    """
    if yield_to_other_run is None:
        yield_to_other_run = recheck_open_tasks is None
    validate_drafts(drafts)
    drafts = _in_own_order(drafts, own_order)
    check_twin = own_order is not False and yield_to_other_run
    for index, draft in enumerate(drafts):
        try:
            posted, other_run = _post_case(gateway, draft, sender, report, recheck_open_tasks, log)
            if posted is not None and check_twin:
                check_twin = False
                other_run = _twin_start(gateway, draft, posted, sender, log, drafts[index - 1])
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


def _in_own_order(drafts: Sequence[CaseDraft], own_order: bool | random.Random) -> list[CaseDraft]:
    """The drafts from a random start, wrapped around (``own_order``), or as given."""
    ordered = list(drafts)
    if own_order is False or not ordered:
        return ordered
    rng = own_order if isinstance(own_order, random.Random) else random.SystemRandom()
    start = rng.randrange(len(ordered))
    return ordered[start:] + ordered[:start]


def _twin_start(
    gateway: ChatGateway,
    draft: CaseDraft,
    posted: ChatMessage,
    sender: str,
    log: TaskLog,
    before: CaseDraft,
) -> ChatMessage | None:
    """After this run's first post: another run's message of ours posted on the same case at the same time,
    when this run must leave the rest to it, else None (this run goes on).

    When both runs started on this case, both read the same two messages here and the run of the later one
    leaves, so exactly one goes on. But a run checks only after its own first post: when the other run was
    already walking the circle and only reached this run's start as this run began (staggered starts), that
    run never reads this case again, so this run leaves even if its message came first. Which of the two it
    was shows on the case this run would answer last (``before``, the one preceding this in the circle): a
    run that came through it posted there after this run's draft (1 more request, only at such a meeting).
    """
    seen = set(draft.seen_chat_ids) | {posted.id}
    twins = [c for c in gateway.get_chats(draft.case_id) if c.id not in seen and _sent_as(c, sender)]
    if not twins:
        return None
    first = min(twins, key=lambda c: (c.date_created, c.id))
    log.warning("Another run of ours reached case %s at the same time as this one.", draft.label)
    if (first.date_created, first.id) < (posted.date_created, posted.id):
        return first
    if before.case_id == draft.case_id or not _came_through(gateway, before, sender):
        return None  # both started here: that run read the same two messages and leaves
    log.warning("That run was already answering the cases before %s: this one leaves the rest to it.", draft.label)
    return first


def _came_through(gateway: ChatGateway, before: CaseDraft, sender: str) -> bool:
    """Whether another run of ours answered ``before`` since this run's draft (unknown, when it cannot be read:
    True, so that this run leaves rather than risks answering every case a second time)."""
    try:
        return _from_other_run(before, gateway.get_chats(before.case_id), sender) is not None
    except Exception as exc:
        if case_failure(exc) is None:
            raise
        return True


def _sent_as(chat: ChatMessage, sender: str) -> bool:
    email = (chat.user.email if chat.user is not None else None) or ""
    return chat.is_from_creditor and email.strip().lower() == sender.strip().lower()


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
) -> tuple[ChatMessage | None, ChatMessage | None]:
    """Re-check and post one case: (our message if posted, the answer of another run of ours that got there first)."""
    chats = gateway.get_chats(draft.case_id)
    unreadable = unreadable_history(chats)
    if unreadable is not None:
        report.fail(draft.case_id, draft.creditor_reference, draft.task_ids, unreadable, None)
        log.warning("Could not answer case %s: %s", draft.label, unreadable)
        return None, None
    pending = _still_pending(draft, chats, report, log)
    if pending and recheck_open_tasks is not None:
        pending = _still_open(gateway, draft, pending, recheck_open_tasks, report)
    if not pending:
        return None, _from_other_run(draft, chats, sender)
    posted = _post_once(gateway, draft, pending, sender, [c.id for c in chats], report, log)
    if posted is not None:
        report.reply(draft.case_id, draft.creditor_reference, [t.id for t in pending], posted.id)
        log.info("Replied on case %s (message %s) for %d task(s).", draft.label, posted.id, len(pending))
    return posted, None


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
    return next((c for c in chats if c.id not in seen and _sent_as(c, sender)), None)


def _still_open(
    gateway: ChatGateway,
    draft: CaseDraft,
    pending: list[DraftTask],
    types: Collection[str],
    report: ReplyReport,
) -> list[DraftTask]:
    """The drafted tasks, when the case's open chat tasks are still exactly the drafted ones; else none.

    A draft that waited (for a person's approval) is posted only if the reply clears what was shown: no task
    raised since, none whose type changed or whose action the reply operator would now refuse, none solved
    meanwhile. Any difference skips the case and reports what happened (the next run drafts a new reply).
    """
    listed = gateway.get_case_tasks(draft.case_id, status="Open", types=sorted(types))
    rejected = getattr(listed, "rejected", ())
    now = {t.id: t for t in listed}
    drafted = {t.id for t in draft.tasks}
    changes = [f"{len(rejected)} open task record(s) could not be read"] if rejected else []
    changes += [change for change in (_change(t, now.get(t.id)) for t in draft.tasks) if change]
    new = [t for t in listed if t.id not in drafted]
    if not changes and not new:
        return pending
    gone = [t for t in draft.tasks if t.id not in now]
    if not new and not rejected and len(gone) == len(draft.tasks):
        for task in pending:
            report.skip(task.id, draft.case_id, "no longer open in Debitura", draft.creditor_reference)
        return []
    for listed_task in listed:
        refusal = action_refusal(listed_task) if listed_task.id in drafted else None
        if refusal is not None:
            report.human(listed_task, refusal)
    _report_changed(draft, pending, changes, new, report)
    return []


def _change(task: DraftTask, now: Task | None) -> str:
    """What happened to a drafted task since the draft ("" when nothing)."""
    if now is None:
        return f"task {task.id} was solved since the draft (no longer open in Debitura)"
    if now.type != task.type:
        return f"task {task.id} changed its type from {task.type} to {now.type} since the draft"
    refusal = action_refusal(now)
    return f"task {task.id} can no longer be answered: {refusal}" if refusal else ""


def _report_changed(
    draft: CaseDraft, pending: Sequence[DraftTask], changes: list[str], new: Sequence[Task], report: ReplyReport
) -> None:
    raised = [f"{t.type} task {t.id} ({t.title or 'no title'}) was raised since the draft" for t in new]
    what = "; ".join(changes + raised)
    reason = (
        f"not sent: the case's open chat tasks differ from what the reply was drafted (and approved) for: {what}. "
        "The next run drafts a reply for what is open now"
    )
    for task_id in [t.id for t in pending] + [t.id for t in new]:
        report.skip(task_id, draft.case_id, reason, draft.creditor_reference)
    _log.warning("Not replying on case %s: %s", draft.label, reason)


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
