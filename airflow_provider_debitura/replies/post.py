"""Post: send each case's draft exactly once, through any :class:`ChatGateway` (the hook is one).

Right before posting to a case, its chat history is read again, so a message another run (or a
person) sent since the draft was made is seen, and the case is skipped. That leaves a race window of
one request per case instead of the whole read phase (docs/operators.md, docs/reliability.md).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from airflow_provider_debitura.exceptions import DebituraAmbiguousWriteError
from airflow_provider_debitura.models import ChatMessage, Task
from airflow_provider_debitura.replies.drafts import CaseDraft, DraftTask
from airflow_provider_debitura.replies.failures import case_failure
from airflow_provider_debitura.replies.report import ReplyReport
from airflow_provider_debitura.replies.rules import find_own_message
from airflow_provider_debitura.replies.templates import validate_reply

__all__ = ["ChatGateway", "Pacer", "post_drafts", "validate_drafts"]

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


@dataclass
class Pacer:
    """Keeps a run behind a concurrent run that answers the same cases in the same order.

    Skipping a case another run just answered is faster than posting to it, so without a pause the
    trailing run catches up and both post to the next case. After such a skip the run waits about as
    long as its own posts take (median of the recent ones; before the first post, of its reads).

    :param sleep: the sleep function (a test passes a recorder).
    :param enabled: False turns the pause off (to measure what it buys).
    """

    sleep: Callable[[float], None] = time.sleep
    enabled: bool = True
    posts: list[float] = field(default_factory=list)
    reads: list[float] = field(default_factory=list)

    def yield_to_concurrent_writer(self) -> float:
        """Pause for about one post; returns the seconds paused."""
        recent = (self.posts or self.reads)[-5:]
        pause = statistics.median(recent) if recent and self.enabled else 0.0
        if pause > 0:
            self.sleep(pause)
        return pause


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
    pacer: Pacer | None = None,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] = _log,
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
    :param pacer: the pause after a case another run just answered (default: a :class:`Pacer`).
    :param log: where per-case lines go (the operator passes its task logger).
    """
    validate_drafts(drafts)
    pacer = pacer or Pacer()
    for draft in drafts:
        try:
            _post_case(gateway, draft, sender, report, recheck_open_tasks, pacer, log)
        except DebituraAmbiguousWriteError:
            raise
        except Exception as exc:
            reason = case_failure(exc)
            if reason is None:
                raise
            status = getattr(exc, "status", None)
            report.fail(draft.case_id, draft.creditor_reference, draft.task_ids, reason, status)
            log.warning("Could not answer case %s: %s", draft.label, reason)


def _post_case(
    gateway: ChatGateway,
    draft: CaseDraft,
    sender: str,
    report: ReplyReport,
    recheck_open_tasks: Collection[str] | None,
    pacer: Pacer,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> None:
    started = time.monotonic()
    chats = gateway.get_chats(draft.case_id)
    pacer.reads.append(time.monotonic() - started)
    pending = _still_pending(draft, chats, report, log)
    if pending and recheck_open_tasks is not None:
        pending = _still_open(gateway, draft, pending, recheck_open_tasks, report)
    if not pending:
        if _answered_by_someone_else(draft, chats):
            pacer.yield_to_concurrent_writer()
        return
    started = time.monotonic()
    posted = _post_once(gateway, draft, pending, sender, [c.id for c in chats], report, log)
    pacer.posts.append(time.monotonic() - started)
    if posted is not None:
        report.reply(draft.case_id, draft.creditor_reference, [t.id for t in pending], posted.id)
        log.info("Replied on case %s (message %s) for %d task(s).", draft.label, posted.id, len(pending))


def _still_pending(
    draft: CaseDraft,
    chats: Sequence[ChatMessage],
    report: ReplyReport,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
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


def _answered_by_someone_else(draft: CaseDraft, chats: Sequence[ChatMessage]) -> bool:
    seen = set(draft.seen_chat_ids)
    return any(c.is_from_creditor and c.id not in seen for c in chats)


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
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
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
