"""Render: one message per case from the templates and what was read (pure, no I/O).

Every draft is rendered and checked before anything is posted, so one bad template posts nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_debitura.replies.drafts import CaseDraft, DraftTask
from airflow_provider_debitura.replies.plan import CaseReading
from airflow_provider_debitura.replies.rules import latest_partner_message
from airflow_provider_debitura.replies.templates import TemplateSet, combine_replies, render_reply, validate_reply

__all__ = ["render_case", "render_drafts"]


def render_case(reading: CaseReading, templates: TemplateSet, jinja_context: Mapping[str, Any]) -> CaseDraft:
    """The draft for one case: each pending task's reply, distinct texts joined into one message.

    :param reading: what was read for the case.
    :param templates: the compiled templates.
    :param jinja_context: plain Airflow context values (:func:`~.templates.template_context`).
    """
    partner = latest_partner_message(reading.chats)
    case_dict = reading.case.to_api_dict() if reading.case is not None else None
    tasks = sorted(reading.pending, key=lambda t: (t.date_created, t.id))
    replies = []
    for task in tasks:
        name, template = templates.for_type(task.type or "")
        replies.append(
            render_reply(
                template,
                template_name=name,
                task=task.to_api_dict(),
                case=case_dict,
                partner_message=partner.message if partner else None,
                context=jinja_context,
            )
        )
    label = reading.creditor_reference or reading.candidate.case_id
    message = validate_reply(
        combine_replies(replies), where=f"the combined reply for case {label} ({len(tasks)} chat tasks)"
    )
    return CaseDraft(
        case_id=reading.candidate.case_id,
        creditor_reference=reading.creditor_reference,
        tasks=tuple(DraftTask.of(t) for t in tasks),
        message=message,
        seen_chat_ids=tuple(c.id for c in reading.chats),
    )


def render_drafts(
    readings: Sequence[CaseReading], templates: TemplateSet, jinja_context: Mapping[str, Any]
) -> list[CaseDraft]:
    """Render every case's draft; raises :class:`~.templates.ReplyTemplateError` on the first bad one.

    :param readings: the cases to answer, in order.
    :param templates: the compiled templates.
    :param jinja_context: plain Airflow context values.
    """
    return [render_case(reading, templates, jinja_context) for reading in readings]
