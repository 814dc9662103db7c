"""The rules that decide whether a chat message may be sent: pure functions, no I/O.

Is a task's ``action`` safe to follow, is a task already answered by the case's chat history, which
partner message does a reply answer, and, after an ambiguous post, is our message in the history.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime

from airflow_provider_debitura.models import ChatMessage, Task

__all__ = [
    "CASE_ID_PLACEHOLDER",
    "CHAT_ACTION_METHOD",
    "action_refusal",
    "answered_by",
    "creditor_message_since",
    "find_own_message",
    "latest_partner_message",
]

CHAT_ACTION_METHOD = "POST"
CASE_ID_PLACEHOLDER = "{caseId}"
_CHAT_PATH = re.compile(r"^/cases/(?P<case>[^/?#\\]+)/chats$")


def _canonical_guid(value: str) -> str | None:
    """The canonical lower-case form of a GUID, or None when ``value`` is not exactly one."""
    text = value.strip()
    try:
        parsed = uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return None
    # uuid.UUID also accepts braces, "urn:uuid:" and no hyphens: only the plain 8-4-4-4-12 form names a case.
    return str(parsed) if text.lower() == str(parsed) else None


def action_refusal(task: Task) -> str | None:
    """Why this task's ``action`` must not be followed, or None when it is the expected chat post.

    Only ``POST /cases/{caseId}/chats`` for the task's own case is followed, and only when the task's
    ``caseId`` is a GUID (the spec's format): the path comes from the server, and following whatever
    it says (or inserting a ``caseId`` such as ``..``) could send a message, with the API key, to
    another case, another endpoint or another host.

    :param task: the task whose ``action`` would be followed.
    """
    if not task.case_id:
        return "task has no caseId, so there is no case chat to reply in"
    own_case = _canonical_guid(task.case_id)
    if own_case is None:
        return f"task caseId {task.case_id!r} is not a GUID; refused, nothing is sent to a path built from it"
    action = task.action
    if action is None or (action.method is None and action.path is None):
        return "task has no action (or only a null method and path): Debitura offers no API resolution for it"
    method = (action.method or "").strip().upper()
    if method != CHAT_ACTION_METHOD:
        return f"action method {action.method!r} is not POST; only POST /cases/{{caseId}}/chats is followed"
    path = action.path or ""
    match = _CHAT_PATH.match(path)
    if match is None:
        return (
            f"action path {path!r} is not /cases/{{caseId}}/chats relative to the connection's base URL; refused, "
            "not called"
        )
    segment = match.group("case")
    if segment != CASE_ID_PLACEHOLDER and _canonical_guid(segment) != own_case:
        return f"action path {path!r} points at another case than the task's own ({task.case_id}); refused, not called"
    return None


def answered_by(task: Task, chats: Iterable[ChatMessage]) -> ChatMessage | None:
    """The creditor message that already answers ``task``: the newest one at or after its creation.

    "At or after" (not strictly after): if a reply and the task carry the same timestamp, treating the
    task as answered risks one missed reply (visible in the report), the other choice a second message
    to the partner.

    :param task: the open chat task.
    :param chats: the case's chat history.
    """
    return creditor_message_since(task.date_created, chats)


def creditor_message_since(created: datetime, chats: Iterable[ChatMessage]) -> ChatMessage | None:
    """The newest creditor message at or after ``created`` (the rule behind :func:`answered_by`).

    :param created: the task's creation time.
    :param chats: the case's chat history.
    """
    candidates = [c for c in chats if c.is_from_creditor and c.date_created >= created]
    return max(candidates, key=lambda c: c.date_created, default=None)


def latest_partner_message(chats: Iterable[ChatMessage]) -> ChatMessage | None:
    """The newest message from the collection partner (``role`` 0 or 2), or None.

    :param chats: the case's chat history.
    """
    return max((c for c in chats if c.is_from_partner), key=lambda c: c.date_created, default=None)


def _normalise(text: str | None) -> str:
    return (text or "").replace("\r\n", "\n").strip()


def find_own_message(
    chats: Iterable[ChatMessage], message: str, *, not_before: datetime, known_ids: Iterable[str]
) -> ChatMessage | None:
    """After an ambiguous post: the creditor message with our text that was not there before we posted.

    :param chats: the case's chat history, read after the post.
    :param message: the text we posted.
    :param not_before: the oldest task's creation time (our message cannot be older).
    :param known_ids: ids of the messages that were in the history before the post.
    """
    known = set(known_ids)
    wanted = _normalise(message)
    for chat in sorted(chats, key=lambda c: c.date_created):
        if (
            chat.id not in known
            and chat.is_from_creditor
            and chat.date_created >= not_before
            and _normalise(chat.message) == wanted
        ):
            return chat
    return None
