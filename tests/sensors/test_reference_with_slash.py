"""A creditor reference with ``/`` against a server that refuses ``%2F`` (ASP.NET Core; the sandbox's
``encodedSlash=keep``): the hook's 404 fallback (a search of the newest cases) serves every caller, the
case gate in each mode and the list operator's case scope alike (issue 20, item 1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers.context import task_context
from helpers.sandbox import clear_counters, counters

from airflow_provider_debitura.hooks import debitura as hook_module
from airflow_provider_debitura.hooks import lookup
from airflow_provider_debitura.operators import DebituraListTasksOperator
from airflow_provider_debitura.sandbox import SandboxServer
from airflow_provider_debitura.sandbox.scenarios import case_id_for
from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor

try:
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 2
    from airflow.exceptions import TaskDeferred

REFERENCES = ["2024/0001", "日本語/請求書", "a/b/c"]
BLOCKED = "2024/0001"  # the one case with an open task


@pytest.fixture
def keep_slash(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    scenario = {
        "users": [{"firstName": "O", "lastName": "Ops", "email": "ops@example.com"}],
        "cases": [{"creditorReference": "INV-1"}, *({"creditorReference": ref} for ref in REFERENCES)],
        "tasks": [{"type": "ReplyToChat", "caseCreditorReference": BLOCKED}],
    }
    with SandboxServer(scenario=scenario, api_key="slash-key", encoded_slash="keep") as server:
        monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", server.conn_json())
        clear_counters(server)
        yield server


def sensor(ref: str, **kwargs) -> DebituraCaseUnblockedSensor:
    return DebituraCaseUnblockedSensor(
        task_id="gate", creditor_reference=ref, include_account_tasks=False, poke_interval=1, timeout=30, **kwargs
    )


@pytest.mark.parametrize("ref", REFERENCES)
@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_the_gate_finds_a_reference_with_a_slash(keep_slash: SandboxServer, ref: str, mode: str) -> None:
    op = sensor(ref, mode=mode)
    result = op.poke(task_context(op))
    assert op.resolve_case_id() == case_id_for(ref)
    assert result.is_done is (ref != BLOCKED)
    seen = counters(keep_slash)
    # 1 refused lookup, 1 page of the search, 1 read of the case's tasks (no second lookup for the id)
    assert seen["GET /cases/by-creditor-reference/{creditorReference}"] == 1
    assert seen["GET /cases"] == 1
    assert seen["GET /cases/{id}/tasks"] == 1


def test_the_deferrable_gate_finds_it_at_its_first_check(keep_slash: SandboxServer) -> None:
    op = sensor(BLOCKED, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(task_context(op))
    trigger = deferred.value.trigger
    assert trigger.case_id == case_id_for(BLOCKED)
    assert trigger.creditor_reference is None  # resolved in the worker: the trigger never looks it up


@pytest.mark.parametrize("ref", REFERENCES)
def test_the_list_operator_finds_it_for_a_case_scope(keep_slash: SandboxServer, ref: str) -> None:
    op = DebituraListTasksOperator(task_id="list", creditor_reference=ref)
    tasks = op.execute(task_context(op))
    assert [t["caseId"] for t in tasks] == ([case_id_for(ref)] if ref == BLOCKED else [])
    assert counters(keep_slash)["GET /cases"] == 1


def test_a_missing_reference_with_a_slash_still_fails_clearly(keep_slash: SandboxServer) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    op = sensor("2024/9999")
    with pytest.raises(AirflowFailException, match=r"Cannot find Debitura case creditor_reference='2024/9999'.*"):
        op.poke(task_context(op))
    assert counters(keep_slash)["GET /cases"] == 1  # a short page ends the search


def test_the_single_call_lookup_is_not_public() -> None:
    """Only the lookup with the fallback can be reached: nothing to call by mistake again."""
    assert not hasattr(hook_module, "case_lookup")
    assert not hasattr(lookup, "case_lookup")
    assert "case_lookup" not in hook_module.__all__
