"""The case gate in a real Airflow (``airflow dags test`` on SQLite) against the sandbox."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from importlib.metadata import version
from typing import Any

import pytest
from helpers.airflow_harness import airflow_major
from helpers.sandbox import demo_without_timer

pytestmark = pytest.mark.e2e

AIRFLOW_3_3 = tuple(int(part) for part in version("apache-airflow").split(".")[:2]) >= (3, 3)
"""Airflow 3.3+ has the task state store that keeps the GUID and first blockers across reschedules."""


def _reset(sandbox) -> None:
    sandbox.control("POST", "/reset", {"scenario": "demo"})


def _case_checked(sandbox) -> bool:
    """The gate has checked its case (the worker's first check reads ``GET /cases/{id}/tasks``)."""
    return sandbox.control("GET", "/counters").json().get("GET /cases/{id}/tasks", 0) >= 1


def _queue_read(sandbox) -> bool:
    """The triggerer has read the queue (a full read: only the shared poll makes one)."""
    return any(_full_read(r) for r in sandbox.control("GET", "/requests").json())


def _solve_after(
    sandbox, stop: threading.Event, after: float = 4.0, seen: Callable[[Any], bool] = _case_checked
) -> None:
    """Once ``seen`` holds, let the sandbox clear the account-level task ``after`` s later. Counted from the
    triggerer's first full read (``seen=_queue_read``), the gate's rounds are timed from the triggerer's own
    start, however late its process started on a loaded machine."""
    while not stop.is_set():
        if seen(sandbox):
            task = next(t for t in sandbox.state.dump()["tasks"] if t["type"] == "AssignBankAccount")
            sandbox.control("POST", f"/tasks/{task['id']}/solve", {"afterSeconds": after})
            return
        time.sleep(0.2)


@pytest.mark.parametrize("dag_id", ["sensor_gate_poke", "sensor_gate_deferrable", "sensor_gate_reschedule"])
def test_gate_opens_when_account_level_task_clears(airflow_env, sandbox, dag_id):
    sandbox.control("POST", "/scenario", demo_without_timer())
    sandbox.control("DELETE", "/requests")
    stop = threading.Event()
    helper = threading.Thread(target=_solve_after, args=(sandbox, stop), daemon=True)
    helper.start()
    try:
        result = airflow_env.run_dag(dag_id, conn_json=sandbox.conn_json(), conf={"ref": "INV-1001"})
    finally:
        stop.set()
        helper.join(5)
    assert result.states == {"gate": "success"}, result.explain()
    record = result.xcom("gate")
    assert record["case_id"] == sandbox.state.case_by_creditor_reference("INV-1001")["id"]
    assert record["unblocked_at"].endswith(("+00:00", "Z"))
    logs = result.output + airflow_env.task_logs(dag_id)
    assert "AssignBankAccount [account-level]" in logs
    assert f"Case INV-1001 ({record['case_id']}), check 1: blocked by" in logs
    assert "XCom not found" not in logs  # issue 16: no error line for a normal outcome
    reschedule = dag_id == "sensor_gate_reschedule"
    if reschedule and not AIRFLOW_3_3:
        # Each try is a fresh process and nothing survives it before Airflow 3.3 (XComs are cleared): the
        # first check's blockers are unknown; Airflow 2.11 does not tell a try how many came before it.
        assert record["blocked_by_on_first_check"] is None
    else:
        assert [t["type"] for t in record["blocked_by_on_first_check"]] == ["AssignBankAccount"]
    log = sandbox.control("GET", "/requests").json()
    lookups = [r for r in log if r["path"].startswith("/cases/by-creditor-reference/")]
    if dag_id == "sensor_gate_deferrable":  # the triggerer's checks go through the shared poll
        assert len(lookups) == 1 and record["checks"] >= 2, log
        return
    checks = [r for r in log if r["path"].startswith("/cases/") and r not in lookups]
    assert len(checks) >= 2
    if reschedule and airflow_major() < 3:
        assert record["checks"] == 1  # the last try's own check
    else:
        assert record["checks"] == len(checks), (record, log)
    # The reference is looked up once per task instance: in reschedule mode on Airflow 3.3+ the GUID is kept
    # in the task state store; before 3.3 every try (a fresh operator) looks it up again.
    assert len(lookups) == (len(checks) if reschedule and not AIRFLOW_3_3 else 1), log


def test_gates_that_open_at_their_first_check_log_no_error(airflow_env, sandbox):
    """Issue 16: on Airflow 3 the link's XCom read logged ``ERROR XCom not found`` on every gate try
    without a blocker (opening at the first check, or a check that could not tell)."""
    _reset(sandbox)
    result = airflow_env.run_dag("sensor_gate_at_once", conn_json=sandbox.conn_json())
    assert set(result.states.values()) == {"success"}, result.explain()
    logs = result.output + airflow_env.task_logs("sensor_gate_at_once")
    assert "XCom not found" not in logs
    assert all(result.xcom(task)["checks"] == 1 for task in result.states)


def test_a_reschedule_check_that_could_not_tell_logs_no_error(airflow_env, sandbox):
    _reset(sandbox)
    conn = json.loads(sandbox.conn_json())
    conn["extra"] = {**conn.get("extra", {}), "max_attempts": 1}
    rule = {"kind": "status", "status": 503, "count": 1, "path": "/cases/by-creditor-reference"}
    sandbox.control("PUT", "/faults", {"rules": [rule]})
    result = airflow_env.run_dag("sensor_gate_at_once", conn_json=json.dumps(conn))
    assert set(result.states.values()) == {"success"}, result.explain()
    logs = result.output + airflow_env.task_logs("sensor_gate_at_once")
    assert "could not look the case up" in logs  # the transient lookup error was "still blocked", not a failure
    assert "XCom not found" not in logs


def test_never_fail_skips_a_missing_case_in_every_mode(airflow_env, sandbox):
    """Issue 16: ``never_fail=True`` ended *failed* in deferrable mode (poke mode: skipped)."""
    _reset(sandbox)
    result = airflow_env.run_dag("sensor_gate_never_fail", conn_json=sandbox.conn_json())
    assert result.states == {
        "missing_poke": "skipped",
        "missing_deferrable": "skipped",
        "missing_guid_deferrable": "skipped",
    }, result.explain()


def test_exponential_backoff_is_honoured_when_deferred(airflow_env, sandbox):
    """Issue 16: ``exponential_backoff`` / ``max_wait`` were silently ignored by the trigger (fixed interval)."""
    sandbox.control("POST", "/scenario", demo_without_timer())
    sandbox.control("DELETE", "/requests")
    stop = threading.Event()
    helper = threading.Thread(target=_solve_after, args=(sandbox, stop, 9.0, _queue_read), daemon=True)
    helper.start()
    try:
        result = airflow_env.run_dag("sensor_gate_backoff", conn_json=sandbox.conn_json(), conf={"ref": "INV-1001"})
    finally:
        stop.set()
        helper.join(5)
    assert result.states == {"gate": "success"}, result.explain()
    log = sandbox.control("GET", "/requests").json()
    # The triggerer's rounds: full reads of the (one-page) queue, one per check it made.
    reads = [datetime.fromisoformat(r["time"].replace("Z", "+00:00")) for r in log if _full_read(r)]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(reads)]
    assert len(gaps) >= 3, log
    # After check n the interval is at least poke_interval * 2**(n - 2), capped by max_wait (3 s); the
    # triggerer's first check is check 2. A fixed 1 s interval cannot pass this.
    assert [g >= low - 0.05 for g, low in zip(gaps, (1.0, 2.0, 3.0), strict=False)] == [True] * 3, gaps


def _full_read(request: dict) -> bool:
    return request["path"] == "/tasks" and "type=" not in (request["query"] or "")


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
