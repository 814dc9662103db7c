"""Secret-hygiene DAGs (tests/reliability/test_secrets.py): every component, with a recognisable key.

The hook (a read, and a call the test makes fail with HTTP 500), the deferrable case gate, the list
operator and the reply operator. The test then greps everything Airflow wrote for the key.
No Debitura calls at parse time.
"""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.operators import DebituraListTasksOperator, DebituraReplyToChatTasksOperator
from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor

START = pendulum.datetime(2026, 1, 1, tz="UTC")

for dag_id in ("reliability_secrets_api_key", "reliability_secrets_bearer"):
    with DAG(dag_id, schedule=None, start_date=START, catchup=False):

        @task
        def hook_calls() -> dict:
            hook = DebituraHook()
            me = hook.get_me()
            tasks = hook.list_tasks()
            # Put every repr a user might log into the task log.
            print("hook:", repr(hook), "settings:", repr(hook.settings), "str:", str(hook.settings))
            print("test_connection:", hook.test_connection())
            return {"creditor": me.company_name, "open_tasks": len(tasks), "settings": repr(hook.settings)}

        @task(retries=0)
        def failing_call() -> None:
            DebituraHook().list_users()  # the test makes GET /users answer 500: the error path logs too

        gate = DebituraCaseUnblockedSensor(
            task_id="gate", creditor_reference="INV-1001", deferrable=True, poke_interval=1, timeout=120
        )
        listed = DebituraListTasksOperator(task_id="list_tasks")
        reply = DebituraReplyToChatTasksOperator(
            task_id="reply", reply_template="Thanks, noted for {{ case.creditorReference }} ({{ task.type }})."
        )
        hook_calls() >> gate >> listed >> reply
        failing_call()
