"""The case-gate trigger's former module (now :mod:`airflow_provider_debitura.triggers.case_gate`).

Kept for one reason: a trigger deferred before the move is stored in Airflow's metadata database under this
classpath, and resumes through it after an upgrade of the provider. New code imports from ``case_gate``.
"""

from __future__ import annotations

from airflow_provider_debitura.triggers.case_gate import DebituraCaseUnblockedTrigger

__all__ = ["DebituraCaseUnblockedTrigger"]
