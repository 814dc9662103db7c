"""The reply operator in the account scope with ``max_replies``: only the listing pages the run needs, each case from
its own read (``replies/pages.py``, docs/operators.md "Cost, in requests"). Against the real sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.context import FakeTI, task_context

from airflow_provider_debitura.hooks import budget as budget_module
from airflow_provider_debitura.hooks.budget import DebituraBudgetError
from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.operators import DebituraReplyToChatTasksOperator
from airflow_provider_debitura.replies import DebituraReplyCasesFailedError
from airflow_provider_debitura.replies.pages import pages_needed
from airflow_provider_debitura.sandbox import SandboxServer

KEY = "pages-needed-key-5b1c"
CASE_TEMPLATE = "We are on it for case {{ case.creditorReference }} by {{ ds }}."
K = 50


def run_reply(sb: SandboxServer, **kw: Any) -> tuple[dict[str, Any], dict[str, int]]:
    """One operator run; its report and the requests it sent, by route."""
    sb.control("DELETE", "/requests")
    op = DebituraReplyToChatTasksOperator(task_id="reply", **{"reply_template": CASE_TEMPLATE, **kw})
    report = op.execute(task_context(op))
    return report, sb.control("GET", "/counters").json()


def ours(sb: SandboxServer) -> list[tuple[str, str]]:
    """``(case id, text)`` of every creditor message in the sandbox."""
    chats = sb.state.dump()["chats"]
    return [(case_id, c["message"]) for case_id, msgs in chats.items() for c in msgs if c["role"] == 1]


def formula(pages: int, examined: int, histories: int, answered: int, case_reads: int) -> int:
    """pages read + E task reads + history reads (E when every examined case still has open tasks) + R + 2K + 1."""
    return pages + examined + histories + case_reads + (2 * answered + 1 if answered else 0)


@pytest.fixture
def conn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def use(sb: SandboxServer) -> SandboxServer:
        monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", sb.conn_json())
        return sb

    yield use


def three_runs(size: int, conn: Any) -> list[dict[str, int]]:
    """Three runs in a row at ``large:size``, the replied tasks staying open (a long chat_solve_delay)."""
    with SandboxServer(scenario=f"large:{size}", api_key=KEY, chat_solve_delay_seconds=3600) as sb:
        conn(sb)
        counts, messaged = [], set()
        for run in range(3):
            report, counters = run_reply(sb, max_replies=K)
            cases = {r["case_id"] for r in report["replied"]}
            assert len(cases) == K and report["failed"] == []
            assert not cases & messaged, f"run {run + 1} answered a case again"
            messaged |= cases
            assert counters["POST /cases/{id}/chats"] == K
            assert report["capped"]["max_replies"] == K and report["capped"]["pages_read"] == counters["GET /tasks"]
            examined = counters["GET /cases/{id}/tasks"]
            assert examined == K * (run + 1)  # the cases answered before are examined again and skipped
            assert counters["GET /cases/{id}/chats"] == examined + K + 1
            assert counters["total"] == formula(counters["GET /tasks"], examined, examined, K, K)
            counts.append(counters)
        sent = ours(sb)
        assert len(sent) == 3 * K and len({case for case, _ in sent}) == 3 * K  # no case got two messages
        return counts


@pytest.mark.timeout(600)
def test_a_capped_run_costs_the_same_at_5000_and_20000_open_tasks(conn) -> None:
    small, large = three_runs(5000, conn), three_runs(20000, conn)
    assert small == large
    assert [c["total"] for c in small] == [252, 352, 453]  # pages 1, 1, 2; E = 50, 100, 150
    assert [c["GET /tasks"] for c in small] == [1, 1, 2]


def scenario_with_a_case_across_pages() -> dict[str, Any]:
    """250 chat tasks on 230 cases, oldest first; case SPLIT-1 has its ReplyToChat first (page 1), a
    ClientInputRequired at position 150 (page 2) and a MoreInfoNeeded at position 240 (page 3)."""
    cases = [{"creditorReference": "SPLIT-1"}] + [{"creditorReference": f"F-{i:04d}"} for i in range(230)]
    tasks: list[dict[str, Any]] = []
    for i in range(250):
        minutes = 10_000 - i  # oldest first in list order
        if i == 0:
            tasks.append({"type": "ReplyToChat", "caseCreditorReference": "SPLIT-1", "minutesAgo": minutes})
        elif i == 150:
            tasks.append({"type": "ClientInputRequired", "caseCreditorReference": "SPLIT-1", "minutesAgo": minutes})
        elif i == 240:
            tasks.append({"type": "MoreInfoNeeded", "caseCreditorReference": "SPLIT-1", "minutesAgo": minutes})
        else:
            tasks.append({"type": "ReplyToChat", "caseCreditorReference": f"F-{i % 230:04d}", "minutesAgo": minutes})
    return {"name": "split", "cases": cases, "tasks": tasks}


TEMPLATES = {
    "ReplyToChat": "Thanks for your message.",
    "ClientInputRequired": "Here is the input you asked for.",
    "MoreInfoNeeded": "We will upload the documents today.",
}


def test_a_case_with_tasks_on_later_pages_gets_one_message_for_all_of_them(conn) -> None:
    with SandboxServer(scenario=scenario_with_a_case_across_pages(), api_key=KEY, chat_solve_delay_seconds=3600) as sb:
        conn(sb)
        split = sb.state.case_id("SPLIT-1")
        own = {t["id"]: t["type"] for t in sb.state.list_tasks("Open") if t["caseId"] == split}
        assert len(own) == 3
        report, counters = run_reply(sb, reply_template=None, reply_templates=TEMPLATES, max_replies=2)
        assert counters["GET /tasks"] == 1  # page 1 only: the later pages are not read
        replied = [r for r in report["replied"] if r["case_id"] == split]
        assert {r["task_id"] for r in replied} == set(own)  # every task, from the case's own read
        assert len({r["chat_message_id"] for r in replied}) == 1
        sent = [text for case, text in ours(sb) if case == split]
        assert len(sent) == 1
        for text in TEMPLATES.values():
            assert text in sent[0]
        assert report["capped"]["cases"] > 0 and report["capped"]["open_chat_tasks"] == 250
        assert report["capped"]["pages"] == 3 and report["capped"]["pages_read"] == 1
        assert counters["total"] == formula(1, 2, 2, 2, 0)


def test_a_case_resolved_between_the_listing_and_its_own_read_is_skipped(conn, monkeypatch) -> None:
    with SandboxServer(scenario=scenario_with_a_case_across_pages(), api_key=KEY) as sb:
        conn(sb)
        split = sb.state.case_id("SPLIT-1")
        own = [t["id"] for t in sb.state.list_tasks("Open") if t["caseId"] == split]
        original = DebituraHook.get_case_tasks

        def solve_first(self: DebituraHook, case_id: str, **kw: Any) -> Any:
            if case_id == split:  # the listing showed it open; it clears right before the case's own read
                for task_id in own:
                    sb.control("POST", f"/tasks/{task_id}/solve", {})
            return original(self, case_id, **kw)

        monkeypatch.setattr(DebituraHook, "get_case_tasks", solve_first)
        report, counters = run_reply(sb, reply_template="Thanks.", max_replies=2)
        assert not [r for r in report["replied"] if r["case_id"] == split]
        skipped = [s for s in report["skipped"] if s["case_id"] == split]
        assert [s["task_id"] for s in skipped] == own[:1]  # the task page 1 showed
        assert "resolved meanwhile" in skipped[0]["reason"]
        assert not [case for case, _ in ours(sb) if case == split]
        assert len({r["case_id"] for r in report["replied"]}) == 2  # two other cases answered
        assert counters["GET /cases/{id}/tasks"] == 3 and counters["GET /cases/{id}/chats"] == 2 + 2 + 1


def test_a_case_gone_on_its_own_read_fails_alone(conn) -> None:
    with SandboxServer(scenario=scenario_with_a_case_across_pages(), api_key=KEY) as sb:
        conn(sb)
        split = sb.state.case_id("SPLIT-1")
        sb.control("POST", f"/cases/{split}/delete", {})  # GET /tasks still lists its tasks; case reads answer 404
        op = DebituraReplyToChatTasksOperator(task_id="reply", reply_template="Thanks.", max_replies=3)
        context = task_context(op)
        sb.control("DELETE", "/requests")
        with pytest.raises(DebituraReplyCasesFailedError, match="SPLIT-1|" + split):
            op.execute(context)
        report = context["ti"].xcom["return_value"]
        assert [f["case_id"] for f in report["failed"]] == [split] and report["failed"][0]["status"] == 404
        assert len({r["case_id"] for r in report["replied"]}) == 3
        counters = sb.control("GET", "/counters").json()
        assert counters["GET /cases/{id}/tasks"] == 4 and counters["GET /cases/{id}/chats"] == 3 + 3 + 1


@pytest.fixture
def budgets() -> Iterator[None]:
    budget_module.reset_budgets()
    yield
    budget_module.reset_budgets()


def test_the_budget_preflight_refuses_after_page_one_and_before_the_bulk(budgets, monkeypatch) -> None:
    with SandboxServer(scenario="large:5000", api_key=KEY) as sb:
        conn = json.loads(sb.conn_json())
        conn.setdefault("extra", {}).update({"budget_max_wait": 0, "budget_per_minute": 200})
        monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))
        sb.control("DELETE", "/requests")
        op = DebituraReplyToChatTasksOperator(task_id="reply", reply_template=CASE_TEMPLATE, max_replies=50)
        with pytest.raises(DebituraBudgetError) as err:
            op.execute(task_context(op, ti=FakeTI()))
        need = 50 + 50 + 50 + 101  # task reads, history reads, case reads, re-reads + posts + 1; no more pages
        assert (
            "answering up to 50 case(s) after the listing's first page (2,900 open chat tasks, about 0 more page(s)"
            in str(err.value)
        )
        assert f"needs about {need} requests" in str(err.value) and "allows 199 more" in str(err.value)
        assert [r["path"] for r in sb.control("GET", "/requests").json()] == ["/tasks"]


def test_pages_needed_is_judged_from_page_one() -> None:
    assert pages_needed(100, 50, 20_000) == 1
    assert pages_needed(30, 50, 20_000) == 2
    assert pages_needed(30, 50, 150) == 2
    assert pages_needed(10, 500, 150) == 2  # never more than the listing holds
    assert pages_needed(0, 50, 1_000) == 10  # nothing to answer on page 1: the whole listing may be read
    assert pages_needed(10, 50, None) == 5
