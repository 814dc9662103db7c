"""List shapes and mapping: records over the mapping limit fail with what to do; batches map within it."""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_debitura.operators import DebituraListTasksOperator

with DAG(
    "operators_list_shapes",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    records = DebituraListTasksOperator(task_id="records")
    batches = DebituraListTasksOperator(task_id="batches", shape="batches", batch_size=2)
    summary = DebituraListTasksOperator(task_id="summary", shape="summary")

    @task
    def one(item: dict) -> str:
        return item["type"]

    @task
    def batch(items: list) -> int:
        return len(items)

    @task
    def digest(summary: dict) -> int:
        return summary["total"]

    one.expand(item=records.output)
    batch.expand(items=batches.output)
    digest(summary.output)
