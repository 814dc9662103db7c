"""Reply approval DAGs for the end-to-end tests (Airflow 3.1+; on older Airflow this file defines no DAG).

``hitl_approval`` renders a reply per chat case and waits for a person; ``hitl_approval_timeout`` gives them
20 s and then posts nothing.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

from airflow_provider_debitura.hitl import HITL_AVAILABLE

if HITL_AVAILABLE:
    from airflow.sdk import DAG

    from airflow_provider_debitura.operators.reply_approval import DebituraReplyApprovalOperator

    TEMPLATE = 'Regarding {{ task.caseReference }}: you wrote "{{ partner_message }}". We answer by {{ ds }}.'

    for dag_id, waiting in {
        "hitl_approval": {},
        "hitl_approval_timeout": {"response_timeout": timedelta(seconds=20)},
    }.items():
        with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
            DebituraReplyApprovalOperator(
                task_id="approve_replies", reply_template=TEMPLATE, response_poll_interval=1, **waiting
            )
