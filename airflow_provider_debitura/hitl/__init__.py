"""The human loop: everything the Human-in-the-loop operators and their trigger share (Airflow 3.1+).

- :mod:`~airflow_provider_debitura.hitl.compat`: Airflow's HITL surface behind one version gate.
- :mod:`~airflow_provider_debitura.hitl.handoff`: the tasks handed to a person, and the Debitura check of them.
- :mod:`~airflow_provider_debitura.hitl.request`: what a handoff request shows.
- :mod:`~airflow_provider_debitura.hitl.markdown`: outside text shown inert in a request, the provider's links.

The operators stay where users import them (``airflow_provider_debitura.operators.human_handoff``,
``...operators.reply_approval``), the trigger in ``airflow_provider_debitura.triggers.human_handoff``.
"""

from __future__ import annotations

from airflow_provider_debitura.hitl.compat import HITL_AVAILABLE, HITL_UNAVAILABLE_REASON, MIN_AIRFLOW

__all__ = ["HITL_AVAILABLE", "HITL_UNAVAILABLE_REASON", "MIN_AIRFLOW"]
