"""Any body the official spec allows parses: generated from the spec's own schemas (hypothesis-jsonschema).

``TaskDto``, ``TaskListDto``, ``ChatDto`` and ``InvoiceDto`` (and their lists) with every nullable field
null or absent, bare ``$ref`` properties null, unknown enum-free strings, and so on. Bounded examples, a
fixed seed (``derandomize``): the same examples on every run, in CI too. "Parses" means nothing raises
but the documented whole-body error, every record is either a model or a reported rejection, and the
only reasons to reject a spec-valid record are the two fields the provider cannot work without.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers.openapi import SCHEMA_PREFIX, load_spec, schema_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from airflow_provider_debitura.hooks.paging import TaskListing
from airflow_provider_debitura.models import Case, CasePage, ChatMessage, Task, TaskPage, parse_records

PROFILE = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def _schema(name: str) -> dict[str, Any]:
    return schema_for(load_spec(), name)


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict[str, Any]]:
    return {
        "task": _schema(SCHEMA_PREFIX + "Tasks.TaskDto"),
        "task_list": _schema(SCHEMA_PREFIX + "Tasks.TaskListDto"),
        "chat": _schema(SCHEMA_PREFIX + "Chats.ChatDto"),
        "invoice": _schema(SCHEMA_PREFIX + "Cases.InvoiceDto"),
        "invoice_list": _schema(SCHEMA_PREFIX + "Cases.InvoiceListDto"),
    }


def _must_have(record: dict[str, Any], *fields: str) -> bool:
    return all(isinstance(record.get(f), str) for f in fields)


def _accepted_unless_missing(records: list[Any], items: list[Any], rejected: Any, *, needed: tuple[str, ...]) -> None:
    """Every record is a model or a rejection; a rejection only for a missing ``needed`` field."""
    assert len(items) + len(rejected) == len(records)
    for record in rejected:
        original = next(r for r in records if r.get("id") == record.id) if record.id else None
        assert original is None or not _must_have(original, *needed), (record, original)
        assert any(f in record.reason for f in needed), record.reason


def test_task_lists_and_case_task_arrays_parse(schemas):
    @PROFILE
    @given(st.lists(from_schema(schemas["task"]), max_size=8))
    def check(records: list[dict[str, Any]]) -> None:
        parsed = parse_records(Task, records, "task")
        _accepted_unless_missing(records, parsed, parsed.rejected, needed=("id", "dateCreated"))
        for task in parsed:
            assert task.to_api_dict()["id"] == task.id  # and it round-trips for XCom
            task.is_open, task.is_account_level, task.has_api_action  # noqa: B018  (the helpers never raise)

    check()


def test_task_pages_parse_and_a_listing_completes(schemas):
    @PROFILE
    @given(from_schema(schemas["task_list"]))
    def check(body: dict[str, Any]) -> None:
        page = TaskPage.from_api(body)
        records = body.get("tasks") or []
        _accepted_unless_missing(records, page.tasks, page.rejected, needed=("id", "dateCreated"))
        listing = TaskListing(pages_hint=1)
        [call] = listing.next_calls()
        listing.feed(call, page)  # a listing takes any spec-valid page without raising (it may ask for more)
        listing.next_calls()

    check()


def test_chat_histories_parse(schemas):
    @PROFILE
    @given(st.lists(from_schema(schemas["chat"]), max_size=8))
    def check(records: list[dict[str, Any]]) -> None:
        parsed = parse_records(ChatMessage, records, "chat message")
        _accepted_unless_missing(records, parsed, parsed.rejected, needed=("id", "dateCreated"))
        for message in parsed:
            message.is_from_creditor, message.is_from_partner  # noqa: B018

    check()


SMALL = settings(PROFILE, max_examples=20)  # InvoiceDto is large: fewer, still varied, examples


def test_cases_and_case_pages_parse(schemas):
    @SMALL
    @given(from_schema(schemas["invoice"]))
    def check_case(body: dict[str, Any]) -> None:
        if isinstance(body.get("id"), str):
            assert Case.model_validate(body).id == body["id"]

    @SMALL
    @given(from_schema(schemas["invoice_list"]))
    def check_page(body: dict[str, Any]) -> None:
        page = CasePage.from_api(body)
        _accepted_unless_missing(body.get("cases") or [], page.cases, page.rejected, needed=("id",))

    check_case()
    check_page()
