"""The one-command demo: the example DAGs in a real Airflow against the embedded Debitura sandbox.

Starts the sandbox on a free loopback port, prepares a throwaway SQLite ``AIRFLOW_HOME`` (``.airflow-demo/``),
runs each example DAG with ``airflow dags test``, prints what happened, stops the sandbox. Exit status 0
only when every DAG run succeeded. Run it through ``make demo``, which also builds the virtualenv.

The ``demo`` scenario holds its own timing rule: the account-level AssignBankAccount blocker clears 5 s after
the first gate check that sees it, so the gate visibly waits however long Airflow takes to start.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # a script, not a test: the harness lives with the tests

from helpers.airflow_harness import AirflowEnv, DagRunResult  # noqa: E402

from airflow_provider_debitura.sandbox import SandboxServer  # noqa: E402

GATE = "example_debitura_case_gate"
TRIAGE = "example_debitura_task_triage"


def line(text: str = "") -> None:
    print(text, flush=True)


def run_examples(env: AirflowEnv) -> tuple[list[DagRunResult], dict[str, int]]:
    """Both example DAGs against one sandbox, loaded once: the triage sees the queue the gate left."""
    with SandboxServer(scenario="demo") as sandbox:
        line(f"Debitura sandbox listening on {sandbox.url} (loopback only, demo scenario)")
        results = []
        for dag_id in (GATE, TRIAGE):
            line(f"Running {dag_id} with 'airflow dags test' ...")
            result = env.run_dag(dag_id, conn_json=sandbox.conn_json())
            results.append(result)
            if result.returncode != 0 or result.run_state != "success":
                line(result.explain())
        return results, sandbox.control("GET", "/_sandbox/counters").json()


def report_gate(gate: DagRunResult) -> None:
    if gate.run_state != "success":
        line(f"Case gate ({GATE}): FAILED ({gate.states})")
        return
    record = gate.xcom("wait_until_unblocked")
    line(
        f"Case gate ({GATE}): waited {gate.durations.get('wait_until_unblocked', 0):.1f} s, "
        f"{record['checks']} check(s), opened at {record['unblocked_at']}."
    )
    for task in record["blocked_by_on_first_check"] or []:
        line(f"  blocked at first by {task.get('type')} {task.get('id')} -> {task.get('solutionUrl')}")
    line(f"  then export_case ran: {gate.xcom('export_case')}")


def report_triage(triage: DagRunResult) -> None:
    if triage.run_state != "success":
        line(f"Task triage ({TRIAGE}): FAILED ({triage.states})")
        return
    report = triage.xcom("auto_reply")
    humans = triage.xcom("list_human_tasks")
    messages = {item["chat_message_id"] for item in report["replied"]}
    line(f"Task triage ({TRIAGE}):")
    line(f"  chat tasks answered: {len(report['replied'])}, with {len(messages)} chat message(s) (one per case)")
    for item in report["replied"]:
        case = item.get("creditor_reference") or item["case_id"]
        line(f"    task {item['task_id'][:8]}… on case {case:<10} -> chat message {item['chat_message_id']}")
    for item in report["skipped"]:
        line(f"  skipped {item['task_id']}: {item['reason']}")
    digest = triage.states.get("notify_humans")
    line(f"  left for humans: {humans['total']}, told in one digest (notify_humans: {digest})")
    for item in humans["oldest"]:
        line(f"    {item['type']:<26} {item['solutionUrl']}")


def main() -> int:
    started = time.monotonic()
    home = ROOT / ".airflow-demo"
    shutil.rmtree(home, ignore_errors=True)
    env = AirflowEnv(home, ROOT / "example_dags")
    line(f"Preparing a throwaway Airflow home in {home} (SQLite) ...")
    env.migrate()
    results, counters = run_examples(env)
    line()
    line("=" * 78)
    line("What happened")
    line("=" * 78)
    report_gate(results[0])
    report_triage(results[1])
    line(
        f"Sandbox saw {counters.get('total', 0)} API request(s): "
        + ", ".join(f"{k} x{v}" for k, v in sorted(counters.items()) if k != "total")
    )
    ok = all(r.returncode == 0 and r.run_state == "success" for r in results)
    line(f"Demo {'succeeded' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s (after installation).")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
