"""Case gate: hold a pipeline until a Debitura case has nothing blocking it.

What it shows
    1. ``lookup_case`` finds the case by *your* reference (``creditor_reference``) with the hook.
    2. ``wait_until_unblocked`` (a deferrable :class:`DebituraCaseUnblockedSensor`) waits until the case has
       no open task, counting the account-level blockers too (SignContract, AssignBankAccount never show in
       a case's own listing, yet they stop every case). While it waits, the worker slot is free: the
       triggerer polls, and many gates on one connection share one poll.
    3. ``export_case`` runs only once the gate opens, and reads the gate's XCom record: when it opened,
       after how many checks, and what was blocking at first.

On the sandbox (``make demo``) case ``INV-1001`` is blocked only by an account-level AssignBankAccount task
that the sandbox clears five seconds after the scenario loads, so the gate opens after a few seconds.

For real use
    - Create a ``debitura_default`` connection for https://customer-api.debitura.com with your API key.
    - Trigger with ``{"creditor_reference": "<your reference>"}`` or change the param's default.
    - Raise ``poke_interval`` (60 s or more: the API allows 2,000 requests a minute per key) and set a
      ``timeout`` that matches how long the downstream step can wait; ``soft_fail=True`` skips instead.
    - Replace ``export_case`` with your export, invoicing or reporting step.

Nothing here touches the network at parse time.
"""

from __future__ import annotations

import logging

import pendulum

try:  # Airflow 3: the Task SDK
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor

# The task logger: its lines land in the task's log, not in Airflow 3's collapsed "post execute" group (print).
log = logging.getLogger("airflow.task")

with DAG(
    dag_id="example_debitura_case_gate",
    description="Wait until a Debitura case has no blocking tasks, then continue.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"creditor_reference": Param("INV-1001", type="string", description="Your reference of the case")},
    tags=["debitura", "example"],
):

    @task
    def lookup_case(params: dict | None = None) -> dict:
        """Resolve the reference once, so every later step (and the log) names the same case."""
        from airflow_provider_debitura.hooks.debitura import DebituraHook

        case = DebituraHook().find_case(creditor_reference=params["creditor_reference"])
        return {"id": case.id, "reference": case.reference, "creditor_reference": case.creditor_reference}

    case = lookup_case()

    gate = DebituraCaseUnblockedSensor(
        task_id="wait_until_unblocked",
        case_id="{{ ti.xcom_pull(task_ids='lookup_case')['id'] }}",
        deferrable=True,
        poke_interval=2,
        timeout=300,
    )

    @task
    def export_case(case: dict, gate_record: dict) -> dict:
        """Stands in for the step that must not run while the case is blocked."""
        blockers = [f"{t.get('type')} ({t.get('solutionUrl')})" for t in gate_record["blocked_by_on_first_check"] or []]
        log.info(
            "Exporting case %s (%s): unblocked at %s after %s check(s); first blocked by: %s",
            case["creditor_reference"],
            case["id"],
            gate_record["unblocked_at"],
            gate_record["checks"],
            ", ".join(blockers) or "nothing",
        )
        return {"exported": case["id"], "unblocked_at": gate_record["unblocked_at"]}

    case >> gate
    export_case(case, gate.output)
