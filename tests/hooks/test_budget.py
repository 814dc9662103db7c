"""The request budget (hooks/budget.py): windows, the day's pace, threads, the event loop, validation, the 429
hold; then through the hook against the real sandbox, whose own per-minute limit is lower than a burst.

Unit tests run on an injected clock (no sleeps); the sandbox tests need no waiting either (a budget that cannot
fit fails at once with ``budget_max_wait`` 0, and a 429 hold is 0.4 s)."""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import random
import threading
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pytest

from airflow_provider_debitura.exceptions import DebituraConfigError, DebituraRateLimitError
from airflow_provider_debitura.hooks import budget as budget_module
from airflow_provider_debitura.hooks.budget import BudgetLimits, DebituraBudgetError, RequestBudget, budget_for
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook, DebituraHook
from airflow_provider_debitura.hooks.settings import ConnectionSettings
from airflow_provider_debitura.sandbox import SandboxServer


class FakeClock:
    """Monotonic time that moves only when somebody sleeps (thread-safe)."""

    def __init__(self, start: float = 10_000.0) -> None:
        self.t = start
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.t += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture(autouse=True)
def fresh_budgets() -> Iterator[None]:
    budget_module.reset_budgets()
    yield
    budget_module.reset_budgets()


def limits(**kwargs: Any) -> BudgetLimits:
    kwargs.setdefault("per_minute", 2_000)
    kwargs.setdefault("per_hour", 20_000)
    kwargs.setdefault("per_day", 100_000)
    return BudgetLimits(**kwargs)


def most_in_any(times: Sequence[float], width: float) -> int:
    """The most grant times within any half-open stretch ``[t, t + width)``."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, start + width) - i for i, start in enumerate(ordered)), default=0)


def grant_times(budget: RequestBudget, clock: FakeClock, n: int) -> list[float]:
    times = []
    for _ in range(n):
        budget.acquire()
        times.append(clock.now())
    return times


# -- windows and pace --


def test_the_minute_window_holds_the_next_request_until_the_oldest_leaves() -> None:
    clock = FakeClock()
    budget = RequestBudget(limits(per_minute=5, max_wait=120), clock=clock)
    times = grant_times(budget, clock, 5)
    assert times == [10_000.0] * 5 and clock.slept == []  # the first five go at once
    assert 60 <= budget.delay_for(1) <= 61  # counted in 1 s slots: conservative by at most one
    budget.acquire()
    assert 60 <= clock.slept[-1] <= 61


@pytest.mark.parametrize("seed", range(4))
def test_no_window_and_no_stretch_of_the_day_ever_holds_more_than_its_share(seed: int) -> None:
    """Greedy callers against random budgets: every sliding window and the day's pace hold."""
    rng = random.Random(seed)
    day = rng.choice([2_400, 5_000, 12_000])
    lim = limits(per_minute=rng.randint(5, 40), per_hour=rng.randint(50, 400), per_day=day, max_wait=86_400)
    clock = FakeClock()
    budget = RequestBudget(lim, clock=clock)
    times = []
    for _ in range(1_500):
        budget.acquire()
        times.append(clock.now())
        clock.advance(rng.choice([0.0, 0.0, 0.5, 3.0, 40.0]))
    assert most_in_any(times, 60) <= lim.per_minute
    assert most_in_any(times, 3_600) <= lim.per_hour
    assert most_in_any(times, 86_400) <= lim.per_day
    for hours in (1, 3, 6, 12):  # planned, not just counted: at most a burst ahead of the day's pace
        assert most_in_any(times, hours * 3_600) <= lim.burst + lim.rate * hours * 3_600 + 1


def test_the_day_is_not_spent_in_the_morning() -> None:
    """2,400 a day: a burst of 100 (an hour of the pace), then one request every 36 s, over the whole day."""
    clock = FakeClock()
    budget = RequestBudget(limits(per_day=2_400, max_wait=600), clock=clock)
    assert (budget.limits.burst, round(budget.limits.rate * 36, 6)) == (100, 1.0)
    times = [t - 10_000 for t in grant_times(budget, clock, 2_400)]
    assert times[99] == 0 and 35.9 <= times[100] <= 36.1  # the burst, then the pace
    assert sum(1 for t in times if t <= 6 * 3_600 + 1) == 100 + 600  # by 06:00: burst + a quarter of the day
    assert 23 * 3_600 <= times[-1] < 24 * 3_600


def test_processes_divide_the_share() -> None:
    lim = BudgetLimits(per_minute=1_000, per_hour=10_000, per_day=50_000, processes=4)
    assert (lim.share("minute"), lim.share("hour"), lim.share("day")) == (250, 2_500, 12_500)
    assert lim.burst == 12_500 // 24
    assert lim.rate == pytest.approx(12_500 / 86_400)


