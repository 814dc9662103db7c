"""Human handoff end to end: real Airflow (``airflow dags test``), the sandbox, and a person's answer given the
way the UI gives it, through a real ``airflow api-server`` on the same metadata DB (``PATCH .../hitlDetails``).

Each test counts the sandbox's requests: the handoff's cost is part of its contract (docs/human-in-the-loop.md).
"""

from __future__ import annotations

import pytest
from helpers.api_server import form_values, run_dag_async, run_until_request
from helpers.sandbox import counters as request_counts

from airflow_provider_debitura.hitl.compat import HITL_AVAILABLE, MIN_AIRFLOW

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("hitl"),  # one api-server for the HITL modules, on one pytest-xdist worker
    pytest.mark.timeout(900),  # a real api-server and DAG runs on a shared 2-core machine
    pytest.mark.skipif(not HITL_AVAILABLE, reason=f"Human-in-the-loop needs Airflow {MIN_AIRFLOW}+"),
]

CASE_TASKS = "GET /cases/{id}/tasks"
RUN_TIMEOUT = 300


def _open_task(sandbox, type_name: str) -> dict:
    [task] = [t for t in sandbox.state.list_tasks("Open") if t["type"] == type_name]
    return task


def _report(result) -> dict:
    assert result.run_state == "success", result.explain()
    [report] = result.mapped_xcoms("handoff")
    return report


def test_done_while_still_open_asks_again_then_done(airflow_env, api, sandbox) -> None:
    review = _open_task(sandbox, "ReviewPartner")
    run, request = run_until_request(api, "hitl_handoff_wait", sandbox.conn_json(), RUN_TIMEOUT)
    assert request["options"] == ["Done", "Can't do"]
    assert request["subject"] == "Review partner: Review your collection partner (case INV-1004)"
    assert f"**[Open in Debitura]({review['solutionUrl']})**" in request["body"]

    assert api.answer(request, ["Done"]).status_code == 200  # ... but Debitura still shows it open
    # Re-opened: Airflow keeps the text as first written, which is still true (the one task it lists is open)
    [again] = api.wait_for_request("hitl_handoff_wait", timeout=RUN_TIMEOUT, run=run)
    assert again["task_instance"]["task_id"] == "handoff" and again["task_instance"]["try_number"] == 1
    assert (again["subject"], again["body"]) == (request["subject"], request["body"])
    assert "opens again after **Done** only while Debitura still shows this task open" in again["body"]

    sandbox.control("POST", f"/tasks/{review['id']}/solve")  # now someone resolves it in the app
    assert api.answer(again, ["Done"], {"note": "Partner reviewed"}).status_code == 200
    result = run.result(timeout=RUN_TIMEOUT)
    report = _report(result)
    assert report["outcome"] == "done" and report["rounds"] == 2 and report["still_open"] == []
    assert report["note"] == "Partner reviewed" and report["responded_by"]["name"]
    assert result.xcom("summarise") == ["done"]
    assert result.xcom("handoff", key="_link_DebituraResolveLink", map_index=0) == review["solutionUrl"]
    assert "but Debitura still shows 1 still open" in result.output + airflow_env.task_logs("hitl_handoff_wait")
    counters = request_counts(sandbox)
    # one check before asking, one per "Done" answer; the listing is one page (one request)
    assert counters[CASE_TASKS] == 3 and counters["GET /tasks"] == 1
    assert "POST /cases/{id}/chats" not in counters
    assert api.pending("hitl_handoff_wait") == []


def test_cant_do_lets_the_dag_go_on(api, sandbox) -> None:
    run, request = run_until_request(api, "hitl_handoff_wait", sandbox.conn_json(), RUN_TIMEOUT)
    assert api.answer(request, ["Can't do"], {"note": "Needs the CFO"}).status_code == 200
    report = _report(run.result(timeout=RUN_TIMEOUT))
    assert report["outcome"] == "cant_do" and report["note"] == "Needs the CFO"
    assert [t["type"] for t in report["tasks"]] == ["ReviewPartner"] and len(report["still_open"]) == 1
    assert request_counts(sandbox)[CASE_TASKS] == 1  # no check after "Can't do"
    assert _open_task(sandbox, "ReviewPartner")["status"] == "Open"


