"""DebituraListTasksOperator against the real sandbox server (HTTP on loopback)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers.context import FakeTI

from airflow_provider_debitura.exceptions import DebituraConfigError, DebituraNotFoundError
from airflow_provider_debitura.links import SOLUTION_URL_XCOM_KEY
from airflow_provider_debitura.models import Task
from airflow_provider_debitura.operators import DebituraListTasksOperator
from airflow_provider_debitura.operators.list_tasks import summary_table


def ctx() -> dict[str, Any]:
    return {"ds": "2026-11-27", "params": {}, "ti": FakeTI()}


def run(**kwargs: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    context = ctx()
    result = DebituraListTasksOperator(task_id="list_tasks", **kwargs).execute(context)
    return result, context["ti"].xcom


def counters(sandbox) -> dict[str, int]:
    return sandbox.control("GET", "/counters").json()


def test_account_scope_returns_every_open_task_as_api_json(debitura_conn) -> None:
    tasks, xcom = run(shape="full")
    json.dumps(tasks)  # XCom-safe
    assert sorted(t["type"] for t in tasks) == sorted(
        [
            "AssignBankAccount",
            "ReplyToChat",
            "ClientInputRequired",
            "MoreInfoNeeded",
            "ReviewPartner",
            "CaseValidationNeedsInfo",
        ]
    )
    first = tasks[0]
    assert {"id", "type", "caseId", "caseReference", "dateCreated", "solutionUrl", "action"} <= set(first)
    assert not any("_" in key for key in first)  # camelCase, as the API sends it
    assert Task.model_validate(first).to_api_dict() == first  # round-trips
    account = [t for t in tasks if t["caseId"] is None]
    assert [t["type"] for t in account] == ["AssignBankAccount"]
    # the link opens the first task a human must resolve
    assert xcom[SOLUTION_URL_XCOM_KEY] == account[0]["solutionUrl"]


def test_filters_types_status_and_resolvable(debitura_conn) -> None:
    tasks, _ = run(task_types=["ReviewPartner", "ReplyToChat"])
    assert sorted(t["type"] for t in tasks) == ["ReplyToChat", "ReviewPartner"]
    tasks, _ = run(task_types="ReviewPartner, ReplyToChat")  # a rendered template is a string
    assert len(tasks) == 2
    tasks, xcom = run(api_resolvable_only="True")
    assert sorted(t["type"] for t in tasks) == ["ClientInputRequired", "MoreInfoNeeded", "ReplyToChat"]
    assert SOLUTION_URL_XCOM_KEY not in xcom  # no human needed among them
    tasks, _ = run(status="Solved")
    assert tasks == []


def test_solved_tasks_after_a_reply(debitura_conn) -> None:
    case_id = debitura_conn.state.case_id("INV-1002")
    with debitura_conn.client() as client:
        client.post(f"/cases/{case_id}/chats", json={"message": "Done", "userEmail": "ops@example.com"})
    tasks, _ = run(status="solved", shape="full")
    assert [(t["type"], t["status"], t["caseId"]) for t in tasks] == [("ReplyToChat", "Solved", case_id)]


def test_case_scope_by_each_identifier(debitura_conn) -> None:
    state = debitura_conn.state
    case_id = state.case_id("INV-1003")
    reference = next(c["reference"] for c in state.dump()["cases"] if c["id"] == case_id)
    for kwargs in ({"creditor_reference": "INV-1003"}, {"case_id": case_id}, {"case_reference": reference}):
        tasks, _ = run(**kwargs)
        assert sorted(t["type"] for t in tasks) == ["ClientInputRequired", "MoreInfoNeeded"], kwargs
        assert {t["caseId"] for t in tasks} == {case_id}


def test_case_scope_can_add_the_account_level_blockers(debitura_conn) -> None:
    tasks, _ = run(creditor_reference="INV-1005")
    assert tasks == []
    tasks, xcom = run(creditor_reference="INV-1005", include_account_level=True)
    assert [t["type"] for t in tasks] == ["AssignBankAccount"]
    assert xcom[SOLUTION_URL_XCOM_KEY] == tasks[0]["solutionUrl"]
    tasks, _ = run(creditor_reference="INV-1003", include_account_level=True, task_types=["MoreInfoNeeded"])
    assert [t["type"] for t in tasks] == ["MoreInfoNeeded"]


def test_every_page_is_read(debitura_conn) -> None:
    scenario = {
        "name": "many",
        "users": [{"firstName": "O", "lastName": "Ops", "email": "ops@example.com"}],
        "cases": [{"creditorReference": "BIG-1"}],
        "tasks": [
            {"type": "ReviewPartner" if i % 2 else "ReplyToChat", "caseCreditorReference": "BIG-1"} for i in range(250)
        ],
    }
    assert debitura_conn.control("POST", "/scenario", json=scenario).status_code == 200
    debitura_conn.control("DELETE", "/requests")
    tasks, _ = run()
    assert len(tasks) == 250
    assert len({t["id"] for t in tasks}) == 250
    assert counters(debitura_conn)["GET /tasks"] >= 3  # 100 per page


def test_unknown_case_is_a_clear_not_found(debitura_conn) -> None:
    with pytest.raises(DebituraNotFoundError, match="NOPE-1"):
        run(creditor_reference="NOPE-1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "Closed"}, "status='Closed' is not a task status"),
        ({"task_types": ["ReplyToChta"]}, "did you mean 'ReplyToChat'"),
        ({"task_types": ["Payment; DROP"]}, "not a well-formed task type"),
        ({"case_id": "INV-1002"}, "case_id='INV-1002' is not a Debitura case id"),
        ({"case_id": "x", "creditor_reference": "INV-1"}, "exactly one of case_id"),
        ({"api_resolvable_only": "perhaps"}, "api_resolvable_only='perhaps' is not a boolean"),
        ({"api_resolvable_only": True, "task_types": ["ReviewPartner"]}, "can never match"),
        ({"debitura_conn_id": " "}, "debitura_conn_id=' ' must name an Airflow connection"),
    ],
)
def test_bad_parameters_fail_before_any_request(debitura_conn, kwargs: dict, message: str) -> None:
    debitura_conn.control("DELETE", "/requests")
    with pytest.raises(DebituraConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(**kwargs)
    assert counters(debitura_conn).get("total", 0) == 0


def test_template_fields_cover_every_parameter() -> None:
    fields = set(DebituraListTasksOperator.template_fields)
    assert fields == {
        "debitura_conn_id",
        "case_id",
        "creditor_reference",
        "case_reference",
        "task_types",
        "status",
        "api_resolvable_only",
        "needs_human_only",
        "include_account_level",
        "shape",
        "batch_size",
        "max_xcom_bytes",
    }


def test_summary_table_counts_types_resolvable_and_account_level() -> None:
    def task(i: int, type_: str, case: str | None) -> Task:
        return Task.model_validate({"id": str(i), "type": type_, "caseId": case, "dateCreated": "2026-01-01T00:00:00Z"})

    table = summary_table(
        [
            task(1, "ReplyToChat", "c"),
            task(2, "ReplyToChat", "c"),
            task(3, "SignContract", None),
            task(4, "Brand", "c"),
        ],
        "Open tasks in the whole account",
    )
    lines = table.splitlines()
    assert lines[0] == "4 Open tasks in the whole account"
    assert any(line.split() == ["ReplyToChat", "2"] for line in lines)
    assert any(line.split() == ["Brand", "1"] for line in lines)
    assert any(line.split() == ["API-resolvable", "2"] for line in lines)
    assert any(line.split() == ["account-level", "1"] for line in lines)
