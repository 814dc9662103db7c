"""A reply that waited (for a person's approval) is posted only for what the person saw (issue 21 item 2).

Right before posting, the case's open chat tasks are read again and compared with the draft: a task raised
since (no new partner message needed), a task whose ``action`` the reply operator would now refuse (another
case's chat, null), a task whose type changed, each skip the case and are reported as what happened.
"""

from __future__ import annotations

from helpers.fake_gateway import FakeGateway, make_task
from helpers.reply_drafts import CHAT_TYPES as TYPES
from helpers.reply_drafts import draft_replies

from airflow_provider_debitura.replies import CaseDraft, ReplyReport, post_drafts

A = "0a0a0a0a-0000-4000-8000-000000000001"
B = "0b0b0b0b-0000-4000-8000-000000000002"


def _drafts(gateway: FakeGateway, tasks) -> list[CaseDraft]:
    return draft_replies(gateway, tasks)[1]


def _post(gateway: FakeGateway, drafts: list[CaseDraft]) -> ReplyReport:
    report = ReplyReport()
    post_drafts(gateway, drafts, sender="ops@example.com", report=report, recheck_open_tasks=TYPES)
    return report


def test_a_task_raised_after_the_draft_keeps_the_reply_from_clearing_it() -> None:
    gateway = FakeGateway()
    a1, b1 = make_task(1, A), make_task(2, B, minutes=1)
    drafts = _drafts(gateway, [a1, b1])
    late = make_task(3, A, minutes=30, type="MoreInfoNeeded", title="Need the invoice")
    gateway.open_tasks = {A: [a1, late], B: [b1]}  # raised on A after the draft, no partner message
    report = _post(gateway, drafts)
    assert [c for c, _, _ in gateway.posted] == [B]
    reasons = {s["task_id"]: s["reason"] for s in report.skipped}
    assert set(reasons) == {"task-0001", "task-0003"}  # the new task is reported too
    assert "MoreInfoNeeded task task-0003 (Need the invoice) was raised since the draft" in reasons["task-0001"]


def test_a_task_whose_action_now_points_elsewhere_or_is_null_is_not_answered() -> None:
    gateway = FakeGateway()
    a1, b1 = make_task(1, A), make_task(2, B, minutes=1)
    drafts = _drafts(gateway, [a1, b1])
    elsewhere = make_task(1, A, action={"method": "POST", "path": f"/cases/{B}/chats"})
    no_action = make_task(2, B, minutes=1, action=None)
    gateway.open_tasks = {A: [elsewhere], B: [no_action]}
    report = _post(gateway, drafts)
    assert gateway.posted == []
    reasons = {s["task_id"]: s["reason"] for s in report.skipped}
    assert "points at another case" in reasons["task-0001"] and "has no action" in reasons["task-0002"]
    assert {h["task_id"] for h in report.needs_human} == {"task-0001", "task-0002"}


def test_a_task_whose_type_changed_is_reported_as_such() -> None:
    gateway = FakeGateway()
    a1 = make_task(1, A)
    drafts = _drafts(gateway, [a1])
    gateway.open_tasks = {A: [make_task(1, A, type="ClientInputRequired")]}
    report = _post(gateway, drafts)
    assert gateway.posted == []
    [skip] = report.skipped
    assert "changed its type from ReplyToChat to ClientInputRequired" in skip["reason"]
    assert "no longer open" not in skip["reason"]


def test_one_of_two_drafted_tasks_solved_meanwhile_skips_the_case() -> None:
    gateway = FakeGateway()
    a1, a2 = make_task(1, A), make_task(2, A, minutes=1, type="MoreInfoNeeded")
    drafts = _drafts(gateway, [a1, a2])
    gateway.open_tasks = {A: [a2]}  # the reply was approved for both
    report = _post(gateway, drafts)
    assert gateway.posted == []
    assert "task task-0001 was solved since the draft" in report.skipped[0]["reason"]


def test_unchanged_tasks_are_answered() -> None:
    gateway = FakeGateway()
    a1, a2 = make_task(1, A), make_task(2, A, minutes=1, type="MoreInfoNeeded")
    drafts = _drafts(gateway, [a1, a2])
    gateway.open_tasks = {A: [a2, a1]}
    report = _post(gateway, drafts)
    assert [c for c, _, _ in gateway.posted] == [A] and len(report.replied) == 2  # one message, both tasks
