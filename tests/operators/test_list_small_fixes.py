"""Issue 20, item 11 (the small ones), against the real sandbox: ``batch_size`` is checked, the mapping error
suggests only what fits, ``by_case`` keeps account-level, lead and other caseless tasks apart and records carry
``leadId``, and a creditor reference is used exactly as given."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from helpers.context import task_context
from helpers.sandbox import clear_counters, counters

from airflow_provider_debitura.exceptions import DebituraConfigError, DebituraNotFoundError
from airflow_provider_debitura.hooks.debitura import DebituraHook
from airflow_provider_debitura.operators import DebituraListTasksOperator
from airflow_provider_debitura.operators.list_output import RECORD_FIELDS, mapping_error
from airflow_provider_debitura.sandbox import SandboxServer
from airflow_provider_debitura.sandbox.scenarios import case_id_for
from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor

LEAD_A = "0a0a0a0a-0000-4000-8000-00000000000a"
LEAD_B = "0b0b0b0b-0000-4000-8000-00000000000b"
SCENARIO: dict[str, Any] = {
    "users": [{"firstName": "O", "lastName": "Ops", "email": "ops@example.com"}],
    "cases": [{"creditorReference": "INV-7 "}, {"creditorReference": "INV-8"}, {"creditorReference": "2024/7 "}],
    "tasks": [
        {"type": "ReplyToChat", "caseCreditorReference": "INV-8"},
        {"type": "AssignBankAccount"},
        {"type": "SignContract"},
        {"type": "SelectQuoteWinner", "leadId": LEAD_A},
        {"type": "SelectQuoteWinner", "leadId": LEAD_B, "title": "second lead"},
        {"type": "SelectQuoteWinner", "title": "caseless, no lead", "wire": {"leadId": None}},
    ],
}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    with SandboxServer(scenario=SCENARIO, api_key="small-fixes-key", encoded_slash="keep") as server:
        monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", server.conn_json())
        clear_counters(server)
        yield server


def listed(**kwargs: Any) -> Any:
    op = DebituraListTasksOperator(task_id="list", **kwargs)
    return op.execute(task_context(op))


# -- batch_size --


@pytest.mark.parametrize("value", [0, "0", -1, "-5", 2.5, True, "ten"])
def test_a_batch_size_below_one_is_refused_before_any_request(world: SandboxServer, value: Any) -> None:
    with pytest.raises(DebituraConfigError) as err:
        listed(shape="batches", batch_size=value)
    message = str(err.value)
    assert f"batch_size={value!r}" in message and "whole number >= 1" in message and "batch_size=100" in message
    assert counters(world).get("total", 0) == 0


def test_batch_size_none_or_empty_is_the_default(world: SandboxServer) -> None:
    assert [len(b) for b in listed(shape="batches", batch_size="")] == [6]
    assert [len(b) for b in listed(shape="batches", batch_size=None)] == [6]
    assert [len(b) for b in listed(shape="batches", batch_size="4")] == [4, 2]


# -- max_map_length --


def fixes(error: DebituraConfigError | None) -> str:
    """The suggestions of a mapping error (after "Group it:")."""
    return str(error).split("Group it:", 1)[1]


def test_the_mapping_error_for_by_case_does_not_suggest_by_case() -> None:
    error = fixes(mapping_error("by_case", 2_000, 1_024, 5_000, cases=2_000))
    assert "shape='by_case'" not in error
    assert "shape='batches' with batch_size >= 5" in error and "shape='summary'" in error


def test_the_mapping_error_suggests_by_case_only_when_the_cases_fit() -> None:
    assert "shape='by_case'" not in fixes(mapping_error("records", 5_000, 1_024, 5_000, cases=3_000))
    assert "shape='by_case' (600 items" in fixes(mapping_error("records", 5_000, 1_024, 5_000, cases=600))
    assert "shape='by_case'" not in fixes(mapping_error("ids", 5_000, 1_024, 5_000))  # cases unknown
    batches = fixes(mapping_error("batches", 2_000, 1_024, 200_000, cases=10))
    assert "a larger batch_size (>= 196)" in batches and "with batch_size" not in batches


# -- by_case groups and leadId --


def test_by_case_keeps_account_level_lead_and_other_caseless_tasks_apart(world: SandboxServer) -> None:
    groups = listed(shape="by_case")
    by_scope = {(g["scope"], g["caseId"], g["leadId"]): g for g in groups}
    assert set(by_scope) == {
        ("case", case_id_for("INV-8"), None),
        ("account", None, None),
        ("lead", None, LEAD_A),
        ("lead", None, LEAD_B),
        ("other", None, None),
    }
    assert len(groups) == 5 and all(set(g) == {"scope", "caseId", "caseReference", "leadId", "tasks"} for g in groups)
    assert sorted(t["type"] for t in by_scope["account", None, None]["tasks"]) == ["AssignBankAccount", "SignContract"]
    assert [t["leadId"] for t in by_scope["lead", None, LEAD_B]["tasks"]] == [LEAD_B]
    assert [t["title"] for t in by_scope["other", None, None]["tasks"]] == ["caseless, no lead"]
    assert by_scope["case", case_id_for("INV-8"), None]["caseReference"] is not None


def test_records_carry_the_lead_id(world: SandboxServer) -> None:
    records = listed()
    assert all(set(r) == set(RECORD_FIELDS) for r in records) and "leadId" in RECORD_FIELDS
    assert {r["leadId"] for r in records if r["type"] == "SelectQuoteWinner"} == {LEAD_A, LEAD_B, None}


# -- a creditor reference with a trailing space --


def test_a_reference_with_a_trailing_space_is_used_as_given(world: SandboxServer) -> None:
    with DebituraHook() as hook:
        assert hook.find_case(creditor_reference="INV-7 ").id == case_id_for("INV-7 ")
        assert hook.find_case(creditor_reference="2024/7 ").id == case_id_for("2024/7 ")  # the search compares exactly
        with pytest.raises(DebituraNotFoundError):
            hook.find_case(creditor_reference="INV-7")  # no such case: not silently the one with the space
    op = DebituraListTasksOperator(task_id="list", creditor_reference="INV-7 ")
    assert op.execute(task_context(op)) == []


def test_a_reference_not_found_with_a_trailing_space_says_so(world: SandboxServer) -> None:
    op = DebituraCaseUnblockedSensor(task_id="gate", creditor_reference="INV-8 ", poke_interval=1, timeout=30)
    with pytest.raises(AirflowFailException) as err:
        op.poke(task_context(op))
    message = str(err.value)
    assert "Cannot find Debitura case creditor_reference='INV-8 '" in message
    assert "leading or trailing whitespace and was looked up exactly as given" in message
    assert "pass creditor_reference='INV-8'" in message
    assert counters(world)["GET /cases/by-creditor-reference/{creditorReference}"] == 1
