"""Case-gate DAGs for the end-to-end tests (tests/sensors/test_e2e.py). No Debitura calls at parse time.

The case comes from ``dag_run.conf["ref"]`` (a creditor reference) so the test picks the scenario.
"""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor

REF = "{{ dag_run.conf.get('ref', 'INV-1001') }}"
START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG("sensor_gate_poke", schedule=None, start_date=START, catchup=False):
    DebituraCaseUnblockedSensor(task_id="gate", creditor_reference=REF, poke_interval=1, timeout=60, deferrable=False)

with DAG("sensor_gate_deferrable", schedule=None, start_date=START, catchup=False):
    DebituraCaseUnblockedSensor(task_id="gate", creditor_reference=REF, poke_interval=1, timeout=60, deferrable=True)

with DAG("sensor_gate_reschedule", schedule=None, start_date=START, catchup=False):
    # Each check is its own try: Airflow clears the task's XComs before every rescheduled try.
    DebituraCaseUnblockedSensor(
        task_id="gate", creditor_reference=REF, poke_interval=1, timeout=60, mode="reschedule", deferrable=False
    )

with DAG("sensor_gate_at_once", schedule=None, start_date=START, catchup=False):
    # INV-1005 has no task of its own: without account-level tasks it opens at the first check in every mode.
    for mode, deferrable in (("poke", False), ("reschedule", False), ("poke", True)):
        DebituraCaseUnblockedSensor(
            task_id=f"gate_{'deferrable' if deferrable else mode}",
            creditor_reference="INV-1005",
            include_account_tasks=False,
            poke_interval=1,
            timeout=60,
            mode=mode,
            deferrable=deferrable,
        )

with DAG("sensor_gate_backoff", schedule=None, start_date=START, catchup=False):
    DebituraCaseUnblockedSensor(
        task_id="gate",
        creditor_reference=REF,
        poke_interval=1,
        timeout=120,
        deferrable=True,
        exponential_backoff=True,
        max_wait=3,
    )

with DAG("sensor_gate_never_fail", schedule=None, start_date=START, catchup=False):
    # never_fail skips a gate whose check cannot work, in every mode (a timeout still fails).
    for mode, deferrable in (("poke", False), ("poke", True)):
        DebituraCaseUnblockedSensor(
            task_id=f"missing_{'deferrable' if deferrable else mode}",
            creditor_reference="INV-DOES-NOT-EXIST",
            poke_interval=1,
            timeout=60,
            mode=mode,
            deferrable=deferrable,
            never_fail=True,
        )
    DebituraCaseUnblockedSensor(
        task_id="missing_guid_deferrable",
        case_id="3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b",
        poke_interval=1,
        timeout=60,
        deferrable=True,
        never_fail=True,
    )

with DAG("sensor_gate_failures", schedule=None, start_date=START, catchup=False):
    # INV-1003 has case tasks nobody solves: these can only time out.
    common = {"creditor_reference": "INV-1003", "poke_interval": 1, "timeout": 3}
    DebituraCaseUnblockedSensor(task_id="timeout_poke", deferrable=False, **common)
    DebituraCaseUnblockedSensor(task_id="timeout_soft_fail", deferrable=False, soft_fail=True, **common)
    DebituraCaseUnblockedSensor(task_id="timeout_deferred", deferrable=True, **common)
    DebituraCaseUnblockedSensor(
        task_id="missing_case", creditor_reference="INV-DOES-NOT-EXIST", poke_interval=1, timeout=600, deferrable=False
    )
