"""Issue 20, items 2-5: deferred gates on the shared poll against a server that lies (``helpers.quirky_api``).

A gate opens only on direct reads of every part it counts (its case; the account-level tasks, once per
round for every gate opening in it). A full read may keep a gate blocked, never open it: so an unstable
order of equal ``dateCreated`` or a lying ``totalResults`` that hides an account-level SignContract from the
full read opens no gate, and a case deleted while the queue still lists its task fails its gate within a few
rounds. Every round stays within ``2 * min(N + 1, P)`` requests.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
from helpers.gates import first_event, poller, stop, until
from helpers.quirky_api import QuirkyApi, task

from airflow_provider_debitura.triggers.case_gate import DebituraCaseUnblockedTrigger

GATES = 12
SAME = "2026-01-01T00:00:00Z"
NEWEST = "2026-06-01T00:00:00Z"


def _world(open_tasks: int, *, same_time: bool) -> tuple[list[dict], list[str], str]:
    """``open_tasks`` tasks on a filler case, the newest (or one among equals) an account-level SignContract,
    and :data:`GATES` cases with no task of their own."""
    filler = str(uuid.uuid4())
    tasks = [
        task("Generic", filler, SAME if same_time else f"2026-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z")
        for i in range(open_tasks - 1)
    ]
    sign = task("SignContract", None, SAME if same_time else NEWEST)
    tasks.insert(len(tasks) // 2 if same_time else len(tasks), sign)
    return tasks, [str(uuid.uuid4()) for _ in range(GATES)], sign["id"]


def _gates(cases: list[str]) -> list[DebituraCaseUnblockedTrigger]:
    return [
        DebituraCaseUnblockedTrigger(case, poll_interval=0.1, checks=1, end_time=time.time() + 120) for case in cases
    ]


@pytest.fixture
def lying(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[QuirkyApi, list, str]]:
    order, totals, size = request.param
    tasks, cases, sign = _world(size, same_time=order == "unstable")
    with QuirkyApi(
        tasks, cases={*cases, *(t["caseId"] for t in tasks if t["caseId"])}, order=order, totals=totals
    ) as api:
        monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", api.conn_json())
        yield api, cases, sign


@pytest.mark.parametrize(
    ("lying", "pages"),
    [
        # 300 quiet tasks, one timestamp: the order changes on every request (P = 4: 3 pages and the page after)
        (("unstable", "true", 300), 4),
        # totalResults 0 on every page (was: an empty, verified listing). P is what the read needs: a total that
        # contradicts its page is not trusted, the listing reads forward to a short page (pages 1-4 here).
        (("stable", "zero", 300), 4),
        # the total capped at 1,000 with 1,050 open: pages 10-1 agree with it, page 11 after the full last page
        # does not, and ends the read (short)
        (("stable", "cap:1000", 1050), 11),
        # the total lagging by one: 201 open said 200 (caught on page 3, after the full last page), then 200 said
        # 199 (caught: the hinted page 2 and pages 1-3 forward)
        (("stable", "lag:1", 201), 4),
    ],
    indirect=["lying"],
    ids=["unstable-order", "total-zero", "total-capped", "total-lagging"],
)
async def test_a_full_read_that_misses_an_account_level_task_opens_no_gate(lying, pages):
    api, cases, sign = lying
    tasks = [first_event(g) for g in _gates(cases)]
    try:
        poll = await poller()
        await until(lambda: poll.snapshots >= 20 or any(t.done() for t in tasks), 60, "20 rounds")
        assert not any(t.done() for t in tasks), [t.result() for t in tasks if t.done()]
        # the gates were served by full reads, not by direct rounds (a gate backing off or a round the budget
        # paced may be a direct one: 18 of 20 were full reads on a busy CI machine)
        assert poll.reads.shared_reads >= 15
        bound = 2 * min(GATES + 1, pages)
        assert max(poll.round_requests) <= bound, list(poll.round_requests)
        api.tasks = [t for t in api.tasks if t["id"] != sign]  # the SignContract is signed
        events = await asyncio.wait_for(asyncio.gather(*tasks), 60)
    finally:
        await stop([t for t in tasks if not t.done()])
    assert all(e["status"] == "success" for e in events), events
    assert max(poll.round_requests) <= bound, list(poll.round_requests)


@pytest.mark.parametrize("lying", [("stable", "true", 300)], indirect=True)
async def test_a_case_deleted_while_its_task_is_listed_fails_its_coalesced_gate_within_a_few_rounds(lying):
    """Issue 20, item 5: the queue still lists the deleted case's task, so every full read says "blocked"; the
    gate confirms its case exists every few rounds (a 404 fails it, as in poke mode), within the round budget."""
    api, cases, _ = lying
    api.tasks.append(task("ReplyToChat", cases[0], NEWEST))
    tasks = [first_event(g) for g in _gates(cases)]
    try:
        poll = await poller()
        await until(lambda: poll.snapshots >= 2, 30, "2 rounds")
        api.delete_case(cases[0])
        started = poll.snapshots
        event = await asyncio.wait_for(tasks[0], 30)
        rounds = poll.snapshots - started
        assert not any(t.done() for t in tasks[1:])  # the SignContract still blocks the others
    finally:
        await stop([t for t in tasks if not t.done()])
    assert event["status"] == "error" and "404" in event["message"], event
    assert rounds <= 7, rounds
    assert max(poll.round_requests) <= 2 * min(GATES + 1, 4), list(poll.round_requests)
