"""What a watcher round costs against the real sandbox at 5,000 and 20,000 open tasks, and that the cheap rounds
miss nothing: steady state, tasks appended, tasks solved before the end; then servers that lie about their
order or their totals (``helpers.quirky_api``), where the watcher must fall back to full reads.

Requests are counted twice: by the sandbox (``GET /tasks`` it answered) and per round by the watcher's source.
Figures in docs/watcher-cost.md.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.gates import poller
from helpers.quirky_api import QuirkyApi, task
from helpers.sandbox import clear_counters, counters
from helpers.watcher import Watch, add_task

from airflow_provider_debitura.triggers.new_tasks import DebituraNewTasksTrigger
from airflow_provider_debitura.triggers.watcher.rounds import QueueRounds, Round

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("no_persist_grace")]

INTERVAL = 0.05


@pytest.fixture
def rounds_log(monkeypatch: pytest.MonkeyPatch) -> list[Round]:
    """Every round any watcher's source returned, in order (kind and its own requests)."""
    log: list[Round] = []
    original = QueueRounds.next_round

    async def recorded(self: QueueRounds) -> Round:
        result = await original(self)
        log.append(result)
        return result

    monkeypatch.setattr(QueueRounds, "next_round", recorded)
    return log


def tasks_requests(sb: Any) -> int:
    return counters(sb).get("GET /tasks", 0)


async def steady(watch: Watch, sb: Any, log: list[Round], n: int = 5) -> list[Round]:
    """``n`` rounds with nothing changing: their rounds, cross-checked against the sandbox's counter."""
    await watch.rounds(1, timeout=120)
    clear_counters(sb)
    start = len(log)
    await watch.until(lambda: len(log) >= start + n, timeout=60)
    done = log[start : start + n]
    # the sandbox saw what the rounds sent: the first may have begun before the counter was cleared, and one
    # more round may be under way
    answered = tasks_requests(sb)
    assert sum(r.requests for r in done[1:]) <= answered <= sum(r.requests for r in log[start:]) + 2, answered
    return done


def _kinds(log: list[Round]) -> list[tuple[str, int, str | None]]:
    return [(r.kind, r.requests, r.doubt) for r in log]


async def solve(sb: Any, task_id: str) -> None:
    assert sb.control("POST", f"/tasks/{task_id}/solve", {}).status_code in (200, 204)


