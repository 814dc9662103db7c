"""List Debitura tasks into XCom and map one task per listed task (dynamic task mapping)."""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_debitura.operators import DebituraListTasksOperator

with DAG(
    "operators_list_map",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"ref": "INV-1003", "resolvable": "true"},
):
    every_task = DebituraListTasksOperator(task_id="list_tasks")  # compact records (the default shape)

    @task
    def describe(debitura_task: dict) -> str:
        return f"{debitura_task['type']}|{debitura_task['caseReference']}|{debitura_task['solutionUrl']}"

    describe.expand(debitura_task=every_task.output)

    # Templated parameters, rendered by Airflow before execute.
    DebituraListTasksOperator(
        task_id="list_case_chat_tasks",
        creditor_reference="{{ params.ref }}",
        api_resolvable_only="{{ params.resolvable }}",
    )
