"""The shared poll against the sandbox: N gates over P pages cost at most min(N + 1, P) requests a round.

Every request count below is the sandbox's own (``/_sandbox/counters``), checked against what the poller
says each round sent.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from helpers.gates import clear_counters, counters, gate, poller, running, until

from airflow_provider_debitura.gate import GateSpec
from airflow_provider_debitura.sandbox.scenarios import case_id_for
from airflow_provider_debitura.triggers import poll_round, shared_poll


async def _rounds(sb, gates: list, rounds: int) -> tuple[list[int], dict[str, int], shared_poll.SharedAccountPoller]:
    """Run the gates for ``rounds`` rounds; the requests of each round, and the sandbox's counters (read
    between two rounds, so that no request is in flight)."""
    clear_counters(sb)
    async with running(gates) as tasks:
        poll = await poller()
        await until(lambda: poll.snapshots >= rounds and not poll.busy, 240, f"{rounds} rounds")
        assert not any(t.done() for t in tasks), [t.result() for t in tasks if t.done()]
    seen = counters(sb)
    per_round = list(poll.round_requests)
    # The poller's count is the sandbox's; under load a next round may have begun before the gates stopped.
    assert sum(per_round) <= seen["total"] <= sum(per_round) + max(per_round), (per_round, seen)
    return per_round, seen, poll


@pytest.mark.parametrize(
    ("n", "first", "then"),
    [
        (1, 3, 2),  # page 1 (the probe: 50 pages) + the case + the account-level tasks; then 2
        (10, 12, 11),  # 1 + 10 + 1, then N + 1 = 11 < 50 pages
        # page 1 shows 5,000 open: P = 5,000 // 100 + 1 = 51 requests for a full read (50 pages, last first, and the
        # empty page 51 after the full last page) < 61, shared by all
        (60, 52, 51),
    ],
)
async def test_n_gates_cost_at_most_min_n_plus_1_p_every_round(debitura_conn, n, first, then):
    debitura_conn.control("POST", "/scenario", {"name": "large:5000"})  # 50 pages; every case blocked
    interval = 0.3 if n < 49 else 2.0  # a 50-page read takes longer than 0.3 s here: leave gaps between rounds
    gates = [gate(f"LRG-{i + 1:06d}", poll_interval=interval) for i in range(n)]
    per_round, seen, poll = await _rounds(debitura_conn, gates, 4)
    served = list(poll.round_gates)
    # On a loaded machine some gates may subscribe only after round 1 began: that round serves those present,
    # still at the bound (min(N + 1, P) + the size probe for its N), and every gate is in round 2.
    assert per_round[0] == (first if served[0] == n else 1 + min(served[0] + 1, 51)) <= min(n + 2, 52)
    assert served[1:4] == [n] * 3
    assert per_round[1:4] == [then] * 3 and then <= min(n + 1, 51)
    assert poll.reads.open_total == 5000
    if n < 49:
        assert seen["GET /cases/{id}/tasks"] == sum(served)  # one case read per gate per round
        assert seen["GET /tasks"] == 1 + len(per_round)  # the probe page, and one account-level read a round


async def test_gates_on_one_case_share_its_read(debitura_conn):
    debitura_conn.control("POST", "/scenario", {"name": "large:5000"})
    gates = [
        gate("LRG-000007", blocking_task_types=types)
        for types in (None, ["ClientInputRequired"], ["Generic", "SignContract"])
    ]
    per_round, _, _ = await _rounds(debitura_conn, gates, 3)
    assert per_round[1:3] == [2, 2]  # 1 case read + 1 account-level read for all three


async def test_gates_without_account_level_types_skip_that_read(debitura_conn):
    debitura_conn.control("POST", "/scenario", {"name": "large:5000"})
    gates = [gate(f"LRG-{i:06d}", blocking_task_types=["ReplyToChat", "Generic"]) for i in (1, 2)]
    per_round, _, _ = await _rounds(debitura_conn, gates, 3)
    assert per_round[1:3] == [2, 2]  # two case reads, no account-level read


async def test_a_whole_queue_subscriber_makes_the_rounds_read_every_page(debitura_conn):
    """The new-task watcher needs every open task: while it asks, rounds read the queue, and gates share it."""
    debitura_conn.control("POST", "/scenario", {"name": "large:1000"})  # 10 pages, and the empty 11th after them
    clear_counters(debitura_conn)
    async with running([gate("LRG-000001")]), shared_poll.subscribe("debitura_default", 0.3, records=True) as sub:
        snapshots = [await sub.next_snapshot() for _ in range(3)]
        poll = await poller()
    assert all(s is not None and s.ok and s.full and s.total == 1000 for s in snapshots)
    assert len(snapshots[-1].records()) == 1000 and snapshots[-1].records()[0]["dateCreated"]
    assert set(list(poll.round_requests)[1:]) == {11}  # after the first round: one full read, nothing else


async def test_the_watcher_gets_rounds_at_its_own_interval_next_to_a_fast_gate(debitura_conn):
    debitura_conn.control("POST", "/scenario", {"name": "demo"})
    loop = asyncio.get_running_loop()
    async with running([gate("INV-1003", poll_interval=0.05)]), shared_poll.subscribe("debitura_default", 0.6) as sub:
        first = await sub.next_snapshot()
        assert first is not None
        second = await sub.next_snapshot(first.started + 0.6)
        assert second is not None and second.started - first.started >= 0.6 - 1e-3
        assert loop.time() - first.started < 2.0
        poll = await poller()  # the gate's own rounds keep going at its interval, not the watcher's
        await until(lambda: poll.snapshots >= 5, 30, "the gate's own rounds")


async def test_a_shrunk_queue_is_noticed_in_a_round_with_a_request_to_spare(debitura_conn, monkeypatch):
    """Two gates on one case need 2 requests a round, leaving 1 under min(N + 1, P) = 3 for page 1."""
    monkeypatch.setattr(poll_round, "PROBE_EVERY", 2)
    debitura_conn.control("POST", "/scenario", _gate_and_fillers(299))  # 3 pages
    clear_counters(debitura_conn)
    async with running([gate("GATE"), gate("GATE", blocking_task_types=["ReplyToChat", "SignContract"])]):
        poll = await poller()
        await until(lambda: poll.snapshots >= 3 and poll.reads.direct_rounds >= 2, 30, "direct rounds")
        debitura_conn.control("POST", "/scenario", _gate_and_fillers(5))  # the same case, 6 open tasks: 1 page
        await until(lambda: poll.reads.open_total == 6 and poll.reads.probes >= 1, 30, "the probe")
        await until(lambda: poll.reads.shared_reads >= 1 and poll.round_requests[-1] == 1, 30, "a 1-page full read")
    assert max(poll.round_requests) <= 3


# -- a full read that cannot be trusted: the gates re-read directly in the same round --


async def test_a_verified_read_opens_the_gate_after_one_read_of_its_own_case(debitura_conn):
    for task in _account_task_ids(debitura_conn):
        debitura_conn.control("POST", f"/tasks/{task}/solve", {})
    clear_counters(debitura_conn)
    async with running([gate("INV-1005", checks=1)]) as tasks:
        event = await asyncio.wait_for(tasks[0], 15)
    assert event["status"] == "success" and event["checks"] == 2
    # One page, verified by the listing; the account-level part stands as read. The case's own read (1 request,
    # once, when the gate opens) is what tells "no tasks" from "no case": see the next test.
    assert counters(debitura_conn) == {"GET /tasks": 1, "GET /cases/{id}/tasks": 1, "total": 2}


async def test_a_case_deleted_while_its_gate_waits_fails_the_gate_as_in_poke_mode(debitura_conn):
    """A full read of the queue holds no task of a case that was deleted or merged meanwhile, which looks like a
    case with nothing blocking it: the gate's own case read before opening answers 404, and the gate fails."""
    case_id = case_id_for("INV-1002")  # blocked by its own ReplyToChat (and the account-level task)
    async with running([gate("INV-1002", checks=1)]) as tasks:
        await until(lambda: counters(debitura_conn).get("GET /tasks", 0) >= 1, timeout=15)
        debitura_conn.control("POST", f"/cases/{case_id}/merge", {"keepListingSeconds": 0})  # its tasks go too
        for task in _account_task_ids(debitura_conn):
            debitura_conn.control("POST", f"/tasks/{task}/solve", {})
        event = await asyncio.wait_for(tasks[0], 15)
    assert event["status"] == "error" and "404" in event["message"], event
    assert counters(debitura_conn).get("POST /cases/{id}/chats", 0) == 0


