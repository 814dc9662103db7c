"""The coalesced poll: N gates on one connection cost one account read per interval, not 2N requests."""

from __future__ import annotations

import asyncio
import json
import math
import time

import pytest

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


# -- adaptive: direct checks when they cost less than the shared read --


async def _quiet(poller, gates: int, *, rounds: int = 0, timeout: float = 20) -> int:
    """Wait for a moment after ``rounds`` rounds when every gate waits for the next round (no request
    in flight); return the rounds delivered so far."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if poller.snapshots >= rounds and len(poller._waiters) == poller.subscribers == gates:
            return poller.snapshots
        await asyncio.sleep(0.005)
    raise AssertionError(f"no quiet moment: {poller.snapshots} rounds, {len(poller._waiters)} waiting")


def _gate(ref: str, **kwargs) -> DebituraCaseUnblockedTrigger:
    kwargs.setdefault("poll_interval", 0.3)
    kwargs.setdefault("end_time", time.time() + 30)
    return DebituraCaseUnblockedTrigger(case_id_for(ref), **kwargs)


async def _stop(tasks) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0)
    assert shared_poll.active_pollers() == {}


async def test_one_gate_on_a_large_queue_checks_directly_after_the_first_read(debitura_conn):
    """1 gate over 1,000 open tasks: a shared read costs 10 requests, the gate's own check 2."""
    debitura_conn.control("POST", "/scenario", {"name": "large:1000"})
    clear_counters(debitura_conn)
    tasks = [asyncio.ensure_future(_gate("LRG-000001").run().__anext__())]
    await asyncio.sleep(0.1)
    poller = shared_poll.active_pollers()["debitura_default"]
    rounds = await _quiet(poller, 1, rounds=5)
    seen = counters(debitura_conn)
    assert await _quiet(poller, 1) == rounds  # nothing moved while the counters were read
    shared, direct = poller.shared_reads, poller.direct_rounds
    assert poller.open_total == 1000 and poller.shared_pages == 10 and poller.direct_cost == 2
    assert not tasks[0].done()  # still blocked by account-level tasks
    await _stop(tasks)
    assert (shared, direct) == (1, rounds - 1)  # before the first read the queue size is unknown
    assert seen["GET /cases/{id}/tasks"] == direct
    assert seen["GET /tasks"] == 10 + direct  # one full read, then one account-level page per check
    assert seen["total"] == 10 + 2 * direct  # steady state: 2 per interval = min(2N, pages + 1)


async def test_more_gates_hand_back_to_one_shared_read(debitura_conn):
    debitura_conn.control("POST", "/scenario", {"name": "large:1000"})
    tasks = [asyncio.ensure_future(_gate("LRG-000001").run().__anext__())]
    await asyncio.sleep(0.1)
    poller = shared_poll.active_pollers()["debitura_default"]
    await _quiet(poller, 1, rounds=2)
    assert poller.direct_rounds >= 1
    # 6 gates x 2 = 12 requests >= 10 pages + 1: one shared read serves them all again.
    tasks += [asyncio.ensure_future(_gate(f"LRG-{i:06d}").run().__anext__()) for i in range(2, 7)]
    await _quiet(poller, 6, rounds=poller.snapshots + 2)
    direct_before = poller.direct_rounds
    start_rounds = await _quiet(poller, 6)
    start = counters(debitura_conn)["total"]
    end_rounds = await _quiet(poller, 6, rounds=start_rounds + 3)
    end = counters(debitura_conn)["total"]
    assert await _quiet(poller, 6) == end_rounds
    direct_after = poller.direct_rounds
    await _stop(tasks)
    assert direct_after == direct_before
    assert end - start == 10 * (end_rounds - start_rounds)  # pages only, no per-gate requests


async def test_a_subscriber_that_needs_the_read_keeps_it(debitura_conn):
    """The new-tasks watcher subscribes without ``direct_cost``: the poller must never skip its read."""
    debitura_conn.control("POST", "/scenario", {"name": "large:1000"})
    async with (
        shared_poll.subscribe("debitura_default", 0.1) as poller,
        shared_poll.subscribe("debitura_default", 0.1, direct_cost=2),
    ):
        snapshots = [await poller.next_snapshot() for _ in range(4)]
        assert poller.direct_cost is None and not poller.use_direct()
    assert all(s.ok and not s.direct and s.total == 1000 for s in snapshots)


async def test_probe_notices_a_shrunk_queue(debitura_conn, monkeypatch):
    monkeypatch.setattr(shared_poll, "PROBE_EVERY", 2)
    debitura_conn.control("POST", "/scenario", {"name": "large:1000"})
    async with shared_poll.subscribe("debitura_default", 0.05, direct_cost=2) as poller:
        first = await poller.next_snapshot()
        assert first.ok and first.total == 1000
        assert [(await poller.next_snapshot()).direct for _ in range(2)] == [True, True]
        debitura_conn.control("POST", "/scenario", {"name": "demo"})  # 6 open tasks: 1 page
        clear_counters(debitura_conn)
        after = await poller.next_snapshot()  # the probe first, then the (now cheaper) shared read
        assert after.ok and not after.direct and after.total == 6
        assert poller.probes == 1
        assert counters(debitura_conn)["GET /tasks"] == 2  # the 1-task probe + the 1-page read
    snap = shared_poll.AccountSnapshot.skipped(0.0)
    assert not snap.ok and snap.direct and not snap.verdict(case_id_for("X")).is_unblocked


@pytest.mark.parametrize("kind", ["status", "malformedJson"])
async def test_direct_rounds_never_open_on_a_failed_read(debitura_conn, monkeypatch, kind):
    """GATE has no tasks of its own; only the account-level task blocks it, so reading a failed
    account page as empty would open it. 300 other tasks make the direct checks the cheaper path."""
    conn = json.loads(debitura_conn.conn_json())
    conn["extra"] = {**conn.get("extra", {}), "max_attempts": 1}
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))
    account_task = "00000000-0000-4000-8000-0000000000ab"
    scenario = {
        "name": "direct-faults",
        "cases": [{"creditorReference": "FILL"}, {"creditorReference": "GATE"}],
        "tasks": [{"type": "ReplyToChat", "caseCreditorReference": "FILL", "minutesAgo": 1000 - i} for i in range(299)]
        + [{"id": account_task, "type": "AssignBankAccount"}],
    }
    debitura_conn.control("POST", "/scenario", scenario)
    task = asyncio.ensure_future(_gate("GATE", poll_interval=0.2).run().__anext__())
    await asyncio.sleep(0.1)
    poller = shared_poll.active_pollers()["debitura_default"]
    await _quiet(poller, 1, rounds=2)
    assert poller.direct_rounds >= 1
    rule = {"kind": kind, "count": 3, "path": "/tasks"} | ({"status": 503} if kind == "status" else {})
    debitura_conn.control("PUT", "/faults", {"rules": [rule]})
    debitura_conn.control("POST", f"/tasks/{account_task}/solve", {})
    event = (await asyncio.wait_for(task, 15)).payload
    assert event["status"] == "success"
    faults = debitura_conn.control("GET", "/faults").json()
    assert all(r["count"] == 0 for r in faults["rules"]), faults  # it polled through all 3 failed reads
    assert poller.shared_reads == 1  # every verdict after the first read came from direct checks
    await asyncio.sleep(0)
    assert shared_poll.active_pollers() == {}
