"""Draft now, post later (the flow of a reply approved by a person), against the real sandbox.

``draft`` plans and renders without posting; the drafts go through JSON (as through XCom), a person
edits some text, and ``post`` sends them exactly once, re-checking each case (its history and its open
tasks) first.
"""

from __future__ import annotations

import json
from typing import Any

from helpers.context import task_context

from airflow_provider_debitura.operators import DebituraReplyToChatTasksOperator
from airflow_provider_debitura.replies import CaseDraft

POSTS = "POST /cases/{id}/chats"


def operator() -> DebituraReplyToChatTasksOperator:
    return DebituraReplyToChatTasksOperator(task_id="reply", reply_template="Draft for {{ case.creditorReference }}")


def creditor_messages(sb: Any, ref: str) -> list[str]:
    return [c["message"] for c in sb.state.dump()["chats"][sb.state.case_id(ref)] if c["role"] == 1]


def test_draft_edit_then_post_once(debitura_conn) -> None:
    sb = debitura_conn
    sb.control("PUT", "/config", json={"chatSolveDelaySeconds": 3600})
    op = operator()
    drafts, report = op.draft(task_context(op))
    assert sb.control("GET", "/counters").json().get(POSTS, 0) == 0 and report.replied == []
    payload = json.loads(json.dumps([d.to_dict() for d in drafts]))  # through XCom
    assert [d["creditor_reference"] for d in payload] == ["INV-1002", "INV-1003"]

    approved = [CaseDraft.from_dict(d) for d in payload]
    approved = [approved[0].with_message("Edited by Olivia: the address is confirmed."), approved[1]]
    posted = op.post(approved)
    assert creditor_messages(sb, "INV-1002") == ["Edited by Olivia: the address is confirmed."]
    assert creditor_messages(sb, "INV-1003") == ["Draft for INV-1003"]
    assert len(posted.replied) == 3 and posted.failed == []

    again = op.post(approved)  # e.g. the posting task retried with the same drafts
    assert again.replied == [] and len(again.skipped) == 3
    assert sb.control("GET", "/counters").json()[POSTS] == 2


def test_post_rechecks_what_changed_while_the_drafts_waited(debitura_conn) -> None:
    sb = debitura_conn
    op = operator()
    drafts, _ = op.draft(task_context(op))
    inv1002, inv1003 = drafts
    with sb.client() as client:  # a teammate answers INV-1002 in the meantime
        client.post(
            f"/cases/{inv1002.case_id}/chats", json={"message": "Done - Frank", "userEmail": "finance@example.com"}
        )
    task = inv1003.tasks[0].id  # and one of INV-1003's tasks is solved by other means
    assert sb.control("POST", f"/tasks/{task}/solve").status_code == 200

    report = op.post(drafts)
    assert creditor_messages(sb, "INV-1002") == ["Done - Frank"]
    # the reply was drafted for both of INV-1003's tasks: with one solved, its open tasks differ (issue 21 item 2)
    assert creditor_messages(sb, "INV-1003") == []
    reasons = {s["task_id"]: s["reason"] for s in report.skipped}
    assert f"task {task} was solved since the draft (no longer open in Debitura)" in reasons[task]
    assert reasons[inv1003.tasks[1].id] == reasons[task]
    assert reasons[inv1002.tasks[0].id].startswith("answered since this run read the case")
    assert report.replied == []
