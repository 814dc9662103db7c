"""One case gone, everyone else answered (issue 11 item 2), against the real sandbox.

A case merged or deleted while the queue still lists its task answers 404 on its chat read or post.
The reply operator must skip and report that case, answer the others, fail the Airflow task at the end
(so alerts and retries work) and never re-post on the retry. On main the first 404 raised at once and
no other case got its reply, on every retry.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers.context import FakeTI

from airflow_provider_debitura.operators import DebituraReplyToChatTasksOperator
from airflow_provider_debitura.replies import DebituraReplyCasesFailedError

POSTS = "POST /cases/{id}/chats"


def run(sb: Any) -> tuple[dict[str, Any] | None, FakeTI, BaseException | None]:
    ti = FakeTI()
    op = DebituraReplyToChatTasksOperator(task_id="reply", reply_template="Noted for {{ case.creditorReference }}.")
    try:
        return op.execute({"ti": ti}), ti, None
    except DebituraReplyCasesFailedError as exc:
        return None, ti, exc


def creditor_messages(sb: Any, ref: str) -> int:
    return sum(1 for c in sb.state.dump()["chats"][sb.state.case_id(ref)] if c["role"] == 1)


@pytest.fixture
def demo(debitura_conn):
    sb = debitura_conn
    assert sb.control("PUT", "/config", json={"chatSolveDelaySeconds": 3600}).status_code == 200
    return sb


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_case_that_answers_404_is_reported_and_the_others_are_answered(demo, method: str) -> None:
    gone = demo.state.case_id("INV-1002")
    rule = {"kind": "status", "status": 404, "method": method, "path": f"/cases/{gone}/chats"}
    assert demo.control("PUT", "/faults", json={"rules": [rule]}).status_code == 200

    report, ti, error = run(demo)
    assert report is None and isinstance(error, DebituraReplyCasesFailedError)
    assert "INV-1002" in str(error) and "merged or deleted" in str(error) and gone in str(error)
    pushed = ti.xcom["return_value"]  # the report stays readable on the failed task instance
    assert [f["case_id"] for f in pushed["failed"]] == [gone] and pushed["failed"][0]["status"] == 404
    assert {r["creditor_reference"] for r in pushed["replied"]} == {"INV-1003"}
    assert creditor_messages(demo, "INV-1003") == 1 and creditor_messages(demo, "INV-1002") == 0

    assert demo.control("DELETE", "/faults").status_code == 200
    retry, _, error = run(demo)  # the task's retry, once the case answers again
    assert error is None and retry is not None
    assert {r["creditor_reference"] for r in retry["replied"]} == {"INV-1002"}
    assert creditor_messages(demo, "INV-1003") == 1 and creditor_messages(demo, "INV-1002") == 1


def test_a_task_with_no_usable_action_is_reported_never_called(demo) -> None:
    made = demo.control(
        "POST",
        "/tasks",
        json={"type": "MoreInfoNeeded", "caseCreditorReference": "INV-1005", "action": {"method": None, "path": None}},
    )
    assert made.status_code == 201, made.text
    demo.control("DELETE", "/requests")
    report, _, error = run(demo)
    assert error is None and report is not None
    [human] = report["needs_human"]
    assert human["task_id"] == made.json()["id"] and "no action" in human["reason"]
    paths = [r["path"] for r in demo.control("GET", "/requests").json()]
    inv1005 = demo.state.case_id("INV-1005")
    assert not any(inv1005 in p for p in paths)  # neither read nor posted: nothing to do there
    assert demo.control("GET", "/counters").json()[POSTS] == 2  # INV-1002 and INV-1003 answered
