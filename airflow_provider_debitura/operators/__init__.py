"""Operators: list Debitura tasks into XCom, and answer the chat-driven ones from templates."""

from __future__ import annotations

from airflow_provider_debitura.operators.list_tasks import DebituraListTasksOperator
from airflow_provider_debitura.operators.reply_to_chat import DebituraReplyToChatTasksOperator

__all__ = ["DebituraListTasksOperator", "DebituraReplyToChatTasksOperator"]
