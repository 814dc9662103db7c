"""Answer the chat-driven Debitura tasks from a template, then summarise the report."""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_debitura.operators import DebituraReplyToChatTasksOperator

with DAG(
    "operators_reply",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"signature": "Olivia from Nordic Widgets"},
):
    reply = DebituraReplyToChatTasksOperator(
        task_id="reply",
        reply_template=(
            'Regarding {{ case.creditorReference }} ({{ task.typeLabel }}): you wrote "{{ partner_message }}". '
            "We will send it today ({{ ds }}). {{ params.signature }}"
        ),
        reply_templates={"MoreInfoNeeded": "Contract date: {{ dag_run.conf.get('contract_date', 'unknown') }}."},
        dry_run="{{ dag_run.conf.get('dry_run', False) }}",
    )

    @task
    def summarise(report: dict) -> dict:
        return {key: len(report[key]) for key in ("replied", "skipped", "needs_human", "failed")}

    summarise(reply.output)
