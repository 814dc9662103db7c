"""The reply run's three phases (plan, render, post), each tested without a server.

The hook is replaced by :class:`helpers.fake_gateway.FakeGateway`, an in-memory case/chat store that
records calls; the phases only talk to it through the reader/gateway protocols the hook implements.
"""

from __future__ import annotations

import json

import pytest
from helpers.fake_gateway import T0, FakeGateway, chat, make_task, not_found
from helpers.reply_drafts import CHAT_TYPES as TYPES
from helpers.reply_drafts import draft_replies

from airflow_provider_debitura.exceptions import DebituraAmbiguousWriteError, DebituraServerError
from airflow_provider_debitura.replies import (
    CaseDraft,
    ReplyReport,
    ReplyTemplateError,
    compile_templates,
    post_drafts,
    read_cases,
    select_cases,
)

A = "0a0a0a0a-0000-4000-8000-000000000001"
B = "0b0b0b0b-0000-4000-8000-000000000002"
C = "0c0c0c0c-0000-4000-8000-000000000003"
CASE_TEMPLATE = "Re {{ task.title }} on {{ case.creditorReference }}: noted."


def templates(source: str = CASE_TEMPLATE):
    return compile_templates(source, None, TYPES)


def plan(gateway: FakeGateway, tasks, *, max_replies=None, source=None):
    return draft_replies(
        gateway, tasks, source=source or CASE_TEMPLATE, max_replies=max_replies, context={"ds": "2026-11-27"}
    )


# ---------------------------------------------------------------------------------- plan


def test_select_orders_cases_by_their_oldest_task_and_sets_refusals_aside() -> None:
    tasks = [
        make_task(1, B, minutes=5),
        make_task(2, A, minutes=9),
        make_task(3, B, minutes=1),
        make_task(4, A, minutes=2, type="ReviewPartner"),  # not a chat type: not this operator's
        make_task(5, "..", minutes=0),  # not a GUID: refused
        make_task(6, C, minutes=0, action={"method": None, "path": None}),  # spec-allowed, no usable action
        make_task(7, A.upper(), minutes=3),  # the same case, other spelling
    ]
    selection = select_cases(tasks, TYPES)
    assert [(c.case_id, [t.id for t in c.tasks]) for c in selection.candidates] == [
        (B, ["task-0003", "task-0001"]),
        (A, ["task-0007", "task-0002"]),
    ]
    reasons = {t.id: r for t, r in selection.refused}
    assert "not a GUID" in reasons["task-0005"] and "no action" in reasons["task-0006"]


def test_a_capped_plan_reads_only_the_cases_it_will_answer() -> None:
    cases = [f"0d0d0d0d-0000-4000-8000-{i:012d}" for i in range(30)]
    tasks = [make_task(i, case, minutes=i) for i, case in enumerate(cases)]
    answered = cases[0]  # the oldest case was answered already: it costs a read, not a reply slot
    gateway = FakeGateway({answered: [chat("mine", 1, 60)]})
    report, drafts = plan(gateway, tasks, max_replies=5)
    assert [d.case_id for d in drafts] == cases[1:6]
    assert gateway.count("GET chats") == 6 and gateway.count("GET case") == 5
    assert report.capped == {"max_replies": 5, "cases": 24, "tasks": 24}
    assert [s["task_id"] for s in report.skipped] == ["task-0000"]


def test_no_case_read_when_no_template_uses_case() -> None:
    gateway = FakeGateway()
    _, drafts = plan(gateway, [make_task(1, A)], source="Noted: {{ task.title }}")
    assert drafts[0].message == "Noted: Task 1" and gateway.count("GET case") == 0
    assert drafts[0].creditor_reference == "REF-0a0a"  # the task's caseReference names the case instead


def test_a_case_gone_in_the_plan_is_reported_and_the_others_are_planned() -> None:
    gateway = FakeGateway()
    gateway.fail[("GET chats", A)] = [not_found("GET", A)]
    gateway.fail[("GET case", B)] = [not_found("GET", B, "")]
    report, drafts = plan(gateway, [make_task(1, A), make_task(2, B, minutes=1), make_task(3, C, minutes=2)])
    assert [d.case_id for d in drafts] == [C]
    assert [(f["case_id"], f["status"], f["task_ids"]) for f in report.failed] == [
        (A, 404, ["task-0001"]),
        (B, 404, ["task-0002"]),
    ]
    assert "merged or deleted" in report.failed[0]["reason"]


