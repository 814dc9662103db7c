"""Operators: list Debitura tasks into XCom, and answer the chat-driven ones from templates."""

from __future__ import annotations

from airflow_provider_debitura.operators.debitura import (
    DebituraListTasksOperator,
    DebituraReplyToChatTasksOperator,
)

__all__ = ["DebituraListTasksOperator", "DebituraReplyToChatTasksOperator"]
