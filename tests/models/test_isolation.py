"""One record that cannot be understood never fails the page, the case's task list or the chat history:
it is set aside with what can still be read of it (id, type, caseId, reason) and logged once."""

from __future__ import annotations

import json
import logging

import pytest
import respx

from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.models import (
    ChatMessage,
    PageData,
    RejectedRecord,
    Task,
    TaskPage,
    parse_records,
)

CASE = "1d8d5c67-3e4d-53f7-8813-e864d30bea02"
OTHER = "0d258f0a-0095-5475-b994-802a390bd8dc"
GOOD = {"id": "t-good", "type": "ReplyToChat", "caseId": CASE, "dateCreated": "2026-11-27T10:00:00Z"}
BASE = "https://customer-api.debitura.com"


def page(*tasks: object, total: int | None = None) -> dict:
    return {"page": {"totalResults": len(tasks) if total is None else total, "pageSize": 100}, "tasks": list(tasks)}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"type": "ReplyToChat", "caseId": CASE, "dateCreated": "2026-11-27T10:00:00Z"}, (None, CASE, "case", "id")),
        ({"id": "t-1", "caseId": CASE, "dateCreated": "garbage"}, ("t-1", CASE, "case", "dateCreated")),
        ({"id": "t-2", "caseId": 42, "dateCreated": "2026-11-27T10:00:00Z"}, ("t-2", None, "any", "caseId")),
        ({"id": "t-3", "type": "SignContract", "dateCreated": None}, ("t-3", None, "account", "dateCreated")),
        ({"id": "t-4", "type": 7, "dateCreated": "2026-11-27T10:00:00Z"}, ("t-4", None, "account", "type")),
        (
            {"id": "t-5", "type": "SelectQuoteWinner", "leadId": "x", "dateCreated": "soon"},
            ("t-5", None, "none", "dateCreated"),
        ),
        (
            {"id": "t-6", "caseId": CASE, "dateCreated": "0001-01-01T00:00:00+05:00"},
            ("t-6", CASE, "case", "dateCreated"),
        ),
        ("not an object", (None, None, "any", "not a JSON object")),
    ],
)
def test_one_bad_record_never_fails_the_page(record, expected):
    parsed = TaskPage.from_api(page(GOOD, record, GOOD | {"id": "t-good-2"}))
    assert [t.id for t in parsed.tasks] == ["t-good", "t-good-2"] and parsed.raw_count == 3
    (rejected,) = parsed.rejected
    rid, case_id, scope, reason = expected
    assert (rejected.id, rejected.case_id, rejected.scope) == (rid, case_id, scope)
    assert reason in rejected.reason and "garbage" not in rejected.reason  # the field, never the value


def test_which_gates_a_rejected_task_concerns():
    own = RejectedRecord("task", "x", id="a", case_id=CASE.upper())
    account = RejectedRecord("task", "x", type="AssignBankAccount")
    anywhere = RejectedRecord("task", "x", case_id_unreadable=True)
    lead = RejectedRecord("task", "x", type="SelectQuoteWinner")
    assert own.affects_case(CASE) and not own.affects_case(OTHER)
    assert account.affects_case(OTHER) and not account.affects_case(OTHER, include_account_tasks=False)
    assert anywhere.affects_case(OTHER, include_account_tasks=False)
    assert not lead.affects_case(CASE)
    assert json.loads(json.dumps(own.to_dict())) == {
        "what": "task", "reason": "x", "id": "a", "type": None, "caseId": CASE.upper(), "scope": "case"
    }  # fmt: skip


def test_each_rejected_record_is_logged_once_not_on_every_read(caplog):
    bad = {"id": "t-logged-once", "caseId": CASE, "dateCreated": "garbage"}
    with caplog.at_level(logging.DEBUG, logger="airflow_provider_debitura.models"):
        for _ in range(3):
            TaskPage.from_api(page(GOOD, bad))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "t-logged-once" in warnings[0].getMessage()
    assert "case " + CASE in warnings[0].getMessage()


def test_a_broken_envelope_is_still_a_whole_body_error():
    with pytest.raises(ValueError):
        TaskPage.from_api({"page": {"totalResults": "many"}, "tasks": []})
    with pytest.raises(ValueError, match="expected a JSON array of tasks"):
        TaskPage.from_api({"page": {}, "tasks": {"id": "x"}})


def test_spec_nullability():
    """Every PageData field is optional in the spec: absent is None (never a guessed 0); page itself may be null."""
    assert TaskPage.from_api({"page": None}).page == PageData()
    assert TaskPage.from_api({"pageData": {"totalResults": 3}}).page.total_results == 3
    chat = parse_records(
        ChatMessage, [{"id": "m", "dateCreated": "2026-01-01T00:00:00", "isSeen": None, "role": 7}], "m"
    )
    assert chat[0].role == 7 and not chat[0].is_from_creditor and not chat[0].is_from_partner  # unknown role


@pytest.mark.parametrize(
    ("action", "usable"),
    [
        (None, False),
        ({"method": None, "path": None}, False),
        ({"method": "POST", "path": None}, False),
        ({"method": "POST", "path": "  "}, False),
        ({}, False),
        ({"method": "POST", "path": "/cases/{caseId}/chats"}, True),
    ],
)
def test_has_api_action(action, usable):
    assert Task.model_validate(GOOD | {"action": action}).has_api_action is usable


@pytest.fixture
def conn(monkeypatch):
    conn = {"conn_type": "debitura", "password": "respx-key-0000", "extra": {"max_attempts": 1}}
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))


BAD = {"id": "t-bad", "caseId": CASE, "type": "MoreInfoNeeded", "dateCreated": "garbage"}


@respx.mock
def test_through_the_hook_listing_case_tasks_and_chats(conn):
    """The three list reads of the hook: the good records come back, the bad one is reported on the result."""
    respx.get(f"{BASE}/tasks").respond(json=page(GOOD, BAD))
    respx.get(f"{BASE}/cases/{CASE}/tasks").respond(json=[GOOD, BAD])
    chat = {"id": "m1", "dateCreated": "2026-11-27T10:00:00Z", "role": 0, "message": "hi"}
    respx.get(f"{BASE}/cases/{CASE}/chats").respond(json=[chat, {"id": "m2", "dateCreated": "yesterday"}])
    with DebituraHook() as hook:
        listing = hook.list_tasks()
        case_tasks = hook.get_case_tasks(CASE)
        chats = hook.get_chats(CASE)
    assert [t.id for t in listing] == ["t-good"] and [r.id for r in listing.rejected] == ["t-bad"]
    assert listing.verified  # the unreadable record still counts as read
    assert [t.id for t in case_tasks] == ["t-good"] and case_tasks.rejected[0].affects_case(CASE)
    assert [m.id for m in chats] == ["m1"] and chats.rejected[0].id == "m2"
    assert chats.rejected[0].what == "chat message"
