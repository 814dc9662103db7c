"""The reply run behind :class:`~airflow_provider_debitura.operators.reply_to_chat.DebituraReplyToChatTasksOperator`,
as three phases another operator can drive too (see docs/operators.md):

- **plan** (:mod:`.plan`): which cases to answer from a listing, and what was read for each;
- **render** (:mod:`.render`): one message per case, every one checked before anything is sent;
- **post** (:mod:`.post`): exactly-once posting through a hook-like gateway, re-checking each case first.

Between render and post, a case's reply is a :class:`CaseDraft`: plain JSON data that survives XCom.
The pure rules (:mod:`.rules`) and the template sandbox (:mod:`.templates`) are importable from here,
as they were when this was one module.
"""

from __future__ import annotations

from airflow_provider_debitura.replies.drafts import CaseDraft, DraftTask
from airflow_provider_debitura.replies.failures import DebituraReplyCasesFailedError, case_failure
from airflow_provider_debitura.replies.plan import (
    CaseCandidate,
    CaseReader,
    CaseReading,
    Selection,
    examine,
    read_cases,
    select_cases,
)
from airflow_provider_debitura.replies.post import ChatGateway, post_drafts, validate_drafts
from airflow_provider_debitura.replies.render import render_case, render_drafts
from airflow_provider_debitura.replies.report import ReplyReport, case_label
from airflow_provider_debitura.replies.rules import (
    CASE_ID_PLACEHOLDER,
    CHAT_ACTION_METHOD,
    action_refusal,
    answered_by,
    creditor_message_since,
    find_own_message,
    latest_partner_message,
)
from airflow_provider_debitura.replies.templates import (
    MAX_CHAT_MESSAGE_LENGTH,
    ReplyTemplateError,
    TemplateSet,
    combine_replies,
    compile_template,
    compile_templates,
    render_reply,
    template_context,
    validate_reply,
)

__all__ = [
    "CASE_ID_PLACEHOLDER",
    "CHAT_ACTION_METHOD",
    "MAX_CHAT_MESSAGE_LENGTH",
    "CaseCandidate",
    "CaseDraft",
    "CaseReader",
    "CaseReading",
    "ChatGateway",
    "DebituraReplyCasesFailedError",
    "DraftTask",
    "ReplyReport",
    "ReplyTemplateError",
    "Selection",
    "TemplateSet",
    "action_refusal",
    "answered_by",
    "case_failure",
    "case_label",
    "combine_replies",
    "compile_template",
    "compile_templates",
    "creditor_message_since",
    "examine",
    "find_own_message",
    "latest_partner_message",
    "post_drafts",
    "read_cases",
    "render_case",
    "render_drafts",
    "render_reply",
    "select_cases",
    "template_context",
    "validate_drafts",
    "validate_reply",
]
