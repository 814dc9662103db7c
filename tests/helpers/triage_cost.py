"""Requests and XCom bytes of the triage example's two steps on large:5000 (docs/performance.md).

PYTHONPATH=tests .venv/bin/python -m helpers.triage_cost
"""

import json
import os

os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite:////nonexistent/x.db")
from airflow_provider_debitura.operators import DebituraListTasksOperator, DebituraReplyToChatTasksOperator
from airflow_provider_debitura.sandbox import SandboxServer
from helpers.context import task_context

REPLY = "We are on it for case {{ case.creditorReference }} by {{ ds }}."


def main() -> None:
    with SandboxServer(scenario="large:5000", api_key="cost-key-1") as sb:
        os.environ["AIRFLOW_CONN_DEBITURA_DEFAULT"] = sb.conn_json()
        sb.control("PUT", "/config", json={"chatSolveDelaySeconds": 3600})
        sb.control("DELETE", "/requests")
        op = DebituraReplyToChatTasksOperator(task_id="auto_reply", reply_template=REPLY, max_replies=50)
        report = op.execute(task_context(op, ds="2026-11-27"))
        reply_counts = sb.control("GET", "/counters").json()
        sb.control("DELETE", "/requests")
        lo = DebituraListTasksOperator(task_id="list_human_tasks", needs_human_only=True, shape="counts")
        summary = lo.execute(task_context(lo))
        list_counts = sb.control("GET", "/counters").json()
        print("reply", reply_counts, "report bytes", len(json.dumps(report)))
        print("list", list_counts, "summary bytes", len(json.dumps(summary)))


if __name__ == "__main__":
    main()
