"""The case gate in a real Airflow (``airflow dags test`` on SQLite) against the sandbox."""

from __future__ import annotations

import json
import threading
import time
from importlib import resources

import pytest

pytestmark = pytest.mark.e2e


def _reset(sandbox) -> None:
    sandbox.control("POST", "/reset", {"scenario": "demo"})


def _demo_without_timer() -> dict:
    """The demo scenario with its AssignBankAccount left open: ``airflow dags test`` can take longer
    than the demo's 5 s to reach the first check, so the test starts the clock itself."""
    text = resources.files("airflow_provider_debitura.sandbox").joinpath("scenarios/demo.json").read_text()
    scenario = json.loads(text)
    for task in scenario["tasks"]:
        task.pop("solveAfterSeconds", None)
    return scenario


def _solve_after_first_check(sandbox, stop: threading.Event, after: float = 4.0) -> None:
    """Once the gate has checked the case, let the sandbox clear the account-level task ``after`` s later."""
    while not stop.is_set():
        if sandbox.control("GET", "/counters").json().get("GET /cases/{id}/tasks", 0) >= 1:
            task = next(t for t in sandbox.state.dump()["tasks"] if t["type"] == "AssignBankAccount")
            sandbox.control("POST", f"/tasks/{task['id']}/solve", {"afterSeconds": after})
            return
        time.sleep(0.2)


@pytest.mark.parametrize("dag_id", ["sensor_gate_poke", "sensor_gate_deferrable", "sensor_gate_reschedule"])
def test_gate_opens_when_account_level_task_clears(airflow_env, sandbox, dag_id):
    sandbox.control("POST", "/scenario", _demo_without_timer())
    sandbox.control("DELETE", "/requests")
    stop = threading.Event()
    helper = threading.Thread(target=_solve_after_first_check, args=(sandbox, stop), daemon=True)
    helper.start()
    try:
        result = airflow_env.run_dag(dag_id, conn_json=sandbox.conn_json(), conf={"ref": "INV-1001"})
    finally:
        stop.set()
        helper.join(5)
    assert result.states == {"gate": "success"}, result.explain()
    record = result.xcom("gate")
    assert record["case_id"] == sandbox.state.case_by_creditor_reference("INV-1001")["id"]
    assert record["checks"] >= 2, result.explain()
    assert [t["type"] for t in record["blocked_by_on_first_check"]] == ["AssignBankAccount"]
    assert record["unblocked_at"].endswith(("+00:00", "Z"))
    assert "AssignBankAccount [account-level]" in result.output + airflow_env.task_logs(dag_id)
    if dag_id != "sensor_gate_deferrable":  # (the trigger's checks go through the shared poll)
        log = sandbox.control("GET", "/requests").json()
        checks = [r for r in log if r["path"].startswith("/cases/") and "Solved" not in (r["query"] or "")]
        lookups = [r for r in log if r["path"].startswith("/cases/by-creditor-reference/")]
        checks = [r for r in checks if r not in lookups]
        assert record["checks"] == len(checks), (record, log)
        # Reschedule mode: every try is a fresh operator that looks the reference up again, so one
        # lookup per check shows each check really ran in its own (rescheduled) try.
        assert len(lookups) == (len(checks) if dag_id == "sensor_gate_reschedule" else 1), log


def test_timeouts_and_missing_case(airflow_env, sandbox):
    _reset(sandbox)
    result = airflow_env.run_dag("sensor_gate_failures", conn_json=sandbox.conn_json())
    assert result.states == {
        "timeout_poke": "failed",
        "timeout_soft_fail": "skipped",
        "timeout_deferred": "failed",
        "missing_case": "failed",
    }, result.explain()
    logs = result.output + airflow_env.task_logs("sensor_gate_failures")
    assert "INV-DOES-NOT-EXIST" in logs and "404" in logs