async def test_an_opening_from_an_unverified_read_is_confirmed_in_the_same_round(debitura_conn):
    """A page not sorted oldest first: the listing cannot verify a multi-page read, but one page whose records
    match its own total is one atomic answer (nothing to miss, in any order); it stands for the account-level
    tasks, and the gate reads its own case before opening, in the same round."""
    for task in _account_task_ids(debitura_conn):
        debitura_conn.control("POST", f"/tasks/{task}/solve", {})
    unsorted = _page(
        [_task("Generic", "2026-01-02T00:00:00Z", "INV-1003"), _task("Generic", "2026-01-01T00:00:00Z", "INV-1003")]
    )
    rule = {"kind": "status", "status": 200, "path": "/tasks", "count": 2, "body": unsorted}
    debitura_conn.control("PUT", "/faults", {"rules": [rule]})
    clear_counters(debitura_conn)
    async with running([gate("INV-1005", checks=1)]) as tasks:
        event = await asyncio.wait_for(tasks[0], 15)
        poll = await poller() if shared_poll.active_pollers() else None
    assert event["status"] == "success" and event["checks"] == 2
    seen = counters(debitura_conn)
    # One page (no re-read: a re-read opens no gate), then the gate's case (was 3 + 1).
    assert (seen["GET /tasks"], seen["GET /cases/{id}/tasks"], seen["total"]) == (1, 1, 2)
    assert poll is None or poll.reads.fallback_rounds == 1


