"""Reading and steering a running sandbox from a test: request counters, open tasks, solving."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def counters(sb: Any) -> dict[str, int]:
    """The sandbox's request counters (``GET /_sandbox/counters``): ``{"total": n, "GET /tasks": n, ...}``."""
    return sb.control("GET", "/counters").json()


def clear_counters(sb: Any) -> None:
    """Forget the request log and counters."""
    sb.control("DELETE", "/requests")


def open_tasks(sb: Any) -> list[dict[str, Any]]:
    """The first 100 open tasks as the API lists them."""
    with sb.client() as client:
        return client.get("/tasks", params={"PageSize": 100}).json()["tasks"]


def account_task_ids(sb: Any) -> list[str]:
    """Ids of the open tasks without a case (account-level and other caseless tasks)."""
    return [t["id"] for t in open_tasks(sb) if t["caseId"] is None]


def solve_all_account_tasks(sb: Any) -> None:
    """Solve every open task without a case."""
    for task_id in account_task_ids(sb):
        sb.control("POST", f"/tasks/{task_id}/solve", {})


def demo_without_timer() -> dict[str, Any]:
    """The demo scenario with its account-level AssignBankAccount left open until a test solves it (the demo
    clears it after 5 s, which a DAG run can take just to reach its first check)."""
    text = resources.files("airflow_provider_debitura.sandbox").joinpath("scenarios/demo.json").read_text()
    scenario = json.loads(text)
    for task in scenario["tasks"]:
        task.pop("solveAfterSeconds", None)
    return scenario
