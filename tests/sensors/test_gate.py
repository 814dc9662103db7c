"""The verdict rule, without I/O."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_provider_debitura import gate
from airflow_provider_debitura.gate import AccountSnapshot, GateState
from airflow_provider_debitura.models import PageData, Task, TaskPage

CASE = "d5ba0833-fd38-506d-8521-5ec5ae679c33"
OTHER = "11111111-2222-3333-4444-555555555555"


def task(type_: str, case_id: str | None = CASE, *, id_: str | None = None, status: str = "Open") -> Task:
    return Task.model_validate(
        {
            "id": id_ or f"{type_}-{case_id}",
            "type": type_,
            "title": f"{type_} title",
            "status": status,
            "caseId": case_id,
            "dateCreated": datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat(),
            "solutionUrl": f"https://app.debitura.com/{type_}",
        }
    )


def test_no_tasks_is_unblocked():
    assert gate.evaluate([], []).state is GateState.UNBLOCKED


def test_any_case_task_blocks_by_default_including_unknown_types():
    verdict = gate.evaluate([task("SomethingNewFromDebitura")], [])
    assert verdict.state is GateState.BLOCKED
    assert verdict.blocking[0]["type"] == "SomethingNewFromDebitura"
    assert set(verdict.blocking[0]) == set(gate.COMPACT_FIELDS)


def test_type_filter_ignores_other_case_tasks():
    tasks = [task("ReplyToChat"), task("ReviewPartner")]
    assert gate.evaluate(tasks, [], blocking_types=["Generic"]).is_unblocked
    verdict = gate.evaluate(tasks, [], blocking_types=["ReviewPartner"])
    assert [t["type"] for t in verdict.blocking] == ["ReviewPartner"]


def test_account_level_task_blocks_every_case_whatever_the_type_filter():
    verdict = gate.evaluate([], [task("AssignBankAccount", None)], blocking_types=["ReplyToChat"])
    assert verdict.state is GateState.BLOCKED
    assert verdict.first_solution_url == "https://app.debitura.com/AssignBankAccount"


def test_account_level_tasks_ignored_when_excluded():
    assert gate.evaluate([], [task("SignContract", None)], include_account_tasks=False).is_unblocked


def test_solved_tasks_do_not_block():
    assert gate.evaluate(
        [task("ReplyToChat", status="Solved")], [task("SignContract", None, status="Solved")]
    ).is_unblocked


def test_positive_total_without_tasks_stays_blocked():
    verdict = gate.evaluate([], [], account_total=3)
    assert verdict.state is GateState.BLOCKED
    assert "reports 3" in verdict.reason


def test_direct_verdict_uses_account_page_total():
    empty_page = TaskPage(page=PageData(total_results=1, page_size=100, current_page=1, total_pages=1), tasks=[])
    assert not gate.verdict_from_direct([], empty_page).is_unblocked
    clear_page = TaskPage(page=PageData(total_results=0, page_size=100, current_page=1, total_pages=0), tasks=[])
    assert gate.verdict_from_direct([], clear_page).is_unblocked


def test_summary_groups_by_type_with_urls():
    verdict = gate.evaluate([task("ReplyToChat", id_="a"), task("ReplyToChat", id_="b")], [task("SignContract", None)])
    text = verdict.summary()
    assert "blocked by 3 open task(s)" in text
    assert "ReplyToChat x2" in text and "SignContract [account-level] x1" in text
    assert text.count("https://app.debitura.com/ReplyToChat") == 2


def test_unknown_verdict_is_not_unblocked():
    verdict = gate.unknown("HTTP 503")
    assert not verdict.is_unblocked
    assert "treating it as blocked" in verdict.summary()


def test_snapshot_answers_each_case_and_failed_snapshot_is_unknown():
    snap = AccountSnapshot.from_tasks(
        [task("ReplyToChat", CASE), task("Generic", OTHER), task("AssignBankAccount", None)], taken_at=0.0
    )
    assert snap.total == 3
    assert [t["type"] for t in snap.verdict(CASE.upper(), include_account_tasks=False).blocking] == ["ReplyToChat"]
    assert snap.verdict("99999999-2222-3333-4444-555555555555", include_account_tasks=False).is_unblocked
    assert not snap.verdict("99999999-2222-3333-4444-555555555555").is_unblocked
    assert snap.verdict(OTHER, blocking_types=["ReplyToChat"], include_account_tasks=False).is_unblocked
    assert AccountSnapshot.failed("drift", 0.0).verdict(CASE).state is GateState.UNKNOWN


def test_snapshot_and_direct_check_agree():
    case_tasks = [task("ReplyToChat", CASE)]
    account = [task("SignContract", None)]
    snap = AccountSnapshot.from_tasks([*case_tasks, *account, task("Generic", OTHER)], 0.0)
    page = TaskPage(page=PageData(total_results=1, page_size=100, current_page=1, total_pages=1), tasks=account)
    for types in (None, ["Generic"], ["ReplyToChat"]):
        for inc in (True, False):
            direct = gate.verdict_from_direct(
                [t for t in case_tasks if types is None or t.type in types],
                page,
                blocking_types=types,
                include_account_tasks=inc,
            )
            shared = snap.verdict(CASE, blocking_types=types, include_account_tasks=inc)
            assert direct.state == shared.state and direct.blocking == shared.blocking


def test_success_record_is_json_and_stable():
    import json

    record = gate.success_record(CASE, 3, [gate.compact(task("ReplyToChat"))])
    assert set(record) == {"case_id", "unblocked_at", "checks", "blocked_by_on_first_check"}
    assert json.loads(json.dumps(record)) == record
    assert record["unblocked_at"].endswith("+00:00")