# -- waiting, the cap, the preflight --


def test_beyond_the_cap_it_fails_naming_the_window_the_numbers_and_the_extra() -> None:
    clock = FakeClock()
    budget = RequestBudget(limits(per_hour=30, max_wait=300), "Connection 'debitura_default'", clock=clock)
    grant_times(budget, clock, 30)
    with pytest.raises(DebituraBudgetError) as err:
        budget.acquire()
    message = str(err.value)
    assert "Connection 'debitura_default'" in message and "30 of 30 requests used in the last hour" in message
    assert "budget_per_hour=30" in message and "budget_max_wait=300" in message and "Raise budget_per_hour" in message
    assert clock.slept == []  # it did not wait first to find out


def test_require_fails_a_run_that_would_not_fit_before_its_first_request() -> None:
    clock = FakeClock()
    budget = RequestBudget(limits(per_hour=100, max_wait=300), "Connection 'c'", clock=clock)
    grant_times(budget, clock, 40)
    budget.require(60, what="a run")  # fits exactly
    with pytest.raises(DebituraBudgetError) as err:
        budget.require(150, what="listing 14,900 open tasks")
    message = str(err.value)
    assert "listing 14,900 open tasks needs about 150 requests" in message
    assert "allows 60 more within budget_max_wait=300 s" in message
    assert "budget_per_hour=100" in message and "Raise budget_per_hour" in message
    assert budget.sent == 40  # require counts nothing


def test_available_counts_what_the_pace_refills_within_the_horizon() -> None:
    clock = FakeClock()
    budget = RequestBudget(limits(per_day=2_400, max_wait=3_600), clock=clock)
    assert budget.available(0) == 100  # the burst
    assert budget.available(360) == 110  # and one every 36 s


# -- threads and the event loop --


def test_threads_never_get_more_than_the_window_holds() -> None:
    budget = RequestBudget(limits(per_minute=1_000, max_wait=0))  # the real clock: nothing waits
    granted, refused = [], []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(200):
            try:
                budget.acquire()
                granted.append(1)
            except DebituraBudgetError:
                refused.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(granted), len(refused), budget.sent) == (1_000, 600, 1_000)


async def test_the_async_acquire_awaits_and_the_loop_keeps_running() -> None:
    clock = FakeClock()
    budget = RequestBudget(limits(per_minute=5, max_wait=600), clock=clock)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(ticker())
    times = []

    async def one() -> None:
        await budget.aacquire()
        times.append(clock.now())

    await asyncio.gather(*(one() for _ in range(12)))
    done.set()
    await task
    assert budget.sent == 12 and most_in_any(times, 60) <= 5
    assert clock.slept and ticks > 0  # the waits were awaited: the loop ran other work meanwhile


async def test_the_async_acquire_waits_on_the_real_loop_without_blocking_it() -> None:
    budget = RequestBudget(limits(max_wait=5))
    budget.hold(0.2)
    beats = 0

    async def heartbeat() -> None:
        nonlocal beats
        for _ in range(100):
            beats += 1
            await asyncio.sleep(0.01)

    beating = asyncio.ensure_future(heartbeat())
    waited = await budget.aacquire()  # a blocking sleep here would let no beat through before it returns
    beaten = beats
    beating.cancel()
    assert 0.2 <= waited <= 0.41
    assert beaten >= 3, beaten  # the loop kept running while the request waited


# -- the 429 hold --


def test_a_429_holds_every_request_then_lets_them_go_spread() -> None:
    clock = FakeClock()
    budget = RequestBudget(limits(max_wait=600), clock=clock, rng=random.Random(3))
    budget.hold(10.0)
    waits = []
    for _ in range(50):  # fifty callers, each held from the same moment
        start = clock.now()
        waiter = RequestBudget(limits(max_wait=600), clock=FakeClock(start), rng=random.Random(len(waits)))
        waiter.hold(10.0)
        waits.append(waiter.acquire())
    assert min(waits) >= 10.0 and max(waits) <= 15.0  # never before retryAfter; spread over half of it
    assert max(waits) - min(waits) >= 3.0
    assert most_in_any(waits, 0.5) <= 12  # not together into the limit again
    assert budget.delay_for(1) == pytest.approx(10.0)
    budget.hold(None)  # no retryAfter: no hold beyond the one there is
    assert budget.acquire() >= 10.0 and budget.delay_for(1) == 0


