"""Models parse what the API sends, including what it sends carelessly."""

from __future__ import annotations

import json

from airflow_provider_debitura.models import ApiError, Case, ChatMessage, Task, TaskPage, TaskType

TASK = {
    "id": "6da3aa29-e603-5495-8255-0305500ab240",
    "type": "ReplyToChat",
    "typeLabel": "Reply to chat",
    "title": "Reply",
    "status": "Open",
    "caseId": "1d8d5c67-3e4d-53f7-8813-e864d30bea02",
    "dateCreated": "2026-11-27T10:00:00",
    "solutionUrl": "https://app.debitura.com/x",
    "action": {"method": "POST", "path": "/cases/{caseId}/chats"},
}


def test_task_round_trips_in_camel_case_and_keeps_unknown_fields():
    task = Task.model_validate(TASK | {"brandNewField": 1})
    assert task.type_label == "Reply to chat" and task.is_api_resolvable and not task.is_account_level
    out = task.to_api_dict()
    assert (
        out["typeLabel"] == "Reply to chat"
        and out["brandNewField"] == 1
        and out["dateCreated"] == "2026-11-27T10:00:00Z"
    )
    assert Task.model_validate(json.loads(json.dumps(out))) == Task.model_validate(out)


def test_unknown_type_parses():
    task = Task.model_validate(TASK | {"type": "NewKindOfTask", "action": None})
    assert task.type == "NewKindOfTask" and not task.is_known_type and not task.is_api_resolvable


def test_naive_and_offset_timestamps_become_utc():
    naive = Task.model_validate(TASK)
    offset = Task.model_validate(TASK | {"dateCreated": "2026-11-27T11:00:00+01:00"})
    assert naive.date_created == offset.date_created
    assert naive.date_created.utcoffset().total_seconds() == 0


def test_account_level_types():
    assert TaskType.account_level() == {"SignContract", "AssignBankAccount"}
    task = Task.model_validate(TASK | {"type": "SignContract", "caseId": None, "action": None})
    assert task.is_account_level
    assert len(TaskType.known()) == 9


def test_null_lists_are_empty():
    assert TaskPage.from_api({"page": {"totalResults": 0}, "tasks": None}).tasks == []
    assert ApiError.model_validate({"businessErrors": None}).business_errors == []


def test_api_error_summary_uses_every_field():
    err = ApiError.model_validate(
        {"error": "NotFound", "message": "Case not found", "businessErrors": [{"type": "X", "message": "y"}]}
    )
    assert err.summary() == "Case not found; y (NotFound, X)"
    assert ApiError.model_validate({"title": "Bad", "detail": "PageSize"}).summary() == "PageSize (Bad)"
    assert ApiError.model_validate({"error": "rate_limit_exceeded"}).summary() == "rate_limit_exceeded"


def test_api_error_summary_says_a_dual_written_error_once():
    """The API writes the same error to error/message and to businessErrors: the summary says it once."""
    said = "No case with creditor reference 'NOPE' was found."
    err = ApiError.model_validate(
        {"error": "NotFound", "message": said, "businessErrors": [{"type": "NotFound", "message": said}]}
    )
    assert err.summary() == "No case with creditor reference 'NOPE' was found (NotFound)"


def test_chat_and_case():
    chat = ChatMessage.model_validate({"id": "a", "dateCreated": "2026-01-01T00:00:00", "role": 0, "user": None})
    assert chat.is_from_partner and not chat.is_from_creditor
    case = Case.model_validate({"id": "c", "creditorReference": "INV-1", "lifecycle": "More Info Required"})
    assert case.creditor_reference == "INV-1"