@pytest.mark.parametrize("kind", ["status", "malformedJson", "html200", "oddEnvelope"])
async def test_a_shared_read_that_keeps_failing_never_holds_a_gate(debitura_conn, monkeypatch, kind):
    """Issue 11: a shared read that could not be read (one odd record made every listing fail on main) held
    coalesced gates on unrelated cases until their timeout. Now each gate re-reads its case in the same round."""
    conn = json.loads(debitura_conn.conn_json())
    conn["extra"] = {**conn.get("extra", {}), "max_attempts": 1}
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))
    rule = {"kind": kind, "path": "/tasks"} | ({"status": 503} if kind == "status" else {})
    if kind == "oddEnvelope":
        rule = {"kind": "status", "status": 200, "path": "/tasks", "body": {"page": {"totalResults": 1}, "tasks": 7}}
    debitura_conn.control("PUT", "/faults", {"rules": [rule]})  # every GET /tasks, for ever
    free = gate("INV-1005", include_account_tasks=False, checks=1)
    blocked = gate("INV-1003", include_account_tasks=False, checks=1)
    async with running([free, blocked]) as tasks:
        event = await asyncio.wait_for(tasks[0], 10)
        assert event["status"] == "success" and event["checks"] == 2  # in the first round
        poll = await poller()
        await until(lambda: poll.snapshots >= 3, 10, "more rounds")
        assert not tasks[1].done()  # the blocked case stays blocked
    assert poll.reads.fallback_rounds >= 1


async def test_a_record_that_cannot_be_read_holds_only_its_own_case(debitura_conn):
    victim = case_id_for("INV-1003")
    body = _page_with_an_odd_record(case_id=victim)
    debitura_conn.control(
        "PUT", "/faults", {"rules": [{"kind": "status", "status": 200, "path": "/tasks", "count": 1, "body": body}]}
    )
    clear_counters(debitura_conn)
    spec = GateSpec.of(case_id_for("INV-1005"), include_account_tasks=False)
    victim_spec = GateSpec.of(victim, include_account_tasks=False)
    async with (
        shared_poll.subscribe("debitura_default", 0.3, gate=spec) as sub,
        shared_poll.subscribe("debitura_default", 0.3, gate=victim_spec) as other,
    ):
        # One page (P = 1): the round has room for one case read, the first due gate's (the victim asks first).
        _, snapshot = await asyncio.gather(other.next_snapshot(), sub.next_snapshot())
    assert snapshot is not None and snapshot.verdict_for(spec).is_unblocked
    seen = counters(debitura_conn)
    # The odd record's case is re-read directly (its real tasks: still blocked); the other case is not.
    assert (
        seen["GET /cases/{id}/tasks"] == 1
        and snapshot.verdict(victim, include_account_tasks=False).state.value == "blocked"
    )