def test_solved_in_debitura_closes_the_request_and_the_dag_goes_on(api, sandbox) -> None:
    review = _open_task(sandbox, "ReviewPartner")
    run, request = run_until_request(api, "hitl_handoff_watch", sandbox.conn_json(), RUN_TIMEOUT)
    checks_before = request_counts(sandbox)[CASE_TASKS]
    sandbox.control("POST", f"/tasks/{review['id']}/solve")  # fixed in the app; nobody answers in Airflow
    report = _report(run.result(timeout=RUN_TIMEOUT))
    assert report["outcome"] == "cleared_in_debitura" and report["chosen_option"] == "Done"
    assert report["responded_by"] is None and report["timed_out"] is False
    # The request is answered, not left pending: Required Actions no longer lists it.
    detail = api.detail(request)
    assert detail["response_received"] is True and detail["chosen_options"] == ["Done"]
    assert detail["params_input"]["note"].startswith("Closed by Airflow: Debitura shows this task solved")
    assert api.pending("hitl_handoff_watch") == []
    assert api.hitl_details("hitl_handoff_watch", response_received=False) == []
    # every check is one request (one case); the last one saw the task gone
    checks = request_counts(sandbox)[CASE_TASKS]
    assert checks >= checks_before + 1 and checks == report["checks"]


def test_response_timeout_without_answer_fails_the_handoff(airflow_env, api, sandbox) -> None:
    run = run_dag_async(airflow_env, "hitl_handoff_timeout", conn_json=sandbox.conn_json(), timeout=RUN_TIMEOUT)
    api.wait_for_request("hitl_handoff_timeout", timeout=RUN_TIMEOUT, run=run)
    result = run.result(timeout=RUN_TIMEOUT)
    assert result.states["handoff[0]"] == "failed", result.explain()
    assert result.xcom("summarise") == []
    logs = result.output + airflow_env.task_logs("hitl_handoff_timeout")
    assert "HITLTimeoutError" in logs
    # one check before asking, one last check at the timeout (Debitura might have cleared it meanwhile)
    assert request_counts(sandbox)[CASE_TASKS] == 2
    assert api.pending("hitl_handoff_timeout") == []


def test_example_dag_replies_then_hands_the_rest_over_per_case(api, sandbox) -> None:
    [bank] = [t for t in sandbox.state.list_tasks("Open") if t["type"] == "AssignBankAccount"]
    sandbox.control("POST", f"/tasks/{bank['id']}/solve")  # the demo clears it after 5 s anyway: now, for sure
    review, validation = _open_task(sandbox, "ReviewPartner"), _open_task(sandbox, "CaseValidationNeedsInfo")
    dag_id = "example_debitura_triage_with_approval"
    run = run_dag_async(api.env, dag_id, conn_json=sandbox.conn_json(), timeout=RUN_TIMEOUT)
    # The example asks for approval of its replies first (test_hitl_approval_e2e has what it posts).
    [approval] = api.wait_for_request(dag_id, task_id="approve_replies", timeout=RUN_TIMEOUT, run=run)
    assert api.answer(approval, ["Approve"], form_values(approval)).status_code == 200
    [request] = api.wait_for_request(dag_id, task_id="hand_to_a_person", timeout=RUN_TIMEOUT, run=run)
    assert request["subject"] == "2 Debitura tasks on case INV-1004"
    assert review["solutionUrl"] in request["body"] and validation["solutionUrl"] in request["body"]

    assert (
        "only while Debitura still shows every one of them open: if you see it again, they all are" in (request["body"])
    )

    sandbox.control("POST", f"/tasks/{review['id']}/solve")
    assert api.answer(request, ["Done"]).status_code == 200  # CaseValidationNeedsInfo is still open
    # Issue 21 item 6: Airflow would re-open the request with its first text, listing the solved ReviewPartner as
    # open; so it is not re-opened: the rest is reported (still_open) for a new request.
    result = run.result(timeout=RUN_TIMEOUT)
    assert result.run_state == "success", result.explain()
    [report] = result.mapped_xcoms("hand_to_a_person")
    assert report["outcome"] == "partly_done" and report["rounds"] == 1 and report["still_open"] == [validation["id"]]
    assert api.detail(request)["response_received"] is True  # answered, not re-opened with a list out of date
    assert result.xcom("report")["handoffs"] == {"partly_done": 1}
    assert request_counts(sandbox)["POST /cases/{id}/chats"] == 2  # the auto-replies, one per chat case
    assert api.pending(dag_id) == []
