"""The coalesced poll: N gates on one connection cost one account read per interval, not 2N requests."""

from __future__ import annotations

import asyncio
import math
import time

from airflow_provider_debitura.sandbox.scenarios import case_id_for
from airflow_provider_debitura.triggers import shared_poll
from airflow_provider_debitura.triggers.debitura import DebituraCaseUnblockedTrigger

from .conftest import clear_counters, counters


async def test_many_gates_share_one_read_per_interval(debitura_conn):
    debitura_conn.control("POST", "/scenario", {"name": "large:1000"})  # 200 cases, ~2% account-level tasks
    gates = 50
    triggers = [
        DebituraCaseUnblockedTrigger(case_id_for(f"LRG-{i + 1:06d}"), poll_interval=0.5, end_time=time.time() + 30)
        for i in range(gates)
    ]
    clear_counters(debitura_conn)
    tasks = [asyncio.ensure_future(t.run().__anext__()) for t in triggers]
    await asyncio.sleep(0.1)
    pollers = shared_poll.active_pollers()
    assert list(pollers) == ["debitura_default"] and pollers["debitura_default"].subscribers == gates
    await asyncio.sleep(2.4)
    snapshots = pollers["debitura_default"].snapshots
    seen = counters(debitura_conn)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0)
    assert shared_poll.active_pollers() == {}  # refcount reached zero: the poll loop is gone

    assert not any(t.done() and not t.cancelled() for t in tasks)  # every gate is blocked (account tasks)
    per_read = math.ceil(1000 / 100)
    assert 3 <= snapshots <= 7
    assert seen["GET /tasks"] <= (snapshots + 1) * per_read  # +1: a read in flight when we counted
    assert seen["total"] == seen["GET /tasks"]  # no per-gate requests at all while blocked
    assert seen["total"] / max(snapshots, 1) <= per_read + 1 < 2 * gates


async def test_gate_confirms_an_unblocked_snapshot_with_one_direct_check(debitura_conn, case_ids):
    for task in await _open_account_tasks(debitura_conn):
        debitura_conn.control("POST", f"/tasks/{task}/solve", {})
    clear_counters(debitura_conn)
    trigger = DebituraCaseUnblockedTrigger(case_ids["INV-1005"], poll_interval=0.2, end_time=time.time() + 10)
    events = [e.payload async for e in trigger.run()]
    assert [e["status"] for e in events] == ["success"]
    seen = counters(debitura_conn)
    assert seen["GET /cases/{id}/tasks"] == 1  # the confirmation
    assert seen["GET /tasks"] == 2  # one shared read + the confirmation's account-level page


async def test_late_subscriber_gets_a_snapshot_started_after_it_asked(debitura_conn):
    async with shared_poll.subscribe("debitura_default", 0.3) as poller:
        first = await poller.next_snapshot()
        asked = time.time()
        second = await poller.next_snapshot()
        assert second.taken_at >= asked > first.taken_at
        assert 0.25 <= second.taken_at - first.taken_at < 1.0  # paced by the interval
    assert shared_poll.active_pollers() == {}


async def _open_account_tasks(sb) -> list[str]:
    with sb.client() as client:
        return [t["id"] for t in client.get("/tasks", params={"PageSize": 100}).json()["tasks"] if t["caseId"] is None]
