"""The trigger: serialisation, and run() against the sandbox in both polling modes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from helpers.sandbox import open_tasks

from airflow_provider_debitura import gate
from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.triggers import shared_poll
from airflow_provider_debitura.triggers.case_gate import DebituraCaseUnblockedTrigger

MISSING = "3f2b8c1e-4d5a-4e6f-8a7b-9c0d1e2f3a4b"


def make(case_id: str, **kwargs) -> DebituraCaseUnblockedTrigger:
    kwargs.setdefault("poll_interval", 0.2)
    kwargs.setdefault("end_time", time.time() + 20)
    return DebituraCaseUnblockedTrigger(case_id, **kwargs)


async def first_event(trigger: DebituraCaseUnblockedTrigger, timeout: float = 15) -> dict:
    events = []

    async def collect():
        async for event in trigger.run():
            events.append(event.payload)

    await asyncio.wait_for(collect(), timeout)
    assert len(events) == 1, events
    return events[0]


def account_task_id(sb) -> str:
    return next(t["id"] for t in open_tasks(sb) if t["caseId"] is None)


def test_serialisation_round_trip():
    trigger = DebituraCaseUnblockedTrigger(
        "d5ba0833-fd38-506d-8521-5ec5ae679c33",
        blocking_task_types=["ReplyToChat", "SomeFutureType"],
        poll_interval=7,
        end_time=1_800_000_000.5,
        checks=1,
        first_blockers=[{"id": "a", "type": "SignContract", "title": "t", "caseId": None, "solutionUrl": "u"}],
        max_wait=600,
        blocked_since=1_799_990_000.25,
    )
    classpath, kwargs = trigger.serialize()
    assert kwargs["backoff"] is True and kwargs["max_wait"] == 600.0 and kwargs["blocked_since"] == 1_799_990_000.25
    assert classpath == "airflow_provider_debitura.triggers.case_gate.DebituraCaseUnblockedTrigger"
    try:
        from airflow.sdk import serde

        restored_kwargs = serde.deserialize(serde.serialize(kwargs))
    except ImportError:  # Airflow 2: trigger kwargs are stored as JSON
        restored_kwargs = json.loads(json.dumps(kwargs))
    assert restored_kwargs == kwargs
    module, _, name = classpath.rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    assert cls(**restored_kwargs).serialize() == (classpath, kwargs)


def test_the_trigger_backs_off_on_the_sensors_schedule_and_starts_again_when_the_blockers_change():
    """The deferred gate follows gate.backoff_interval from the sensor's first check (simulated clock, no sleeps);
    its next round is what it asks of the shared poll (the step's return value)."""
    clock = [1_000_000.0]
    trigger = DebituraCaseUnblockedTrigger(
        "d5ba0833-fd38-506d-8521-5ec5ae679c33", poll_interval=60, checks=1, blocked_since=clock[0] - 60, coalesce=False
    )
    trigger._clock = lambda: clock[0]
    first, second = (gate.GateVerdict(gate.GateState.BLOCKED, gate.read_records([blocker(i)]).open) for i in ("a", "b"))
    intervals = []
    for check in range(60):
        verdict = first if check < 40 else second
        next_round = trigger._record(verdict, started=500.0)
        intervals.append(next_round - 500.0)
        clock[0] += intervals[-1]
    assert intervals[:10] == [60.0] * 10 and intervals[10] > 60.0  # 10 minutes blocked, counted from the sensor's check
    assert max(intervals[:40]) == 900.0 == intervals[39]
    assert intervals[40] == 60.0 and intervals[41] == 60.0  # new blockers: from poll_interval again
    assert trigger.progress.checks == 61
    fixed = DebituraCaseUnblockedTrigger("d5ba0833-fd38-506d-8521-5ec5ae679c33", poll_interval=60, backoff=False)
    fixed._clock = lambda: clock[0] + 1e6
    fixed.progress.since = 0.0
    assert fixed._interval() == 60.0


def test_gates_on_the_shared_poll_blocked_since_different_times_meet_in_the_same_rounds():
    """Capped gates are due on the wall-clock grid of max_wait, so one read of the queue serves them all; the wait is
    never longer than the schedule's interval."""
    verdict = gate.GateVerdict(gate.GateState.BLOCKED, gate.read_records([blocker("a")]).open)
    due_times = []
    for offset in (0.0, 1234.5, 7777.0, 40_000.25):
        clock = [1_000_000.0 + offset]
        trigger = DebituraCaseUnblockedTrigger(
            "d5ba0833-fd38-506d-8521-5ec5ae679c33", poll_interval=60, checks=1, blocked_since=clock[0] - 60
        )
        trigger._clock = lambda clock=clock: clock[0]
        dues = []
        while clock[0] < 1_100_000.0:
            wait = trigger._record(verdict, started=0.0)
            assert 0.0 <= wait <= trigger._interval() <= 900.0
            clock[0] += wait
            dues.append(clock[0])
        due_times.append({d for d in dues if d > 1_060_000.0})  # all four capped by then
    assert due_times[0] == due_times[1] == due_times[2] == due_times[3]
    assert all(d % 900 == 0 for d in due_times[0])


def blocker(task_id: str) -> dict:
    return {
        "id": task_id, "type": "ReplyToChat", "status": "Open", "caseId": "d5ba0833-fd38-506d-8521-5ec5ae679c33",
        "dateCreated": "2026-01-01T00:00:00Z",
    }  # fmt: skip


def test_a_max_wait_shorter_than_the_interval_is_refused():
    with pytest.raises(DebituraConfigError, match="max_wait=30 s is shorter than poll_interval=60 s"):
        DebituraCaseUnblockedTrigger("d5ba0833-fd38-506d-8521-5ec5ae679c33", poll_interval=60, max_wait=30)
    DebituraCaseUnblockedTrigger(
        "d5ba0833-fd38-506d-8521-5ec5ae679c33", poll_interval=60, max_wait=30, backoff=False
    )  # unused without a backoff: accepted, as Airflow accepts it


async def test_a_trigger_serialised_by_the_earlier_code_still_runs(debitura_conn, case_ids):
    """The kwargs a triggerer stored before this version (no case_label, backoff, ...) still deserialise."""
    earlier = {
        "case_id": case_ids["INV-1005"],
        "blocking_task_types": None,
        "include_account_tasks": False,
        "debitura_conn_id": "debitura_default",
        "poll_interval": 0.2,
        "end_time": time.time() + 20,
        "checks": 1,
        "first_blockers": [],
        "coalesce": True,
    }
    event = await first_event(DebituraCaseUnblockedTrigger(**earlier))
    assert event["status"] == "success" and event["checks"] == 2 and event["blocked_by_on_first_check"] == []


@pytest.mark.parametrize("coalesce", [False, True])
async def test_blocked_then_cleared_yields_success(debitura_conn, case_ids, coalesce):
    debitura_conn.control("POST", f"/tasks/{account_task_id(debitura_conn)}/solve", {"afterSeconds": 1})
    started = time.monotonic()
    event = await first_event(make(case_ids["INV-1001"], coalesce=coalesce, checks=1, first_blockers=[]))
    assert time.monotonic() - started >= 0.9
    assert event["status"] == "success"
    assert event["case_id"] == case_ids["INV-1001"]
    assert event["checks"] >= 2
    assert shared_poll.active_pollers() == {}  # the last gate out stopped the shared poll


@pytest.mark.parametrize("coalesce", [False, True])
async def test_missing_case_yields_error(debitura_conn, coalesce):
    debitura_conn.control("POST", f"/tasks/{account_task_id(debitura_conn)}/solve", {})
    event = await first_event(make(MISSING, coalesce=coalesce))
    assert event["status"] == "error"
    assert "404" in event["message"]


@pytest.mark.parametrize("coalesce", [False, True])
async def test_wrong_key_yields_error(sandbox, monkeypatch, case_ids, coalesce):
    """A revoked key fails the gate at once in both modes, not at its timeout (the shared poll's failure is
    fatal, so the gate checks on its own and reports the 401)."""
    conn = json.loads(sandbox.conn_json()) | {"password": "wrong-key-123456"}
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))
    started = time.monotonic()
    event = await first_event(make(case_ids["INV-1005"], coalesce=coalesce, end_time=time.time() + 30))
    assert event["status"] == "error" and "401" in event["message"]
    assert time.monotonic() - started < 10


