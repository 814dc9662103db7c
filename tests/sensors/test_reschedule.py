"""Reschedule mode: every try is a fresh operator in a fresh process, and Airflow clears the task's XComs
before each one. What survives is Airflow's reschedule count (Airflow 3) and, on Airflow 3.3+, the task
state store; the sensor keeps the case GUID and the first check's blockers there."""

from __future__ import annotations

from typing import Any

import pytest
from helpers.context import FakeTI
from helpers.sandbox import clear_counters, counters, solve_all_account_tasks

from airflow_provider_debitura.sandbox.scenarios import case_id_for
from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor
from airflow_provider_debitura.sensors.memory import TaskMemory


class FakeStateStore:
    """``context["task_state_store"]`` as Airflow 3.3 hands it to a task (JSON values per key)."""

    def __init__(self, *, broken: bool = False) -> None:
        self.values: dict[str, Any] = {}
        self.broken = broken

    def get(self, key: str, default: Any = None) -> Any:
        if self.broken:
            raise RuntimeError("API server unavailable")
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        if self.broken:
            raise RuntimeError("API server unavailable")
        self.values[key] = value


def try_(count: int, store: FakeStateStore | None = None, try_number: int = 1) -> dict[str, Any]:
    """The context of one rescheduled try (``count`` = reschedules so far)."""
    context: dict[str, Any] = {"task_reschedule_count": count, "ti": FakeTI(try_number)}
    if store is not None:
        context["task_state_store"] = store
    return context


def sensor(**kwargs) -> DebituraCaseUnblockedSensor:
    kwargs.setdefault("task_id", "gate")
    kwargs.setdefault("poke_interval", 1)
    kwargs.setdefault("timeout", 60)
    kwargs.setdefault("mode", "reschedule")
    return DebituraCaseUnblockedSensor(**kwargs)


def lookups(sb) -> int:
    return counters(sb).get("GET /cases/by-creditor-reference/{creditorReference}", 0)


def test_the_reference_is_looked_up_once_per_task_instance(debitura_conn):
    """Issue 16: three pokes cost 3 lookups + 3 case reads + 3 account reads. With the task state store (Airflow
    3.3+) the GUID found by the first try serves every later one: 2 requests per check, 1 lookup in all."""
    store = FakeStateStore()
    clear_counters(debitura_conn)
    for count in range(3):
        assert not sensor(creditor_reference="INV-1001").poke(try_(count, store)).is_done
    seen = counters(debitura_conn)
    assert lookups(debitura_conn) == 1
    assert seen["total"] == 1 + 3 * 2, seen


def test_without_a_state_store_each_try_looks_up_again(debitura_conn):
    clear_counters(debitura_conn)
    for count in range(2):
        assert not sensor(creditor_reference="INV-1001").poke(try_(count)).is_done
    assert lookups(debitura_conn) == 2


def test_a_broken_state_store_costs_a_lookup_not_the_check(debitura_conn):
    clear_counters(debitura_conn)
    result = sensor(creditor_reference="INV-1001").poke(try_(0, FakeStateStore(broken=True)))
    assert not result.is_done and lookups(debitura_conn) == 1


def test_checks_count_every_try_and_the_first_blockers_survive(debitura_conn):
    store = FakeStateStore()
    first = sensor(creditor_reference="INV-1001").poke(try_(0, store))
    assert not first.is_done
    solve_all_account_tasks(debitura_conn)
    done = sensor(creditor_reference="INV-1001").poke(try_(4, store))
    assert done.is_done
    record = done.xcom_value
    assert record["case_id"] == case_id_for("INV-1001") and record["checks"] == 5
    assert [t["type"] for t in record["blocked_by_on_first_check"]] == ["AssignBankAccount"]


def test_without_a_state_store_later_tries_report_no_first_blockers(debitura_conn):
    solve_all_account_tasks(debitura_conn)
    result = sensor(creditor_reference="INV-1005").poke(try_(2))
    assert result.is_done
    assert result.xcom_value["checks"] == 3 and result.xcom_value["blocked_by_on_first_check"] is None


def test_the_first_try_records_its_blockers_itself(debitura_conn):
    solve_all_account_tasks(debitura_conn)
    clear_counters(debitura_conn)
    result = sensor(case_id=case_id_for("INV-1003"), include_account_tasks=False).poke(try_(0))
    assert not result.is_done
    assert counters(debitura_conn)["total"] == 1  # its tasks name the case: no case read


def test_a_retry_starts_its_own_first_check(debitura_conn):
    store = FakeStateStore()
    sensor(creditor_reference="INV-1001").poke(try_(0, store, try_number=1))
    solve_all_account_tasks(debitura_conn)
    result = sensor(creditor_reference="INV-1001").poke(try_(0, store, try_number=2))
    assert result.xcom_value["blocked_by_on_first_check"] == []  # try 2's first check saw nothing


@pytest.mark.parametrize("context", [{}, {"task_state_store": None}])
def test_memory_without_a_store_remembers_nothing(context):
    memory = TaskMemory(context)
    memory.set("k", 1)
    assert not memory.available and memory.get("k") is None
