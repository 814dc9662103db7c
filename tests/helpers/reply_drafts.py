"""Drafting replies the way the reply operator does (select, read, render), for the reply phases' unit tests.

One place for the setup the plan/post, recheck and lockstep tests share: the gateway is any
:class:`~airflow_provider_debitura.replies.CaseReader` (usually :class:`helpers.fake_gateway.FakeGateway`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_debitura.models import Task
from airflow_provider_debitura.replies import (
    CaseDraft,
    ReplyReport,
    compile_templates,
    read_cases,
    render_drafts,
    select_cases,
)

CHAT_TYPES = ["ReplyToChat", "ClientInputRequired", "MoreInfoNeeded"]
"""The chat-driven task types, as the reply operator answers them by default."""

NOTED = "Noted: {{ task.title }}."
"""A template that needs no case read."""


def draft_replies(
    gateway: Any,
    tasks: Sequence[Task],
    *,
    source: str = NOTED,
    max_replies: int | None = None,
    context: Mapping[str, Any] | None = None,
) -> tuple[ReplyReport, list[CaseDraft]]:
    """The plan and render phases over ``tasks``: (the report of what was set aside, the drafts).

    :param gateway: what the plan reads cases and chats through.
    :param tasks: the open tasks listed.
    :param source: the reply template for every chat type.
    :param max_replies: the operator's cap on cases.
    :param context: the Jinja context besides task and case.
    """
    report = ReplyReport()
    templates = compile_templates(source, None, CHAT_TYPES)
    selection = select_cases(tasks, CHAT_TYPES)
    readings = read_cases(gateway, selection, report, max_replies=max_replies, read_case=templates.uses_case)
    return report, render_drafts(readings, templates, dict(context or {}))