# -- lifecycle --


async def test_the_last_gate_out_stops_the_poll_and_cancellation_propagates(debitura_conn):
    async with running([gate("INV-1001"), gate("INV-1002")]) as tasks:
        poll = await poller()
        await until(lambda: poll.snapshots >= 1 and poll.waiting == 2, 10, "a quiet moment")
        tasks[0].cancel()
        with pytest.raises(asyncio.CancelledError):
            await tasks[0]
        assert poll.subscribers == 1
    assert shared_poll.active_pollers() == {}


def _gate_and_fillers(fillers: int) -> dict:
    return {
        "name": f"gate-and-{fillers}",
        "cases": [{"creditorReference": "GATE"}, {"creditorReference": "FILL"}],
        "tasks": [{"type": "ReplyToChat", "caseCreditorReference": "GATE"}]
        + [{"type": "Generic", "caseCreditorReference": "FILL", "minutesAgo": 1000 - i} for i in range(fillers)],
    }


def _account_task_ids(sb) -> list[str]:
    with sb.client() as client:
        return [t["id"] for t in client.get("/tasks", params={"PageSize": 100}).json()["tasks"] if t["caseId"] is None]


def _task(type_: str, created: str, ref: str) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": type_,
        "status": "Open",
        "caseId": case_id_for(ref),
        "dateCreated": created,
    }


def _page(tasks: list[dict]) -> dict:
    n = len(tasks)
    return {
        "page": {"totalResults": n, "pageSize": 100, "currentPage": 1, "totalPages": 1, "responseCount": n},
        "tasks": tasks,
    }


def _page_with_an_odd_record(case_id: str | None = None) -> dict:
    odd = {"id": None, "type": "Generic", "status": "Open", "caseId": case_id, "dateCreated": "2026-01-01T00:00:00Z"}
    return {
        "page": {"totalResults": 1, "pageSize": 100, "currentPage": 1, "totalPages": 1, "responseCount": 1},
        "tasks": [odd],
    }


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "status", "status": 503, "path": "/tasks", "count": 5},
        {"kind": "rateLimit", "retryAfter": 0.3, "count": 12},  # a 429 episode on every path, then it clears
    ],
    ids=["five-503s", "429-episode"],
)
async def test_a_failed_full_read_costs_no_request_storm(debitura_conn, rule):
    """Issue 20, item 6: 200 gates on 5,000 open tasks (P = 51); five 503s on ``GET /tasks`` fail a full read.
    Before, every gate in doubt then read its own case in the same round (201 requests; 1,002 with 1,000 gates),
    and the same after a 429 episode, as the limit cleared: now the direct reads of a round share one budget,
    and every round stays within 2 * min(N + 1, P) = 102."""
    debitura_conn.control("POST", "/scenario", {"name": "large:5000"})  # every case blocked
    n = 200
    gates = [gate(f"LRG-{i + 1:06d}", poll_interval=2.0) for i in range(n)]
    async with running(gates) as tasks:
        poll = await poller()
        await until(lambda: poll.reads.shared_reads >= 1 and not poll.busy, 150, "a full read")
        debitura_conn.control("PUT", "/faults", {"rules": [rule]})
        failed_round = "the failed round"
        await until(
            lambda: poll.reads.fallback_rounds >= 1 and poll.snapshots >= 4 and not poll.busy, 150, failed_round
        )
        assert not any(t.done() for t in tasks)
    assert max(poll.round_requests) <= 2 * min(n + 1, 51), list(poll.round_requests)  # P = 5,000 // 100 + 1
