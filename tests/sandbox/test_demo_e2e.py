"""The demo blocker's one rule in a real Airflow: the case-gate example waits on it with no helper event,
and in ``demo-ui`` every later run (20 s or more after the last one saw it clear) waits again."""

from __future__ import annotations

import pytest

from airflow_provider_debitura.sandbox import SandboxServer

pytestmark = pytest.mark.e2e

GATE = "example_debitura_case_gate"


def _run_gate(airflow_env, sb: SandboxServer) -> dict:
    result = airflow_env.run_dag(GATE, conn_json=sb.conn_json())
    assert result.run_state == "success", result.explain()
    record = result.xcom("wait_until_unblocked")
    assert record["checks"] >= 2, record
    assert [t["type"] for t in record["blocked_by_on_first_check"]] == ["AssignBankAccount"], record
    return record


@pytest.mark.timeout(400)
def test_demo_gate_waits_with_the_scenario_alone(airflow_env) -> None:
    with SandboxServer(scenario="demo") as sb:
        sb.state.advance_clock(60)  # however long the sandbox ran before the first check
        _run_gate(airflow_env, sb)


@pytest.mark.timeout(600)
def test_demo_ui_gate_waits_again_on_a_later_run(airflow_env) -> None:
    with SandboxServer(scenario="demo-ui") as sb:
        first = _run_gate(airflow_env, sb)
        sb.state.advance_clock(30)  # a user triggers the next run some time later
        second = _run_gate(airflow_env, sb)
        solved = [t for t in sb.state.list_tasks("Solved") if t["type"] == "AssignBankAccount"]
        assert len(solved) == 2
        assert first["blocked_by_on_first_check"][0]["id"] != second["blocked_by_on_first_check"][0]["id"]
