"""The one-command demo: the example DAGs in a real Airflow against the embedded Debitura sandbox.

Starts the sandbox on a free loopback port, prepares a throwaway SQLite ``AIRFLOW_HOME`` (``.airflow-demo/``),
runs each example DAG with ``airflow dags test``, prints what happened, stops the sandbox. Exit status 0
only when every DAG run succeeded. Run it through ``make demo``, which also builds the virtualenv.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from airflow_harness import AirflowEnv  # noqa: E402

from airflow_provider_debitura.sandbox import SandboxServer  # noqa: E402

DEMO_SCENARIO = ROOT / "airflow_provider_debitura" / "sandbox" / "scenarios" / "demo.json"
GATE = "example_debitura_case_gate"
TRIAGE = "example_debitura_task_triage"


def line(text: str = "") -> None:
    print(text, flush=True)


def clear_bank_account_after_first_check(sandbox: SandboxServer, seconds: float = 5) -> None:
    """The demo scenario clears its AssignBankAccount 5 s after loading, which is less than Airflow takes to
    start a DAG run; here the 5 s count from the gate's first check instead, so the gate visibly waits."""
    scenario = json.loads(DEMO_SCENARIO.read_text())
    (blocker,) = [t for t in scenario["tasks"] if t["type"] == "AssignBankAccount"]
    blocker.pop("solveAfterSeconds", None)
    sandbox.control("POST", "/_sandbox/scenario", json=scenario)
    (task,) = [t for t in sandbox.state.list_tasks("Open") if t["type"] == "AssignBankAccount"]
    sandbox.control(
        "POST",
        "/_sandbox/events",
        json={
            "at": {"afterRequests": {"method": "GET", "path": "/cases/{id}/tasks", "count": 1}},
            "action": {"type": "solveTask", "taskId": task["id"], "afterSeconds": seconds},
        },
    )


def main() -> int:
    started = time.monotonic()
    home = ROOT / ".airflow-demo"
    shutil.rmtree(home, ignore_errors=True)
    env = AirflowEnv(home, ROOT / "example_dags")
    line(f"Preparing a throwaway Airflow home in {home} (SQLite) ...")
    env.migrate()

    with SandboxServer(scenario="demo") as sandbox:
        line(f"Debitura sandbox listening on {sandbox.url} (loopback only, demo scenario)")
        results = []
        for dag_id in (GATE, TRIAGE):
            sandbox.control("POST", "/_sandbox/reset", json={"scenario": "demo"})
            if dag_id == GATE:
                clear_bank_account_after_first_check(sandbox)
            line(f"Running {dag_id} with 'airflow dags test' ...")
            result = env.run_dag(dag_id, conn_json=sandbox.conn_json())
            results.append(result)
            if result.returncode != 0 or result.run_state != "success":
                line(result.explain())
        counters = sandbox.control("GET", "/_sandbox/counters").json()

    gate, triage = results
    line()
    line("=" * 78)
    line("What happened")
    line("=" * 78)
    if gate.run_state == "success":
        record = gate.xcom("wait_until_unblocked")
        line(
            f"Case gate ({GATE}): waited {gate.durations.get('wait_until_unblocked', 0):.1f} s, "
            f"{record['checks']} check(s), opened at {record['unblocked_at']}."
        )
        for task in record["blocked_by_on_first_check"]:
            line(f"  blocked at first by {task.get('type')} {task.get('id')} -> {task.get('solutionUrl')}")
        line(f"  then export_case ran: {gate.xcom('export_case')}")
    else:
        line(f"Case gate ({GATE}): FAILED ({gate.states})")
    if triage.run_state == "success":
        listed = triage.xcom("list_open_tasks")
        report = triage.xcom("auto_reply")
        by_id = {task["id"]: task for task in listed}
        messages = {item["chat_message_id"] for item in report["replied"]}
        line(f"Task triage ({TRIAGE}): {len(listed)} open task(s) listed.")
        line(f"  chat tasks answered: {len(report['replied'])}, with {len(messages)} chat message(s) (one per case)")
        for item in report["replied"]:
            task = by_id.get(item["task_id"], {})
            line(
                f"    {task.get('type', '?'):<20} on case {task.get('caseReference') or item['case_id']}"
                f" -> chat message {item['chat_message_id']}"
            )
        for item in report["skipped"]:
            line(f"  skipped {item['task_id']}: {item['reason']}")
        line(f"  left for humans: {len(report['needs_human'])}")
        for item in report["needs_human"]:
            line(f"    {item['type']:<26} {item['solution_url']}")
        mapped = [s for name, s in triage.states.items() if name.startswith("notify_human[")]
        line(f"  notify_human mapped into {len(mapped)} task(s), states: {sorted(set(mapped))}")
    else:
        line(f"Task triage ({TRIAGE}): FAILED ({triage.states})")
    line(
        f"Sandbox saw {counters.get('total', 0)} API request(s): "
        + ", ".join(f"{k} x{v}" for k, v in sorted(counters.items()) if k != "total")
    )
    ok = all(r.returncode == 0 and r.run_state == "success" for r in results)
    line(f"Demo {'succeeded' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s (after installation).")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