def test_a_hold_longer_than_the_cap_fails_at_once_and_says_why() -> None:
    budget = RequestBudget(limits(max_wait=60), "Connection 'c'", clock=FakeClock())
    budget.hold(3_600)
    with pytest.raises(DebituraBudgetError, match="429 and asked this connection to wait"):
        budget.acquire()


# -- validation and the registry --


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"budget_per_minute": 0}, "'budget_per_minute'=0 must be a whole number from 1 to 2,000"),
        ({"budget_per_hour": "lots"}, "'budget_per_hour'='lots' must be a whole number from 1 to 20,000"),
        ({"budget_per_day": 150_000}, "'budget_per_day'=150000 must be a whole number from 1 to 100,000"),
        ({"budget_per_day": 2.5}, "'budget_per_day'=2.5"),
        ({"budget_processes": -2}, "'budget_processes'=-2 must be a whole number from 1"),
        ({"budget_max_wait": -1}, "'budget_max_wait'=-1 must be a number of seconds from 0"),
        ({"budget_max_wait": True}, "'budget_max_wait'=True"),
    ],
)
def test_a_bad_extra_is_named_with_its_value_and_the_fix(extra: dict[str, Any], named: str) -> None:
    with pytest.raises(DebituraConfigError) as err:
        ConnectionSettings.from_connection_fields("c", host=None, password="key-123", extra=extra)
    assert named in str(err.value) and "Connection 'c'" in str(err.value)
    assert "clear it for the default" in str(err.value)


def test_extras_from_either_form_and_the_loopback_rule() -> None:
    read = ConnectionSettings.from_connection_fields(
        "c", host=None, password="k", extra={"budget_per_hour": "5,000", "budget_processes": 2.0}
    )
    assert (read.budget.per_hour, read.budget.processes, read.budget.enabled) == (5_000, 2, True)
    assert ConnectionSettings.from_connection_fields("c", host=None, password="k", extra={}).budget == BudgetLimits()
    sandbox = ConnectionSettings.from_connection_fields("c", host="http://127.0.0.1:8080", password="k", extra={})
    assert not sandbox.budget.enabled  # a loopback sandbox is not budgeted unless asked
    asked = ConnectionSettings.from_connection_fields(
        "c", host="http://127.0.0.1:8080", password="k", extra={"budget_max_wait": 0}
    )
    assert asked.budget.enabled and asked.budget.per_minute == 1_000


def test_one_budget_per_connection_host_and_key_which_it_does_not_keep() -> None:
    def settings(conn_id: str = "c", key: str = "secret-key-1", **extra: Any) -> ConnectionSettings:
        return ConnectionSettings.from_connection_fields(conn_id, host=None, password=key, extra=extra)

    first = budget_for(settings())
    assert budget_for(settings()) is first
    assert budget_for(settings(key="secret-key-2")) is not first
    assert budget_for(settings(conn_id="other")) is not first
    first.acquire()
    changed = budget_for(settings(budget_per_minute=10))
    assert changed is first and changed.limits.per_minute == 10 and changed.sent == 1  # spent is kept
    assert not any("secret-key" in repr(k) for k in budget_module._REGISTRY)


# -- through the hook, against the real sandbox --