async def run_cost_scenario(sb: Any, log: list[Round], store: Any, size: int, coalesce: bool) -> dict[str, Any]:
    sb.control("POST", "/scenario", {"name": f"large:{size}"})
    watch = Watch(DebituraNewTasksTrigger(poll_interval=INTERVAL, coalesce=coalesce, store=store))
    figures: dict[str, Any] = {}
    try:
        quiet = await steady(watch, sb, log)
        assert log[0].kind == "full"  # the first round has no trusted order yet
        assert all(r.kind == "tail" and r.requests <= 2 for r in quiet), [(r.kind, r.requests) for r in quiet]
        figures["steady"] = [r.requests for r in quiet]
        assert watch.events == []

        added = [add_task(sb, "ReplyToChat", "LRG-000001")["id"] for _ in range(3)]
        await watch.until(lambda: len(watch.events) == 3, timeout=60)
        after = await steady(watch, sb, log, 3)
        assert [e["id"] for e in watch.events] == added  # once each, in creation order
        assert all(r.kind == "tail" and r.requests <= 2 for r in after)
        # a task created between the two page reads of a round moves the total: that round reads everything
        assert all(r.kind == "tail" or "totalResults moved" in (r.doubt or "") for r in log[1:]), _kinds(log)
        figures["after_append"] = [r.requests for r in after]
        mark = len(log)

        middle = sb.state.list_tasks("Open")[size // 2]["id"]
        await solve(sb, middle)
        fresh = add_task(sb, "SignContract", None)["id"]
        await watch.until(lambda: len(watch.events) == 4, timeout=60)
        full_at = next(i for i, r in enumerate(log) if i >= mark and r.kind == "full")
        assert any(why in (log[full_at].doubt or "") for why in ("no longer holds", "shrank", "moved")), _kinds(log)
        back = await steady(watch, sb, log, 3)
        assert all(r.kind == "tail" and r.requests <= 2 for r in back)
        ids = [e["id"] for e in watch.events]
        assert ids == [*added, fresh] and len(set(ids)) == 4  # no miss, no duplicate
        figures["fallback_round"] = (log[full_at].doubt, log[full_at].requests)
    finally:
        await watch.stop()
    return figures


@pytest.mark.parametrize(
    "coalesce", [True, pytest.param(False, marks=pytest.mark.scale)], ids=["shared-poll", "direct"]
)
async def test_5000_open_tasks_cost_at_most_two_requests_a_round(debitura_conn, store, rounds_log, coalesce):
    """5,000 open tasks: 2 requests a round (the last page is full, so the empty page after it is read too);
    three new tasks fire once each from tail reads; a task solved in the middle costs one full read, after which
    the rounds are cheap again."""
    figures = await run_cost_scenario(debitura_conn, rounds_log, store, 5_000, coalesce)
    assert figures["steady"] == [2] * 5, figures  # page 51 (empty: nothing beyond the total) and page 50
    print(f"\n5,000 open tasks ({'shared' if coalesce else 'direct'}): {figures}")


@pytest.mark.scale
async def test_20000_open_tasks_cost_at_most_two_requests_a_round(debitura_conn, store, rounds_log):
    figures = await run_cost_scenario(debitura_conn, rounds_log, store, 20_000, False)
    assert figures["steady"] == [2] * 5, figures
    print(f"\n20,000 open tasks: {figures}")


async def test_a_queue_that_does_not_end_on_a_page_boundary_costs_one_request(debitura_conn, store, rounds_log):
    sb = debitura_conn
    sb.control("POST", "/scenario", {"name": "large:501"})  # the size does not matter, the remainder does
    watch = Watch(DebituraNewTasksTrigger(poll_interval=INTERVAL, coalesce=False, store=store))
    try:
        quiet = await steady(watch, sb, rounds_log)
        assert [r.requests for r in quiet] == [1] * 5
    finally:
        await watch.stop()


# ------------------------------------------------------------------------------------------ odd servers


def _quirky_world(size: int, *, same_time: bool) -> list[dict[str, Any]]:
    case = str(uuid.uuid4())
    return [
        task("Generic", case, f"2026-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{0 if same_time else i % 60:02d}Z")
        for i in range(size)
    ]


@pytest.fixture
def quirky(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[QuirkyApi]:
    order, totals, size = request.param
    with QuirkyApi(_quirky_world(size, same_time=False), order=order, totals=totals) as api:
        monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", api.conn_json())
        yield api


QUIRKS = [
    ("unstable", "true"),  # groups of 60 equal timestamps, shuffled on every request
    ("swap", "true"),  # the tasks either side of the first page boundary trade places
    ("stable", "cap:200"),  # the total capped on a page boundary (a full read alone misses 50)
    ("stable", "lag:3"),
    ("stable", "over:7"),
    ("stable", "zero"),
]


@pytest.mark.parametrize(
    ("quirky", "quirk", "coalesce"),
    [
        *[(("stable", "true", 250), q, False) for q in QUIRKS],
        (("stable", "true", 250), ("unstable", "true"), True),
        (("stable", "true", 250), ("stable", "cap:200"), True),
    ],
    indirect=["quirky"],
    ids=[*[f"direct-{q[0]}-{q[1]}" for q in QUIRKS], "shared-poll-unstable", "shared-poll-capped"],
)
async def test_an_odd_server_gets_full_reads_and_misses_nothing(quirky, quirk, coalesce, store, rounds_log):
    """The watcher starts on an honest server (a first start needs one verified listing), then the server turns
    odd. New tasks dated like the newest ones (so an unstable order shuffles them in) fire exactly once each; a
    total that does not add up makes every round a full read (the capped one: plus what the tail read saw)."""
    api = quirky
    watch = Watch(DebituraNewTasksTrigger(poll_interval=INTERVAL, coalesce=coalesce, store=store))
    try:
        await watch.rounds(2, timeout=60)
        assert rounds_log[-1].kind == "tail"  # the honest server: tail reads
        api.order, api.totals = quirk
        if api.order == "unstable":  # the newest tasks share one timestamp with the new ones
            for row in api.tasks[-80:]:
                row["dateCreated"] = api.tasks[-1]["dateCreated"]
        await watch.rounds(1, timeout=60)  # a round under way may have begun on the honest server
        mark = len(rounds_log)
        newest = api.tasks[-1]["dateCreated"]
        added = []
        for _ in range(3):
            new = task("ReplyToChat", str(uuid.uuid4()), newest)
            api.tasks.append(new)
            added.append(new["id"])
            await watch.rounds(1, timeout=60)
        await watch.until(lambda: len(watch.events) >= 3, timeout=30)
        await watch.rounds(2, timeout=60)
        ids = [e["id"] for e in watch.events]
        assert sorted(ids) == sorted(added), ids  # each new task once, nothing of the backlog
        odd = [r for r in rounds_log[mark:] if r.ok]
        if api.totals != "true":  # no total that does not add up passes a tail read
            assert odd and all(r.kind == "full" for r in odd), _kinds(odd)
        # a moved order before the last pages hides nothing new (old tasks trade places); at the end it is a doubt
    finally:
        await watch.stop()


async def test_while_the_budget_holds_a_full_read_back_the_end_of_the_queue_still_fires_new_tasks(
    debitura_conn, store, rounds_log, monkeypatch
):
    """A round in doubt needs the shared poll's full read; when the request budget holds the poll's rounds back (the
    day's share spent: an hour, in a simulated day at 20,000 open tasks), each interval without it is an interim
    round of the tail read's tasks, so a task created and solved meanwhile still fires, once. The budget's state is
    forced (``RoundBudget.wait``): a real one takes minutes to spend (``bench/simulated_day.py`` runs it)."""
    sb = debitura_conn
    sb.control("POST", "/scenario", {"name": "large:1000"})
    watch = Watch(DebituraNewTasksTrigger(poll_interval=INTERVAL, coalesce=True, store=store))
    try:
        await steady(watch, sb, rounds_log, 3)
        poll = await poller()
        fits = asyncio.Event()

        async def tight(hook: Any, recent: Any, interval: float) -> float:
            poll.budget.stretched = not fits.is_set()
            return 0.0 if fits.is_set() else 3_600.0

        monkeypatch.setattr(poll.budget, "wait", tight)
        full_reads = poll.snapshots
        await solve(sb, sb.state.list_tasks("Open")[500]["id"])  # the end no longer explains the count: in doubt
        first = add_task(sb, "ReplyToChat", "LRG-000001")["id"]
        await watch.until(lambda: len(watch.events) == 1, timeout=30)
        await solve(sb, first)  # answered and gone before any full read
        second = add_task(sb, "MoreInfoNeeded", "LRG-000002")["id"]
        await watch.until(lambda: len(watch.events) == 2, timeout=30)
        assert poll.snapshots == full_reads  # both fired by interim rounds: the poll read nothing
        interim = [r for r in rounds_log if r.kind == "interim"]
        assert interim and all(not r.complete and r.requests <= 2 for r in interim), _kinds(rounds_log)
        mark = len(rounds_log)
        fits.set()  # the budget fits again: the full read the watcher asked for runs
        await watch.until(lambda: any(r.kind == "full" for r in rounds_log[mark:]), timeout=30)
        back = await steady(watch, sb, rounds_log, 3)
        assert all(r.kind == "tail" for r in back), _kinds(rounds_log)
        assert poll.snapshots == full_reads + 1
    finally:
        await watch.stop()
    assert [e["id"] for e in watch.events] == [first, second]  # each once, none lost
