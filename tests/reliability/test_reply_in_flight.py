"""A reply post that times out while the server is still processing it must not be sent twice.

Found by the fault matrix (latency beyond the timeout on ``POST /cases/{id}/chats``): the operator read
the history at once, did not find the message (the server had not stored it yet), posted again, and the
first post landed a second later: two identical messages to the collection partner.
"""

from __future__ import annotations

import json
import time

import pytest

from airflow_provider_debitura.exceptions import DebituraAmbiguousWriteError
from airflow_provider_debitura.operators import DebituraReplyToChatTasksOperator

LATENCY_S = 1.5


def creditor_messages(sb, ref: str) -> list[dict]:
    return [c for c in sb.state.dump()["chats"][sb.state.case_id(ref)] if c["role"] == 1]


def wait_for_abandoned_post(sb, limit: float = LATENCY_S + 5) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if any(r["method"] == "POST" for r in sb.control("GET", "/requests").json()):
            return
        time.sleep(0.05)
    raise AssertionError("the delayed post never reached the sandbox")


def test_timed_out_post_is_not_posted_again_and_a_rerun_sends_nothing(sandbox, monkeypatch: pytest.MonkeyPatch):
    conn = json.loads(sandbox.conn_json())
    conn["extra"] |= {"timeout": 0.5, "max_attempts": 3}
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))
    sandbox.control("PUT", "/config", json={"chatSolveDelaySeconds": 3600})  # tasks stay open, as on the real API
    rule = {"kind": "latency", "latencyMs": LATENCY_S * 1000, "method": "POST", "path": "/cases/", "count": 1}
    sandbox.control("PUT", "/faults", json={"rules": [rule]})

    def run():
        op = DebituraReplyToChatTasksOperator(task_id="reply", reply_template="Noted.", creditor_reference="INV-1002")
        return op.execute({})

    with pytest.raises(DebituraAmbiguousWriteError, match="ReadTimeout.*Not posting again in this run"):
        run()
    wait_for_abandoned_post(sandbox)
    assert len(creditor_messages(sandbox, "INV-1002")) == 1
    posts = sandbox.control("GET", "/counters").json()["POST /cases/{id}/chats"]
    assert posts == 1

    report = run()  # the re-run finds the late message and sends nothing
    assert report["replied"] == [] and "already answered" in report["skipped"][0]["reason"]
    assert len(creditor_messages(sandbox, "INV-1002")) == 1