async def test_shared_poll_picks_up_a_rotated_key(sandbox, monkeypatch, case_ids):
    """After a 401 the shared poll re-reads the connection, so fixing the key needs no triggerer restart."""
    from airflow_provider_debitura.triggers.shared_poll import subscribe

    good = sandbox.conn_json()
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(json.loads(good) | {"password": "revoked-key-1"}))
    async with subscribe("debitura_default", 0.2) as subscription:
        first = await subscription.next_snapshot()
        assert first is not None and not first.ok and "401" in first.error
        monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", good)
        second = await subscription.next_snapshot()
        assert second is not None and second.ok and second.total > 0


async def test_deadline_yields_timeout(debitura_conn, case_ids):
    event = await first_event(make(case_ids["INV-1003"], end_time=time.time() + 0.5))
    assert event["status"] == "timeout"


@pytest.mark.parametrize("coalesce", [False, True])
@pytest.mark.parametrize("kind", ["status", "malformedJson", "html200", "drop"])
async def test_transient_faults_keep_polling_without_false_success(
    debitura_conn, monkeypatch, case_ids, kind, coalesce
):
    """INV-1005 has no case tasks: only the account-level task blocks it, so reading a failed
    account listing as "empty" would open the gate. It must stay shut until the task is solved."""
    conn = json.loads(debitura_conn.conn_json())
    conn["extra"] = {**conn.get("extra", {}), "max_attempts": 1}
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))
    rule = {"kind": kind, "count": 4, "path": "/tasks"} | ({"status": 503} if kind == "status" else {})
    debitura_conn.control("PUT", "/faults", {"rules": [rule]})
    task = asyncio.ensure_future(first_event(make(case_ids["INV-1005"], coalesce=coalesce)))
    await asyncio.sleep(1.2)
    assert not task.done(), task.result()
    faults = debitura_conn.control("GET", "/faults").json()
    assert all(r["count"] == 0 for r in faults["rules"]), faults  # the faults were really hit
    debitura_conn.control("POST", f"/tasks/{account_task_id(debitura_conn)}/solve", {})
    event = await task
    assert event["status"] == "success"


