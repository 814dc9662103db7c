"""A reply template with an undefined variable: the task must fail and post nothing."""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from airflow_provider_debitura.operators import DebituraReplyToChatTasksOperator

with DAG(
    "operators_reply_bad_template",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    DebituraReplyToChatTasksOperator(
        task_id="reply",
        reply_template="Invoice number: {{ invoice_number }}",
    )
