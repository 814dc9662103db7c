"""Issue 20 item 11 through the sandbox: a caseless task of a type the provider does not know (no lead) blocks a
gate in every mode (poke, the trigger on its own, the shared poll) until it is solved; the cost is counted."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from helpers.sandbox import clear_counters, counters, solve_all_account_tasks

from airflow_provider_debitura import gate
from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor
from airflow_provider_debitura.triggers.case_gate import DebituraCaseUnblockedTrigger

NEW = "ConfirmDataProcessingAgreement"


@pytest.fixture(autouse=True)
def _forget_types():
    gate.forget_learned_types()
    yield
    gate.forget_learned_types()


def add_new_type_task(sb) -> str:
    """A caseless task of a type the provider does not know, with no lead (the sandbox takes any type name)."""
    return sb.control("POST", "/tasks", {"type": NEW, "title": "Confirm the data processing agreement"}).json()["id"]


def test_poke_stays_blocked_on_a_new_caseless_type_and_opens_when_it_is_solved(debitura_conn, case_ids, caplog):
    solve_all_account_tasks(debitura_conn)
    task_id = add_new_type_task(debitura_conn)
    op = DebituraCaseUnblockedSensor(task_id="gate", creditor_reference="INV-1001", poke_interval=1, timeout=30)
    op.resolve_case_id()  # the one-time lookup, not part of a check
    clear_counters(debitura_conn)
    with caplog.at_level(logging.WARNING, logger="airflow_provider_debitura.gate.records"):
        blocked = op.poke({})
    assert not blocked.is_done
    assert NEW in caplog.text and "blocking_task_types" in caplog.text  # names the type and how to exclude it
    # The case, the type-filtered account-level read, page 1 of the whole queue (the demo's queue fits in it).
    assert counters(debitura_conn)["total"] == 3
    assert gate.learned_types() == (NEW,)
    summary = op.check(case_ids["INV-1001"]).summary()  # what the check's log line says
    assert f"{NEW} [account-level]" in summary and "blocking_task_types=" in summary

    debitura_conn.control("POST", f"/tasks/{task_id}/solve", {})
    clear_counters(debitura_conn)
    done = op.poke({})
    assert done.is_done and done.xcom_value["checks"] == 2
    assert counters(debitura_conn)["total"] == 3  # the opening check proves no caseless task of another type


@pytest.mark.parametrize("coalesce", [False, True])
async def test_the_trigger_stays_blocked_on_a_new_caseless_type_in_both_polling_modes(
    debitura_conn, case_ids, coalesce
):
    solve_all_account_tasks(debitura_conn)
    task_id = add_new_type_task(debitura_conn)
    trigger = DebituraCaseUnblockedTrigger(
        case_ids["INV-1001"], poll_interval=0.1, end_time=time.time() + 20, checks=1, first_blockers=[],
        coalesce=coalesce, backoff=False,
    )  # fmt: skip
    events: list[dict] = []

    async def collect() -> None:
        async for event in trigger.run():
            events.append(event.payload)

    running = asyncio.create_task(collect())
    deadline = time.monotonic() + 15
    while trigger.progress.checks < 6 and time.monotonic() < deadline and not running.done():
        await asyncio.sleep(0.05)
    assert events == [] and trigger.progress.checks >= 6  # five rounds and more: still blocked
    debitura_conn.control("POST", f"/tasks/{task_id}/solve", {})
    await asyncio.wait_for(running, 15)
    assert len(events) == 1 and events[0]["status"] == "success"
