"""Human handoff DAGs for the end-to-end tests (Airflow 3.1+; on older Airflow this file defines no DAG).

Each lists the open tasks of the types in ``dag_run.conf["types"]`` (default ReviewPartner), maps one
handoff request over them and summarises the outcomes. They differ only in how they wait:

- ``hitl_handoff_wait``: Debitura is checked before asking and after each answer only (poll_interval of
  an hour), so the test controls exactly what the person's answer meets.
- ``hitl_handoff_watch``: Debitura is checked every 2 s while waiting, so a task solved in the app
  closes the request by itself.
- ``hitl_handoff_timeout``: nobody answers within 20 s.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

from airflow_provider_debitura.hitl import HITL_AVAILABLE

if HITL_AVAILABLE:
    from airflow.sdk import DAG, task

    from airflow_provider_debitura.operators.human_handoff import DebituraHumanHandoffOperator
    from airflow_provider_debitura.operators.list_tasks import DebituraListTasksOperator

    WAYS = {
        "hitl_handoff_wait": {"poll_interval": 3600},
        "hitl_handoff_watch": {"poll_interval": 2},
        "hitl_handoff_timeout": {"poll_interval": 3600, "response_timeout": timedelta(seconds=20)},
    }

    for dag_id, waiting in WAYS.items():
        with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
            listed = DebituraListTasksOperator(
                task_id="list_tasks", task_types="{{ dag_run.conf.get('types', 'ReviewPartner') }}", shape="full"
            )
            handoff = DebituraHumanHandoffOperator.partial(
                task_id="handoff", response_poll_interval=1, **waiting
            ).expand(debitura_tasks=listed.output)

            @task(trigger_rule="all_done")
            def summarise(reports: list) -> list:
                return sorted(r["outcome"] for r in reports if r)

            summarise(handoff.output)