def _conn(sandbox: Any, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    conn = json.loads(sandbox.conn_json())
    conn.setdefault("extra", {}).update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_DEBITURA_DEFAULT", json.dumps(conn))


def _log(sandbox: Any) -> list[dict[str, Any]]:
    return [r for r in sandbox.control("GET", "/requests").json() if not r["path"].startswith("/_sandbox")]


def test_the_hook_never_exceeds_its_budget_where_a_burst_breaks_the_sandboxs_limit(sandbox, monkeypatch):
    """The sandbox allows 12 requests a minute. With a budget of 8 a minute the hook sends 8 of a burst of 20
    and refuses the 9th itself, before sending it; without a budget the same burst meets the sandbox's 429."""
    sandbox.control("PUT", "/config", {"rateLimitPerMinute": 12})
    _conn(sandbox, monkeypatch, budget_per_minute=8, budget_max_wait=0)
    with DebituraHook() as hook:
        for _ in range(8):
            hook.get_me()
        with pytest.raises(DebituraBudgetError, match=r"8 of 8 requests used in the last minute \(budget_per_minute=8"):
            for _ in range(12):
                hook.get_me()
    assert [r["status"] for r in _log(sandbox)] == [200] * 8  # the 9th was never sent

    with SandboxServer(scenario="demo", api_key=sandbox.api_key) as control:  # the same burst, no budget
        control.control("PUT", "/config", {"rateLimitPerMinute": 12})
        _conn(control, monkeypatch, max_attempts=1)  # loopback and no budget extra: not budgeted
        with DebituraHook() as hook, pytest.raises(DebituraRateLimitError):
            for _ in range(20):
                hook.get_me()
        assert [r["status"] for r in _log(control)] == [200] * 12 + [429]


def test_a_listing_that_would_not_fit_fails_after_its_first_page(sandbox, monkeypatch):
    """The queue's size is known only from page 1: the hook checks the rest against the budget right there."""
    sandbox.control("POST", "/scenario", {"name": "large:2000"})  # 20 pages
    sandbox.control("DELETE", "/requests")
    _conn(sandbox, monkeypatch, budget_per_minute=10, budget_max_wait=0)
    with DebituraHook() as hook, pytest.raises(DebituraBudgetError) as err:
        hook.list_tasks()
    assert "the rest of this task listing (2,000 tasks, 21 more pages) needs about 21 requests" in str(err.value)
    assert "allows 9 more" in str(err.value)
    assert len(_log(sandbox)) == 1


async def test_a_429_holds_the_connections_other_requests_and_they_come_back_spread(sandbox, monkeypatch):
    """One read meets a 429 (retryAfter 1 s); ten reads started meanwhile wait for the hold and go spread
    over its end: one 429 in all, no storm. (With 0.4 s, a 0.2 s spread, a busy CI machine's loop stall let all
    ten go within 16 ms.)"""
    _conn(sandbox, monkeypatch, budget_max_wait=30)
    rule = {"kind": "rateLimit", "retryAfter": 1.0, "retryAfterIn": "body", "count": 1, "path": "/me"}
    assert sandbox.control("PUT", "/faults", {"seed": 1, "rules": [rule]}).status_code == 200
    sandbox.control("DELETE", "/requests")
    async with DebituraAsyncHook() as hook:
        first = asyncio.ensure_future(hook.get_me())
        budget = await hook.get_budget()
        while budget.delay_for(1) == 0:  # the 429 has arrived: the budget holds
            await asyncio.sleep(0.002)
        await asyncio.gather(first, *(hook.list_tasks() for _ in range(10)))
    log = _log(sandbox)
    assert [r["status"] for r in log].count(429) == 1 and len(log) == 12
    held = datetime.fromisoformat(next(r["time"] for r in log if r["status"] == 429).rstrip("Z"))
    after = [
        (datetime.fromisoformat(r["time"].rstrip("Z")) - held).total_seconds() for r in log if r["path"] == "/tasks"
    ]
    assert min(after) >= 0.99, after  # none went during the hold
    assert max(after) - min(after) >= 0.05, after  # and they did not all come back at once


def _burst_in_a_process(n: int) -> tuple[int, int]:
    """Fork a process (a second triggerer or worker) that sends up to ``n`` requests through its own budget; the
    requests it sent before its budget or the sandbox refused one."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork beside the sandbox's thread: the child uses none
        pid = os.fork()
    if pid == 0:  # the child: a process of its own, with a budget of its own
        sent = 0
        try:
            budget_module.reset_budgets()
            with DebituraHook(max_attempts=1) as hook:
                for _ in range(n):
                    hook.get_me()
                    sent += 1
        except (DebituraBudgetError, DebituraRateLimitError):
            pass
        finally:
            os.write(write, str(sent).encode())
            os._exit(0)
    os.close(write)
    return pid, read  # the parent reads the count when both children are done


def _counts(children: list[tuple[int, int]]) -> list[int]:
    counts = []
    for pid, pipe in children:
        with os.fdopen(pipe) as reader:
            counts.append(int(reader.read()))
        os.waitpid(pid, 0)
    return counts


@pytest.mark.parametrize(("processes", "each", "answers"), [(2, [5, 5], [200] * 10), (1, None, None)])
def test_two_processes_split_the_deployments_share(sandbox, monkeypatch, processes, each, answers):
    """Two processes on one key (two triggerers), the sandbox allowing 10 a minute and the deployment's share set
    to the same 10: with budget_processes=2 each sends 5 of a burst of 20 and the sandbox never answers 429;
    left at 1, each takes the whole share and together they break the limit."""
    sandbox.control("PUT", "/config", {"rateLimitPerMinute": 10})
    _conn(sandbox, monkeypatch, budget_per_minute=10, budget_processes=processes, budget_max_wait=0)
    counts = _counts([_burst_in_a_process(20), _burst_in_a_process(20)])
    statuses = [r["status"] for r in _log(sandbox)]
    if each is not None:
        assert (counts, statuses) == (each, answers)
    else:
        assert 429 in statuses and sum(counts) == 10  # the sandbox refused what the two budgets allowed together
