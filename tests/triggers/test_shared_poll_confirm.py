"""Gates that clear together (issue 24): a gate a full read would open but whose confirming read did not fit the
round is pending, not backed off; it is due the next round and its case is read first there."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from helpers.gates import first_event, gate, poller, stop, until

from airflow_provider_debitura.gate import GateSpec
from airflow_provider_debitura.sandbox.scenarios import case_id_for
from airflow_provider_debitura.triggers import poll_confirm
from airflow_provider_debitura.triggers.poll_confirm import (
    EXISTS_EVERY,
    OPEN_FLOOR,
    Confirmations,
    confirm_room,
    existence_checks,
)
from airflow_provider_debitura.triggers.poll_subscribers import Member
from airflow_provider_debitura.triggers.shared_poll import FORGET_SLACK, SharedAccountPoller

N = 4
REFS = [f"CLR-{i}" for i in range(1, N + 1)]


def _one_blocker_per_case() -> dict[str, Any]:
    """N cases with one open task each, nothing account-level: one page, which matches its own total (atomic),
    so it stands for the account-level read, and ``2 * min(N + 1, P) = 2`` with P = 1 leaves room for one case
    read a round: the full read and one case."""
    return {
        "name": "clear-together",
        "cases": [{"creditorReference": ref} for ref in REFS],
        "tasks": [{"type": "ReplyToChat", "caseCreditorReference": ref} for ref in REFS],
    }


@pytest.mark.parametrize(
    ("floor", "opened", "costs"),
    [
        # the default floor (100): every gate a verified read saw unblocked is read in the round, K = N
        (None, [1] * N, [1 + N]),
        # a floor of 2: K = 2, so the gates open in ceil(N / K) = 2 rounds, 2 a round, pending ones first
        (2, [1, 1, 2, 2], [3, 3]),
    ],
    ids=["default-floor", "floor-2"],
)
async def test_gates_that_clear_together_open_within_ceil_n_over_k_rounds(
    debitura_conn, monkeypatch, floor, opened, costs
):
    """N = 4 gates blocked "for a day" (an injected clock: each would next check in max_wait = 600 s) clear at once
    on a one-page queue, where ``2 * min(N + 1, P)`` leaves room for one case read a round: the floor for gates a
    verified read saw unblocked (``OPEN_FLOOR``) gives K case reads a round, and gate i opens in round
    ``ceil(i / K)`` after the clearing (0.1 s apart), each on its own case read. Before the floor, K was 1: in a
    simulated 3-hour burst (``bench/simulated_day.py``) 77 of 1,000 gates had not opened an hour after their
    blocker cleared. Before pending gates, those that did not fit waited their whole backoff (up to 600 s)."""
    if floor is not None:
        monkeypatch.setattr(poll_confirm, "OPEN_FLOOR", floor)
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
    assert sorted(opened_in[ref] - cleared_after for ref in REFS) == opened, opened_in
    assert list(poll.round_requests)[-len(costs) :] == costs  # each round: the one-page full read and K cases
    case_reads = [r["path"] for r in sb.state.requests() if r["path"].startswith("/cases/")]
    assert sorted(case_reads) == sorted(f"/cases/{case_id_for(ref)}/tasks" for ref in REFS)  # each once


def test_confirm_room_is_what_the_round_budget_leaves_but_at_least_the_unblocked_gates_up_to_the_floor():
    # 1,000 due gates over 5,000 open tasks (P = 51): 2 x 51 - 51 = 51, less the account-level read
    assert confirm_room(1_000, 51, 51, unblocked=0, account=True) == 50
    assert confirm_room(1_000, 51, 51, unblocked=80, account=True) == 80
    assert confirm_room(1_000, 51, 51, unblocked=5_000, account=True) == OPEN_FLOOR == 100
    # a one-page queue: 2 x 1 - 1 = 1; gates in doubt (a failed or unverified read) get no floor
    assert confirm_room(89, 1, 1, unblocked=0, account=False) == 1
    assert confirm_room(89, 1, 1, unblocked=89, account=False) == 89
    assert confirm_room(89, 1, 3, unblocked=0, account=True) == 1  # never 0: some gate must be able to open


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


async def test_the_poll_forgets_the_cases_of_gates_gone_once_they_outnumber_its_gates():
    """A triggerer that runs for weeks sees many gates come and go: the existence-check clock of a case whose gates
    left is forgotten once such cases pass twice the subscribers (plus ``FORGET_SLACK``), not kept forever."""
    poll = SharedAccountPoller("debitura_default", hook_factory=lambda conn_id: None)  # type: ignore[arg-type,return-value]
    staying = [GateSpec.of(case_id_for(f"STAY-{i}")) for i in range(10)]
    for spec in staying:
        poll.members.join(Member(60.0, spec))
    gone = [GateSpec.of(case_id_for(f"GONE-{i}")) for i in range(10 + FORGET_SLACK + 1)]  # 2 x 10 + slack, + 1
    confirmations = poll.reads.confirmations
    confirmations.choose([gone[0]], [*staying, *gone[1:]], room=0, round_no=0)  # every held case's clock starts
    assert confirmations.remembered == 10 + len(gone) - 1 and confirmations.pending == [gone[0].case_id]
    poll._forget_gone_cases()
    assert confirmations.remembered == 2 * 10 + FORGET_SLACK  # not more than twice the gates + the slack yet
    confirmations.choose([gone[0]], [*staying, *gone], room=0, round_no=1)
    poll._forget_gone_cases()
    assert confirmations.remembered == 10 and confirmations.pending == []
    # the gates still there keep their clock: all are due their existence check EXISTS_EVERY rounds after round 0
    due = confirmations.choose([], staying, room=20, round_no=EXISTS_EVERY, checks=20)
    assert sorted(due) == sorted(g.case_id for g in staying)
