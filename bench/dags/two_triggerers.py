"""Eight deferred case gates, one per case, for ``bench/two_triggerers.py`` (two triggerers on one key).

Every gate checks each second (``backoff=False``: the demand stays at its highest while the run watches), so
the two triggerers together would send far more than the key's minute allows; the request budget decides.
"""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor

GATES = 8

with DAG("two_triggerers", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    for i in range(1, GATES + 1):
        DebituraCaseUnblockedSensor(
            task_id=f"gate_{i}",
            creditor_reference=f"TT-{i}",
            deferrable=True,
            poke_interval=1,
            backoff=False,
            timeout=1_800,
        )