async def test_drift_between_pages_gives_no_wrong_verdict(debitura_conn):
    """Solving a task on page 1 right after it is read shifts the queue: a naive page loop then
    never sees the one task on page 2, and its case would look unblocked."""
    first_filler = str(uuid.uuid4())
    scenario = {
        "name": "drift",
        "cases": [{"creditorReference": "FILL"}, {"creditorReference": "VICTIM"}],
        "tasks": [
            {"type": "ReplyToChat", "caseCreditorReference": "FILL", "minutesAgo": 300 - i}
            | ({"id": first_filler} if i == 0 else {})
            for i in range(100)
        ]
        + [{"type": "ReviewPartner", "caseCreditorReference": "VICTIM", "minutesAgo": 1}],
    }
    debitura_conn.control("POST", "/scenario", scenario)
    with debitura_conn.client() as client:
        page2 = client.get("/tasks", params={"Page": 2, "PageSize": 100}).json()["tasks"]
    victim = page2[0]["caseId"]
    debitura_conn.control(
        "POST",
        "/events",
        {
            "at": {"afterRequests": {"method": "GET", "path": "/tasks", "count": 1}},
            "action": {"type": "solveTask", "taskId": first_filler},
        },
    )
    debitura_conn.control("DELETE", "/requests")
    task = asyncio.ensure_future(first_event(make(victim, coalesce=True)))
    await asyncio.sleep(1.5)
    assert not task.done(), task.result()
    assert debitura_conn.control("GET", "/events").json()[0]["fired"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert shared_poll.active_pollers() == {}


def test_a_trigger_deferred_before_the_module_moved_resumes_through_its_old_classpath():
    """Airflow stores a deferred trigger's classpath; one stored before ``triggers/debitura.py`` became
    ``triggers/case_gate.py`` is re-created from the old path after an upgrade."""
    from importlib import import_module

    trigger = DebituraCaseUnblockedTrigger("LRG-000001", poll_interval=5)
    _, kwargs = trigger.serialize()
    module, _, name = "airflow_provider_debitura.triggers.debitura.DebituraCaseUnblockedTrigger".rpartition(".")
    resumed = getattr(import_module(module), name)(**kwargs)
    assert type(resumed) is DebituraCaseUnblockedTrigger and resumed.serialize() == trigger.serialize()
