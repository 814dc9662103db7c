"""Helpers for the case-gate tests (the shared fixtures live in tests/conftest.py)."""

from __future__ import annotations

import pytest

from airflow_provider_debitura.sandbox.scenarios import case_id_for


@pytest.fixture
def case_ids() -> dict[str, str]:
    """Demo-scenario creditor references to case GUIDs (stable ids)."""
    return {ref: case_id_for(ref) for ref in ("INV-1001", "INV-1002", "INV-1003", "INV-1004", "INV-1005")}


def counters(sb) -> dict[str, int]:
    return sb.control("GET", "/counters").json()


def clear_counters(sb) -> None:
    sb.control("DELETE", "/requests")


def open_tasks(sb) -> list[dict]:
    with sb.client() as client:
        return client.get("/tasks", params={"PageSize": 100}).json()["tasks"]


def solve_all_account_tasks(sb) -> None:
    for task in open_tasks(sb):
        if task["caseId"] is None:
            sb.control("POST", f"/tasks/{task['id']}/solve", {})
