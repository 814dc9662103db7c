"""Reply approval end to end: real Airflow (``airflow dags test``), the sandbox, and a person's answer given as the
UI gives it, through a real ``airflow api-server`` (``PATCH .../hitlDetails`` with the form's field values).
Chat posts are counted through the sandbox in each: exactly the intended ones.
"""

from __future__ import annotations

import re

import pytest
from helpers.api_server import form_values, run_until_request
from helpers.sandbox import counters as request_counts

from airflow_provider_debitura.hitl.compat import HITL_AVAILABLE, MIN_AIRFLOW

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("hitl"),  # one api-server for the HITL modules, on one pytest-xdist worker
    pytest.mark.timeout(900),
    pytest.mark.skipif(not HITL_AVAILABLE, reason=f"Human-in-the-loop needs Airflow {MIN_AIRFLOW}+"),
]

POSTS = "POST /cases/{id}/chats"
RUN_TIMEOUT = 300


def _field_of(request: dict, reference: str) -> str:
    [key] = [k for k, p in request["params"].items() if p["schema"]["title"] == f"Reply to {reference}"]
    return key


def _creditor_messages(sandbox, reference: str) -> list[str]:
    chats = sandbox.control("GET", "/state").json()["chats"]
    return [c["message"] for c in chats.get(sandbox.state.case_id(reference), []) if c["role"] == 1]


