"""``shape="counts"``: the list operator's digest from the API's totals (operators/list_counts.py), against the real
sandbox. The request count is the same at 5,000 and 20,000 open tasks and equals the plan's formula; the numbers
equal what ``shape="summary"`` computes from a full read of the same queue."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.context import task_context

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.hooks import budget as budget_module
from airflow_provider_debitura.hooks.budget import DebituraBudgetError
from airflow_provider_debitura.operators import DebituraListTasksOperator
from airflow_provider_debitura.operators.list_counts import OTHER_TYPES, count_plan
from airflow_provider_debitura.operators.list_output import valid_shape

SCOPES: dict[str, dict[str, Any]] = {
    "no filter": {},
    "needs_human_only": {"needs_human_only": True},
    "api_resolvable_only": {"api_resolvable_only": True},
    "task_types": {"task_types": ["SignContract", "Generic", "ReplyToChat"]},
}
COST = {"no filter": 1 + 9, "needs_human_only": 1 + 1 + 6, "api_resolvable_only": 3, "task_types": 3}
"""1 unfiltered request (open scopes) + one per type counted (the chat-driven types' total counts as one)."""
COMPARED = ("total", "by_type", "api_resolvable", "account_level")


@pytest.fixture(autouse=True)
def fresh_budgets() -> Iterator[None]:
    budget_module.reset_budgets()
    yield
    budget_module.reset_budgets()


@pytest.fixture(scope="module")
def large() -> Iterator[Any]:
    from airflow_provider_debitura.sandbox import SandboxServer

    with SandboxServer(scenario="large:5000", api_key="counts-key-5e2a") as sb:
        mp = pytest.MonkeyPatch()
        mp.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", sb.conn_json())
        yield sb
        mp.undo()


def run(**kwargs: Any) -> Any:
    op = DebituraListTasksOperator(task_id="list", max_xcom_bytes=50_000_000, **kwargs)
    return op.execute(task_context(op))


def counted(sb: Any, **kwargs: Any) -> tuple[dict[str, Any], dict[str, int]]:
    """The counts digest and the requests it cost (the sandbox's counters)."""
    sb.control("DELETE", "/requests")
    value = run(shape="counts", **kwargs)
    return value, sb.control("GET", "/counters").json()


def oldest_ids(value: dict[str, Any]) -> list[str]:
    return [r["id"] for r in value["oldest"]]


@pytest.mark.parametrize("size", [5_000, 20_000])
def test_the_cost_is_the_formula_at_any_size_and_the_numbers_are_the_summarys(large, size: int) -> None:
    large.reset(f"large:{size}")
    assert len(large.state.list_tasks("Open")) == size
    for name, scope in SCOPES.items():
        value, counters = counted(large, **scope)
        assert counters == {"GET /tasks": COST[name], "total": COST[name]}, name
        summary = run(shape="summary", **scope)
        assert {k: value[k] for k in COMPARED} == {k: summary[k] for k in COMPARED}, name
        assert value["oldest"] == summary["oldest"] and len(value["oldest"]) == 20, name
        assert value["cases"] is None and value["counted_from"] == "totals"
        assert set(value) == {*summary, "counted_from"}
    assert sum(value["by_type"].values()) == value["total"]


def test_the_plan_and_its_formula() -> None:
    chat = sorted({"ReplyToChat", "ClientInputRequired", "MoreInfoNeeded"})
    human = count_plan(None, None, False, True)
    assert human.status == "Open" and human.chat_total and human.unfiltered and len(human.types) == 6
    assert human.requests == COST["needs_human_only"] and count_plan("Open", None, False, False).requests == 10
    assert count_plan("Solved", chat, True, False).requests == 3
    assert count_plan("Open", ["Generic", "ReplyToChat", "Generic", "PayInvoice"], False, True).types == (
        "Generic",
        "PayInvoice",
    )
    assert count_plan("Open", ["Generic", "ReplyToChat"], True, False).types == ("ReplyToChat",)


def logged(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """What was logged (the task logger writes through structlog to stdout; std logging to caplog)."""
    out = capsys.readouterr()
    return out.out + out.err + caplog.text


def test_the_log_table_says_the_counts_are_from_totals(large, capsys, caplog) -> None:
    large.reset("large:5000")
    with caplog.at_level(logging.INFO):
        value, _ = counted(large, needs_human_only=True)
    text = logged(capsys, caplog)
    assert f"{value['total']} Open tasks in the whole account" in text
    assert "counted from the API's totals (8 requests)" in text


def add(sb: Any, **task: Any) -> dict[str, Any]:
    answer = sb.control("POST", "/tasks", json=task)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_an_unknown_type_needs_a_human_named_when_seen_else_other_types(large) -> None:
    large.reset("large:5000")
    oldest = add(large, type="PayInvoice", caseCreditorReference="LRG-000001", minutesAgo=10**7)
    newest = add(large, type="PayInvoice", caseCreditorReference="LRG-000002")
    add(large, type="BrandNewKind", caseCreditorReference="LRG-000003")
    human, cost = counted(large, needs_human_only=True)
    assert cost["total"] == 8
    summary = run(shape="summary", needs_human_only=True)
    assert summary["by_type"]["PayInvoice"] == 2 and summary["by_type"]["BrandNewKind"] == 1
    # one PayInvoice is among the account's 100 oldest (named), the other two unknown tasks are not (the rest)
    assert human["by_type"]["PayInvoice"] == 1 and human["by_type"][OTHER_TYPES] == 2
    assert human["total"] == summary["total"] == 2100 + 3
    assert oldest_ids(human) == oldest_ids(summary) and oldest_ids(human)[0] == oldest["id"]
    assert newest["id"] not in oldest_ids(human)
    everything, _ = counted(large)
    assert everything["total"] == 5003 and everything["by_type"][OTHER_TYPES] == 2
    resolvable, _ = counted(large, api_resolvable_only=True)
    assert resolvable["total"] == 2900 and "PayInvoice" not in resolvable["by_type"]


def test_a_case_scope_counts_the_tasks_it_read(debitura_conn) -> None:
    scope = {"creditor_reference": "INV-1004", "include_account_level": True, "needs_human_only": True}
    debitura_conn.control("DELETE", "/requests")
    value = run(shape="counts", **scope)
    assert debitura_conn.control("GET", "/counters").json()["total"] == 3  # the case, its tasks, account-level
    summary = run(shape="summary", **scope)
    assert value == {**summary, "counted_from": "tasks"}
    assert value["cases"] == 1 and value["by_type"]["ReviewPartner"] == 1 and value["total"] >= 2


def budgeted(sb: Any, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    conn = json.loads(sb.conn_json())
    conn.setdefault("extra", {}).update({"budget_max_wait": 0, **extra})
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))


def test_the_budget_preflight_refuses_before_any_request(debitura_conn, monkeypatch) -> None:
    debitura_conn.control("DELETE", "/requests")
    budgeted(debitura_conn, monkeypatch, budget_per_minute=7)
    with pytest.raises(DebituraBudgetError) as err:
        run(shape="counts", needs_human_only=True)
    assert "counting the Open tasks of the whole account from the API's totals needs about 8 requests" in str(err.value)
    assert debitura_conn.control("GET", "/requests").json() == []
    budget_module.reset_budgets()
    budgeted(debitura_conn, monkeypatch, budget_per_minute=8)
    assert run(shape="counts", needs_human_only=True)["counted_from"] == "tasks"  # the demo's queue: one page
    assert debitura_conn.control("GET", "/counters").json()["total"] == 1


@pytest.mark.parametrize("scope", list(SCOPES))
def test_a_queue_on_one_page_is_counted_from_that_page_alone(debitura_conn, capsys, caplog, scope) -> None:
    """The demo's queue (fewer than 100 open tasks): the unfiltered page holds every task, so the open scopes cost
    1 request, not 8 or 10, and the digest is the summary's; scopes that name their types still ask per type."""
    summary = run(shape="summary", **SCOPES[scope])
    with caplog.at_level(logging.INFO):
        value, cost = counted(debitura_conn, **SCOPES[scope])
    if scope in ("no filter", "needs_human_only"):
        assert cost == {"GET /tasks": 1, "total": 1}
        assert value == {**summary, "counted_from": "tasks"}
        assert "counted from one page that held every Open task (1 request)" in logged(capsys, caplog)
    else:
        assert cost["total"] == COST[scope] and value["counted_from"] == "totals"
        assert {k: value[k] for k in COMPARED} == {k: summary[k] for k in COMPARED}


def test_a_page_that_holds_a_record_it_cannot_read_is_not_counted_alone(debitura_conn) -> None:
    add(debitura_conn, type="SignContract", minutesAgo=10**7, wire={"dateCreated": "yesterday-ish"})
    value, cost = counted(debitura_conn, needs_human_only=True)
    assert cost["total"] == 8 and value["counted_from"] == "totals"


def test_a_record_the_hook_cannot_read_is_set_aside_and_the_digest_goes_on(debitura_conn, capsys, caplog) -> None:
    bad = add(debitura_conn, type="SignContract", minutesAgo=10**7, wire={"dateCreated": "yesterday-ish"})
    summary = run(shape="summary", needs_human_only=True)
    with caplog.at_level(logging.WARNING):
        value = run(shape="counts", needs_human_only=True)
    assert bad["id"] not in oldest_ids(value) and oldest_ids(value) == oldest_ids(summary)
    # The API's total counts the task; the full read could not use its record.
    assert value["by_type"]["SignContract"] == summary["by_type"].get("SignContract", 0) + 1
    assert value["total"] == summary["total"] + 1
    text = logged(capsys, caplog)
    assert "1 task record(s) could not be read" in text and bad["id"] in text


def test_shape_validation_and_the_xcom_cap(debitura_conn) -> None:
    assert valid_shape(" Counts ") == "counts"
    with pytest.raises(DebituraConfigError, match="records, full, ids, by_case, batches, summary, counts"):
        valid_shape("count")
    debitura_conn.control("DELETE", "/requests")
    op = DebituraListTasksOperator(task_id="list", shape="counts", max_xcom_bytes=200)
    context = task_context(op)
    with pytest.raises(DebituraConfigError, match=r"shape='counts'.*over max_xcom_bytes = 200; nothing was pushed"):
        op.execute(context)
    assert context["ti"].xcom == {}
