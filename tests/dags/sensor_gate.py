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

with DAG("sensor_gate_failures", schedule=None, start_date=START, catchup=False):
    # INV-1003 has case tasks nobody solves: these can only time out.
    common = {"creditor_reference": "INV-1003", "poke_interval": 1, "timeout": 3}
    DebituraCaseUnblockedSensor(task_id="timeout_poke", deferrable=False, **common)
    DebituraCaseUnblockedSensor(task_id="timeout_soft_fail", deferrable=False, soft_fail=True, **common)
    DebituraCaseUnblockedSensor(task_id="timeout_deferred", deferrable=True, **common)
    DebituraCaseUnblockedSensor(
        task_id="missing_case", creditor_reference="INV-DOES-NOT-EXIST", poke_interval=1, timeout=600, deferrable=False
    )
