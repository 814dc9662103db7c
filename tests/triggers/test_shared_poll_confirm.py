"""Gates that clear together (issue 24): a gate a full read would open but whose confirming read did not fit the
round is pending, not backed off; it is due the next round and its case is read first there."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from helpers.gates import first_event, gate, poller, stop, until

from airflow_provider_debitura.gate import GateSpec
from airflow_provider_debitura.sandbox.scenarios import case_id_for
from airflow_provider_debitura.triggers.poll_confirm import EXISTS_EVERY, Confirmations, existence_checks

N = 4
REFS = [f"CLR-{i}" for i in range(1, N + 1)]


def _one_blocker_per_case() -> dict[str, Any]:
    """N cases with one open task each, nothing account-level: one page, which matches its own total (atomic),
    so it stands for the account-level read and a round has room for K = 1 case read:
    ``2 * min(N + 1, P) = 2`` with P = 1, the full read and one case."""
    return {
        "name": "clear-together",
        "cases": [{"creditorReference": ref} for ref in REFS],
        "tasks": [{"type": "ReplyToChat", "caseCreditorReference": ref} for ref in REFS],
    }


async def test_gates_that_clear_together_open_within_ceil_n_over_k_rounds(debitura_conn):
    """N = 4 gates blocked "for a day" (an injected clock: each would next check in max_wait = 600 s) clear at once
    with room for K = 1 case read a round: gate i opens in round i after the clearing (ceil(N / K) = 4 rounds,
    0.1 s apart), each on its own case read, every round within 2 x min(N + 1, P) = 2 requests. Before, the
    gates that did not fit waited their whole backoff (up to 600 s) for their next check."""
    sb = debitura_conn
    sb.control("POST", "/scenario", _one_blocker_per_case())
    clock = [time.time()]
    triggers = [gate(ref, poll_interval=0.1, max_wait=600.0) for ref in REFS]
    for trigger in triggers:
        trigger._clock = lambda: clock[0]
    opened_in: dict[str, int] = {}
    tasks = [first_event(t) for t in triggers]
    try:
        poll = await poller()
        for ref, task in zip(REFS, tasks, strict=True):
            task.add_done_callback(lambda _, ref=ref: opened_in.setdefault(ref, poll.snapshots))
        await until(lambda: poll.snapshots >= 2 and not poll.busy, 30, "two blocked rounds")
        # Between two rounds, in one stretch of the loop: the gates have been blocked for a day, and clear.
        clock[0] += 86_400.0
        for task in sb.state.list_tasks("Open"):
            sb.state.solve_task(task["id"])
        sb.state.clear_requests()
        cleared_after = poll.snapshots
        events = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    finally:
        await stop([t for t in tasks if not t.done()])
    assert [e["status"] for e in events] == ["success"] * N, events
    assert sorted(opened_in[ref] - cleared_after for ref in REFS) == list(range(1, N + 1)), opened_in
    assert list(poll.round_requests)[-N:] == [2] * N  # each round: the one-page full read and one case
    case_reads = [r["path"] for r in sb.state.requests() if r["path"].startswith("/cases/")]
    assert sorted(case_reads) == sorted(f"/cases/{case_id_for(ref)}/tasks" for ref in REFS)  # each once


def test_pending_cases_come_first_then_new_ones_then_existence_checks():
    confirmations = Confirmations()
    a, b, c, d = (GateSpec.of(case_id_for(ref)) for ref in ("A", "B", "C", "D"))
    assert confirmations.choose([a, b, c], [], room=1, round_no=0) == [a.case_id]
    confirmations.read([a.case_id], 0)
    assert confirmations.pending == [b.case_id, c.case_id]
    # D is new in round 1: it queues behind B and C, whatever the order the round lists its gates in
    assert confirmations.choose([d, c, b], [], room=2, round_no=1) == [b.case_id, c.case_id]
    confirmations.read([b.case_id, c.case_id], 1)
    # C is blocked again (no longer opening): it drops out; held A is due its existence check after EXISTS_EVERY
    assert confirmations.choose([d], [a], room=5, round_no=2) == [d.case_id]
    assert confirmations.choose([d], [a], room=5, round_no=5) == [d.case_id, a.case_id]


def test_existence_checks_take_a_tenth_of_a_full_read_a_round_not_the_whole_confirm_budget():
    """1,000 held gates at 20,000 open tasks (P = 201): 21 existence checks a round, not 201 (a round costs
    P + 21, not 2 x P), the longest unread first, so each case is still checked in turn."""
    assert [existence_checks(p) for p in (None, 1, 10, 11, 51, 201, 501)] == [8, 8, 8, 8, 8, 21, 51]
    confirmations = Confirmations()
    held = [GateSpec.of(case_id_for(f"H{i}")) for i in range(1_000)]
    assert confirmations.choose([], held, room=201, round_no=0, checks=21) == []  # none due before EXISTS_EVERY
    checked: list[str] = []
    for round_no in range(EXISTS_EVERY, EXISTS_EVERY + 47):
        cases = confirmations.choose([], held, room=201, round_no=round_no, checks=21)
        assert len(cases) == 21
        confirmations.read(cases, round_no)
        checked += cases
    assert len(set(checked)) == len(checked) == 47 * 21  # in turn: no case twice before every case once
    opening = GateSpec.of(case_id_for("OPEN"))
    assert confirmations.choose([opening], held, room=2, round_no=60, checks=21)[0] == opening.case_id
