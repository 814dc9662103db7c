"""The operators' request-budget preflight (issue 24): a run that would not fit fails before the requests it cannot
afford, with a message naming the numbers and what to change. Against the real sandbox; the budget is turned on
by its extras (``budget_max_wait=0``: nothing waits, so a run that does not fit now fails at once)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.context import FakeTI

from airflow_provider_debitura.hooks import budget as budget_module
from airflow_provider_debitura.hooks.budget import DebituraBudgetError
from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.operators import DebituraListTasksOperator, DebituraReplyToChatTasksOperator
from airflow_provider_debitura.operators.reply_to_chat import reply_cost


@pytest.fixture(autouse=True)
def fresh_budgets() -> Iterator[None]:
    budget_module.reset_budgets()
    yield
    budget_module.reset_budgets()


def budgeted(sb: Any, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    conn = json.loads(sb.conn_json())
    conn.setdefault("extra", {}).update({"budget_max_wait": 0, **extra})
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))


def sent(sb: Any) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in sb.control("GET", "/requests").json()]


def test_the_list_operator_fails_before_its_first_request_when_the_budget_is_spent(sandbox, monkeypatch):
    budgeted(sandbox, monkeypatch, budget_per_minute=3)
    with DebituraHook() as hook:
        for _ in range(3):
            hook.get_me()
    sandbox.control("DELETE", "/requests")
    op = DebituraListTasksOperator(task_id="list")
    with pytest.raises(DebituraBudgetError) as err:
        op.execute({"ti": FakeTI()})
    assert "listing the Open tasks of the whole account needs about 1 request;" in str(err.value)
    assert "allows 0 more" in str(err.value) and "budget_per_minute=3" in str(err.value)
    assert sent(sandbox) == []


def test_the_list_operator_fails_after_the_size_and_before_the_bulk(sandbox, monkeypatch):
    sandbox.control("POST", "/scenario", {"name": "large:1500"})  # 15 pages
    sandbox.control("DELETE", "/requests")
    budgeted(sandbox, monkeypatch, budget_per_minute=12)
    with pytest.raises(DebituraBudgetError, match=r"1,500 tasks, 16 more pages\) needs about 16 requests"):
        DebituraListTasksOperator(task_id="list").execute({"ti": FakeTI()})
    assert sent(sandbox) == ["GET /tasks"]  # page 1 told the size; nothing more


CHAT = ["ReplyToChat", "ClientInputRequired", "MoreInfoNeeded"]


def test_the_reply_operator_fails_after_its_listing_when_the_replies_would_not_fit(debitura_conn, monkeypatch):
    """The listing tells how many cases need an answer; reading and posting them must fit before the first read."""
    with DebituraHook() as hook:  # not budgeted yet (loopback, no extra): count the demo's chat cases
        cases = len(
            {t.case_id for t in hook.list_tasks(types=["ReplyToChat", "ClientInputRequired", "MoreInfoNeeded"])}
        )
    need = reply_cost(cases, None, read_case=False, posting=True)
    assert cases >= 2 and need == 3 * cases + 1
    sandbox = debitura_conn
    sandbox.control("DELETE", "/requests")
    budgeted(sandbox, monkeypatch, budget_per_minute=need)  # the listing's request leaves need - 1
    op = DebituraReplyToChatTasksOperator(task_id="reply", reply_template="Thanks, we are on it.")
    with pytest.raises(DebituraBudgetError) as err:
        op.execute({"ti": FakeTI()})
    assert f"answering {cases} case(s) after the listing needs about {need} requests" in str(err.value)
    assert f"allows {need - 1} more" in str(err.value) and "max_replies" in str(err.value)
    assert sent(sandbox) == ["GET /tasks"]  # no history read, no post

    sandbox.control("DELETE", "/requests")
    report = DebituraReplyToChatTasksOperator(
        task_id="reply", reply_template="Thanks, we are on it.", max_replies=1
    ).execute({"ti": FakeTI()})
    assert len(report["replied"]) == 1  # a smaller run fits what is left


def test_the_reply_cost_formula() -> None:
    assert reply_cost(0, None, read_case=True, posting=True) == 0
    assert reply_cost(580, 50, read_case=True, posting=True) == 50 + 50 + 101
    assert reply_cost(3, None, read_case=False, posting=False) == 3