def _as_read(markdown: str) -> str:
    """The request's Markdown without the escapes that keep outside text inert (backslashes before punctuation,
    zero-width joiners inside link-forming text): the text as a person reads it."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u200d", "")


def _start(api, sandbox, dag_id: str = "hitl_approval"):
    return run_until_request(api, dag_id, sandbox.conn_json(), RUN_TIMEOUT)


def _report(run) -> dict:
    result = run.result(timeout=RUN_TIMEOUT)
    assert result.run_state == "success", result.explain()
    return result.xcom("approve_replies")


def test_approve_as_rendered_posts_each_case_once(api, sandbox) -> None:
    run, request = _start(api, sandbox)
    assert request["options"] == ["Approve", "Reject"] and request["subject"] == "Approve 2 Debitura chat replies"
    body = _as_read(request["body"])
    assert "### 1. INV-1002" in body and "Could you confirm the debtor's current address?" in body
    assert "**Clears:** Reply to chat: Reply to the collection partner" in body
    inv1002 = form_values(request)[_field_of(request, "INV-1002")]
    assert inv1002.startswith('Regarding INV-1002: you wrote "Could you confirm the debtor')
    assert request_counts(sandbox).get(POSTS, 0) == 0  # nothing is posted before the answer

    assert api.answer(request, ["Approve"], form_values(request)).status_code == 200
    report = _report(run)
    assert report["outcome"] == "approved" and report["edited"] == [] and report["responded_by"]["name"]
    assert len(report["replied"]) == 3 and report["skipped"] == []
    assert _creditor_messages(sandbox, "INV-1002") == [inv1002]
    counters = request_counts(sandbox)
    assert counters[POSTS] == 2
    # listing 1; per case: history (draft), history (partner check), history (post), open tasks (post); and one
    # history read after the first post (two runs that started on the same case: issue 20 item 10)
    assert counters["GET /tasks"] == 1 and counters["GET /cases/{id}/chats"] == 2 * 3 + 1
    assert counters["GET /cases/{id}/tasks"] == 2
    assert api.pending("hitl_approval") == []


def test_approve_with_an_edit_rechecks_every_case_before_posting(api, sandbox) -> None:
    inv1005 = sandbox.state.case_id("INV-1005")
    third = sandbox.control(
        "POST", f"/cases/{inv1005}/partner-message", json={"message": "Any news?", "task": "ReplyToChat"}
    ).json()["task"]
    run, request = _start(api, sandbox)
    assert request["subject"] == "Approve 3 Debitura chat replies"
    fields = form_values(request)
    fields[_field_of(request, "INV-1002")] = "Edited by a person: the address is Main Street 1, Aarhus."

    # the queue moves while the request waits
    inv1003 = sandbox.state.case_id("INV-1003")
    sandbox.control("POST", f"/cases/{inv1003}/partner-message", json={"message": "Also: the contract?"})
    sandbox.control("POST", f"/tasks/{third['id']}/solve")

    assert api.answer(request, ["Approve"], fields).status_code == 200
    report = _report(run)
    assert report["outcome"] == "approved" and report["edited"] == ["INV-1002"]
    assert [r["creditor_reference"] for r in report["replied"]] == ["INV-1002"]
    reasons = {s["creditor_reference"]: s["reason"] for s in report["skipped"]}
    assert reasons["INV-1003"].startswith("the partner wrote again")
    assert reasons["INV-1005"] == "no longer open in Debitura"
    assert _creditor_messages(sandbox, "INV-1002") == ["Edited by a person: the address is Main Street 1, Aarhus."]
    assert _creditor_messages(sandbox, "INV-1003") == [] and _creditor_messages(sandbox, "INV-1005") == []
    assert request_counts(sandbox)[POSTS] == 1


def test_reject_posts_nothing(api, sandbox) -> None:
    run, request = _start(api, sandbox)
    assert api.answer(request, ["Reject"], form_values(request)).status_code == 200
    report = _report(run)
    assert report["outcome"] == "rejected" and report["replied"] == []
    assert request_counts(sandbox).get(POSTS, 0) == 0


def test_timeout_posts_nothing(api, sandbox) -> None:
    run, _ = _start(api, sandbox, "hitl_approval_timeout")
    report = _report(run)
    assert report["outcome"] == "timed_out" and report["replied"] == [] and report["responded_by"] is None
    assert request_counts(sandbox).get(POSTS, 0) == 0
    assert api.pending("hitl_approval_timeout") == []


def test_approve_with_an_emptied_field_over_rest_posts_the_others(api, sandbox) -> None:
    """Issue 21, item 3: the UI's own body for an emptied textarea (null) is accepted; that case gets nothing and
    is reported, the other case is posted."""
    run, request = _start(api, sandbox)
    assert all("null" in param["schema"]["type"] for param in request["params"].values())
    fields = form_values(request)
    fields[_field_of(request, "INV-1002")] = None
    assert api.answer(request, ["Approve"], fields).status_code == 200
    report = _report(run)
    assert report["outcome"] == "approved"
    assert {r["creditor_reference"] for r in report["replied"]} == {"INV-1003"}
    assert {s["creditor_reference"]: s["reason"] for s in report["skipped"]} == {
        "INV-1002": "left empty by the approver"
    }
    assert _creditor_messages(sandbox, "INV-1002") == [] and len(_creditor_messages(sandbox, "INV-1003")) == 1
    assert request_counts(sandbox)[POSTS] == 1


def test_the_approval_example_asks_a_person_then_posts(api, sandbox) -> None:
    """Issue 21 item 9: example_debitura_triage_with_approval (what ``make airflow`` offers) asks for approval
    at its first trigger, posts what was approved, and hands the other tasks to a person."""
    from concurrent.futures import Future

    from helpers.api_server import run_dag_async
    from helpers.waiting import wait_until

    dag_id = "example_debitura_triage_with_approval"
    run: Future = run_dag_async(api.env, dag_id, conn_json=sandbox.conn_json(), timeout=RUN_TIMEOUT)
    [request] = api.wait_for_request(dag_id, task_id="approve_replies", timeout=RUN_TIMEOUT, run=run)
    assert request["options"] == ["Approve", "Reject"] and request["subject"] == "Approve 2 Debitura chat replies"
    assert api.answer(request, ["Approve"], form_values(request)).status_code == 200
    handoffs = 0
    while not run.done():
        pending = wait_until(
            lambda: (
                [r for r in api.pending(dag_id) if r["task_instance"]["task_id"] == "hand_to_a_person"] or run.done()
            ),
            timeout=RUN_TIMEOUT,
            what="a handoff request or the end of the run",
        )
        for handoff in pending if isinstance(pending, list) else []:
            assert api.answer(handoff, ["Can't do"], {"note": "later"}).status_code == 200
            handoffs += 1
    result = run.result(timeout=RUN_TIMEOUT)
    assert result.run_state == "success", result.explain()
    replies = result.xcom("approve_replies")
    assert replies["outcome"] == "approved" and len(replies["replied"]) == 3
    assert request_counts(sandbox)[POSTS] == 2 and handoffs >= 1
    assert result.xcom("report")["replies"] == "approved"
