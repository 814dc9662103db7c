"""Re-exports of the operators under their original module path (kept importable).

The operators live in :mod:`.list_tasks` and :mod:`.reply_to_chat`.
"""

from __future__ import annotations

from airflow_provider_debitura.operators.list_tasks import DebituraListTasksOperator, summary_table
from airflow_provider_debitura.operators.reply_to_chat import DebituraReplyToChatTasksOperator

_summary_table = summary_table  # the old private name, used by older tests

__all__ = ["DebituraListTasksOperator", "DebituraReplyToChatTasksOperator"]
