"""The shared poll under a tight request budget (issue 24): rounds stretch, it says so once, verdicts come later but
never wrong, and rounds resume when the budget fits again.

The budget's clock is injected (``hooks.budget.reset_budgets``): "a minute later" is a call, not a wait. Request
counts are the sandbox's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.gates import clear_counters, counters, gate, poller, running, until

from airflow_provider_debitura.hooks import budget as budget_module
from airflow_provider_debitura.triggers import poll_budget, shared_poll

LOGGER = "airflow_provider_debitura.triggers.shared_poll"


class FakeClock:
    """Monotonic time that moves when a test advances it or a request waits for the budget."""

    def __init__(self) -> None:
        self.t = 50_000.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds

    async def asleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    fake = FakeClock()
    budget_module.reset_budgets(fake)
    yield fake
    budget_module.reset_budgets()


def budgeted(sb: Any, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    conn = json.loads(sb.conn_json())
    conn.setdefault("extra", {}).update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and text in r.getMessage()]


async def test_a_watcher_round_waits_for_the_budget_says_so_once_and_resumes(debitura_conn, monkeypatch, clock, caplog):
    """5 requests a minute, a watcher asking every 20 ms (1 request a round on the demo queue): 5 rounds, then
    the poll looks again and again without sending; a minute later it resumes, and stretches again."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    budgeted(debitura_conn, monkeypatch, budget_per_minute=5, budget_max_wait=120)
    clear_counters(debitura_conn)
    rounds: list[Any] = []

    async def watch() -> None:
        async with shared_poll.subscribe("debitura_default", 0.02) as sub:
            while True:
                rounds.append(await sub.next_snapshot())

    task = asyncio.ensure_future(watch())
    try:
        poll = await poller()
        await until(lambda: poll.budget.stretched, 10, "the budget to stretch the rounds")
        looked = poll.budget.checks
        await until(lambda: poll.budget.checks >= looked + 20, 10, "20 more looks at the budget")
        assert (len(rounds), counters(debitura_conn)["total"]) == (5, 5)  # nothing sent while stretched
        tight = lines(caplog, "the request budget is tight")
        assert len(tight) == 1, tight
        assert "5 of 5 requests used in the last minute (budget_per_minute=5)" in tight[0]
        assert "instead of 0.02 s" in tight[0] and "never wrongly" in tight[0]

        clock.sleep(61)  # a minute later
        await until(lambda: len(rounds) >= 6, 10, "the next round")
        await until(lambda: poll.budget.episodes == 2, 10, "the next stretch")
        assert len(lines(caplog, "fits the shared poll again")) == 1
        assert len(lines(caplog, "the request budget is tight")) == 2  # once per episode, not once per look
        assert not poll.busy and counters(debitura_conn)["total"] == len(rounds) == 10
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_gate_opens_late_but_never_on_a_round_the_budget_did_not_allow(debitura_conn, monkeypatch, clock):
    """The gate's blocker clears while the poll waits for the budget: it stays deferred (no request, no verdict
    from stale data) until the budget fits, then opens on its own reads."""
    budgeted(debitura_conn, monkeypatch, budget_per_minute=4, budget_max_wait=120)
    clear_counters(debitura_conn)
    async with running([gate("INV-1005", poll_interval=0.02)]) as tasks:
        poll = await poller()
        await until(lambda: poll.budget.stretched, 10, "the budget to stretch the rounds")
        spent = counters(debitura_conn)["total"]
        assert spent <= 4
        for task_id in [t["id"] for t in debitura_conn.state.list_tasks("Open") if t["caseId"] is None]:
            debitura_conn.control("POST", f"/tasks/{task_id}/solve", {})  # the account-level blocker clears
        looked = poll.budget.checks
        await until(lambda: poll.budget.checks >= looked + 20, 10, "20 more looks at the budget")
        assert not tasks[0].done() and counters(debitura_conn)["total"] == spent
        clock.sleep(61)
        event = await asyncio.wait_for(tasks[0], 15)
    assert event["status"] == "success"
    assert counters(debitura_conn)["total"] <= spent + 4


def test_a_rounds_expected_cost_is_the_most_of_the_last_three() -> None:
    assert poll_budget.expected_cost([]) == 1
    assert poll_budget.expected_cost([50, 2, 2, 3]) == 3
    assert poll_budget.expected_cost([0, 0]) == 1
    assert poll_budget.expected_cost([51, 50, 1]) == 51


async def test_a_round_costlier_than_the_minute_share_still_starts_and_paces_itself() -> None:
    """A 50-page round on a share of 5 a minute: the round starts when 5 fit (the most that ever fit at once),
    never waits for 50 to fit at once (which never happens)."""
    clock = FakeClock()
    budget = budget_module.RequestBudget(
        budget_module.BudgetLimits(per_minute=5, per_hour=20_000, per_day=100_000), clock=clock
    )

    class Hook:
        async def get_budget(self) -> budget_module.RequestBudget:
            return budget

    rounds = poll_budget.RoundBudget("c")
    assert await rounds.wait(Hook(), [50], 60) == 0  # type: ignore[arg-type]
    for _ in range(5):
        await budget.aacquire()
    assert await rounds.wait(Hook(), [50], 60) > 59 and rounds.stretched  # type: ignore[arg-type]
    clock.sleep(61)
    assert await rounds.wait(Hook(), [50], 60) == 0  # type: ignore[arg-type]