def test_a_transient_error_in_the_plan_stops_the_run() -> None:
    gateway = FakeGateway()
    gateway.fail[("GET chats", B)] = [DebituraServerError("503", method="GET", path="/x", status=503)]
    with pytest.raises(DebituraServerError):
        plan(gateway, [make_task(1, A), make_task(2, B, minutes=1), make_task(3, C, minutes=2)])


# ---------------------------------------------------------------------------------- render


def test_drafts_round_trip_as_json_and_keep_what_the_post_rechecks() -> None:
    gateway = FakeGateway({A: [chat("p1", 0, 30, "Where is it?"), chat("old", 1, -10)]})
    _, [draft] = plan(gateway, [make_task(1, A), make_task(2, A, minutes=1, type="MoreInfoNeeded")])
    data = json.loads(json.dumps(draft.to_dict()))
    assert CaseDraft.from_dict(data) == draft
    assert data["seen_chat_ids"] == ["p1", "old"] and [t["id"] for t in data["tasks"]] == ["task-0001", "task-0002"]
    assert draft.message == "Re Task 1 on INV-0a0a: noted.\n\nRe Task 2 on INV-0a0a: noted."
    assert draft.not_before == T0


def test_one_bad_template_renders_nothing() -> None:
    gateway = FakeGateway()
    with pytest.raises(ReplyTemplateError, match="undefined"):
        plan(gateway, [make_task(1, A), make_task(2, B)], source="{{ nope }}")
    assert gateway.posted == []


# ---------------------------------------------------------------------------------- post


def _drafts(gateway: FakeGateway, *case_ids: str) -> list[CaseDraft]:
    tasks = [make_task(i, case, minutes=i) for i, case in enumerate(case_ids)]
    return plan(gateway, tasks)[1]


def test_post_once_per_case_and_rerun_posts_nothing() -> None:
    gateway = FakeGateway()
    drafts = _drafts(gateway, A, B)
    report = ReplyReport()
    post_drafts(gateway, drafts, sender="ops@example.com", report=report)
    assert [(c, s) for c, _, s in gateway.posted] == [(A, "ops@example.com"), (B, "ops@example.com")]
    assert [r["creditor_reference"] for r in report.replied] == ["INV-0a0a", "INV-0b0b"]
    again = ReplyReport()
    post_drafts(gateway, drafts, sender="ops@example.com", report=again)  # e.g. a retry with the same drafts
    assert len(gateway.posted) == 2 and again.replied == [] and len(again.skipped) == 2


def test_a_case_answered_by_a_person_since_planning_is_skipped_and_the_rest_answered() -> None:
    gateway = FakeGateway()
    drafts = _drafts(gateway, A, B)
    gateway.store(A, "Frank's own answer", "frank@example.com")
    report = ReplyReport()
    post_drafts(gateway, drafts, sender="ops@example.com", report=report)
    assert [(c, s) for c, _, s in gateway.posted] == [(A, "frank@example.com"), (B, "ops@example.com")]
    assert "answered since this run read the case" in report.skipped[0]["reason"]


def test_a_run_behind_another_run_of_ours_leaves_the_rest_to_it() -> None:
    gateway = FakeGateway()
    drafts = _drafts(gateway, A, B, C)
    gateway.store(A, drafts[0].message, "OPS@example.com")  # the other run (same sender) got there first
    report = ReplyReport()
    post_drafts(gateway, drafts, sender="ops@example.com", report=report)
    assert [c for c, _, _ in gateway.posted] == [A]  # only the other run's message: no race on B and C
    assert gateway.count("GET chats") == 4  # three to plan, one re-check
    assert [s["case_id"] for s in report.skipped] == [A, B, C]
    assert all("left to a concurrent run" in s["reason"] for s in report.skipped[1:])


def test_a_case_gone_at_post_time_is_reported_and_the_next_case_is_answered() -> None:
    gateway = FakeGateway()
    drafts = _drafts(gateway, A, B, C)
    gateway.fail[("GET chats", A)] = [not_found("GET", A)]
    gateway.fail[("POST chats", B)] = [not_found("POST", B)]
    report = ReplyReport()
    post_drafts(gateway, drafts, sender="ops@example.com", report=report)
    assert [c for c, _, _ in gateway.posted] == [C]
    assert [f["case_id"] for f in report.failed] == [A, B]


def test_an_ambiguous_post_found_in_the_history_counts_as_sent() -> None:
    gateway = FakeGateway()
    [draft] = _drafts(gateway, A)

    def committed_then_lost(*_: object) -> None:
        gateway.store(A, draft.message)  # the server stored it, the answer never came
        raise DebituraAmbiguousWriteError("dropped", method="POST", path=f"/cases/{A}/chats")

    gateway.fail[("POST chats", A)] = [committed_then_lost]
    report = ReplyReport()
    post_drafts(gateway, [draft], sender="ops@example.com", report=report)
    assert len(gateway.posted) == 1 and report.replied[0]["chat_message_id"] == gateway.chats[A][-1].id


def test_an_ambiguous_post_not_in_the_history_stops_the_run_without_posting_again() -> None:
    gateway = FakeGateway()
    drafts = _drafts(gateway, A, B)
    gateway.fail[("POST chats", A)] = [DebituraAmbiguousWriteError("504", method="POST", path="/x", status=504)]
    with pytest.raises(DebituraAmbiguousWriteError, match="Not posting again in this run"):
        post_drafts(gateway, drafts, sender="ops@example.com", report=ReplyReport())
    assert gateway.posted == [] and gateway.count("POST chats") == 1


def test_edited_drafts_are_checked_before_the_first_post() -> None:
    gateway = FakeGateway()
    drafts = _drafts(gateway, A, B)
    edited = [drafts[0].with_message("Approved text."), drafts[1].with_message("\u200b  ")]
    with pytest.raises(ReplyTemplateError, match="empty"):
        post_drafts(gateway, edited, sender="ops@example.com", report=ReplyReport())
    assert gateway.posted == []
    post_drafts(gateway, edited[:1], sender="ops@example.com", report=ReplyReport())
    assert gateway.posted == [(A, "Approved text.", "ops@example.com")]


def test_drafts_that_waited_do_not_yield_to_an_earlier_run() -> None:
    gateway = FakeGateway()
    drafts = _drafts(gateway, A, B)
    gateway.open_tasks = {A: [make_task(0, A)], B: [make_task(1, B, minutes=1)]}
    gateway.store(A, "the scheduled run's reply", "ops@example.com")  # while the approval waited
    report = ReplyReport()
    post_drafts(gateway, drafts, sender="ops@example.com", report=report, recheck_open_tasks=TYPES)
    assert [c for c, _, _ in gateway.posted] == [A, B]  # B's approved reply is still sent
    assert [r["case_id"] for r in report.replied] == [B]


def test_recheck_open_tasks_answers_only_tasks_still_open() -> None:
    gateway = FakeGateway()
    drafts = _drafts(gateway, A, B)
    gateway.open_tasks = {A: [], B: [make_task(1, B, minutes=1)]}  # A's task was solved meanwhile
    report = ReplyReport()
    post_drafts(gateway, drafts, sender="ops@example.com", report=report, recheck_open_tasks=TYPES)
    assert [c for c, _, _ in gateway.posted] == [B]
    assert report.skipped[0]["reason"] == "no longer open in Debitura"


# ---------------------------------------------------------------------------------- unreadable records


def test_a_case_named_by_an_unreadable_task_record_is_not_answered_blind() -> None:
    from airflow_provider_debitura.models import RejectedRecord

    bad = RejectedRecord(
        what="task", reason="dateCreated: invalid datetime", id="task-bad", type="ReplyToChat", case_id=A
    )
    gateway, report = FakeGateway(), ReplyReport()
    selection = select_cases([make_task(1, A), make_task(2, B, minutes=1)], TYPES, [bad])
    readings = read_cases(gateway, selection, report, max_replies=None, read_case=False)
    assert [r.candidate.case_id for r in readings] == [B]
    assert [(f["case_id"], f["task_ids"]) for f in report.failed] == [(A, ["task-bad"])]
    assert ("GET chats", A) not in gateway.calls


def test_a_history_with_an_unreadable_message_is_not_answered() -> None:
    from airflow_provider_debitura.models import Records, RejectedRecord

    gateway = FakeGateway()
    drafts = _drafts(gateway, A, B)
    real_get = gateway.get_chats

    def get_chats(case_id: str):
        chats = real_get(case_id)
        rejected = [RejectedRecord(what="chat message", reason="role: not an integer")] if case_id == A else []
        return Records(chats, rejected)

    gateway.get_chats = get_chats  # type: ignore[method-assign]
    report = ReplyReport()
    post_drafts(gateway, drafts, sender="ops@example.com", report=report)
    assert [c for c, _, _ in gateway.posted] == [B]
    assert report.failed[0]["case_id"] == A and "may be an earlier reply" in report.failed[0]["reason"]
