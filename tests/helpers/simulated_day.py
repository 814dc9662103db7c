"""A simulated day on one API key: gates, a watcher and the triage example against the sandbox's three windows.

Everything runs in one process: the sandbox (a real HTTP server on 127.0.0.1, in a thread) with the API's
documented windows (2,000 / 20,000 / 100,000, the day counted sliding, the strictest reading), its clock sped
up ``speed`` times; the connection's request budget (the defaults' values set as extras: half of every
window and the day's pace) on a clock that runs at the same speed; ``gates`` deferred case gates and one
new-task watcher in the shared poll; the triage example's two operators every 30 simulated minutes (in a
thread, through the same process's budget); and a seeded driver that clears each gated case's blockers and
adds new tasks at random simulated times.

Time scaling: the triggers read real time (``asyncio.sleep``, ``time.time``, the loop's clock), so every
interval of theirs is divided by ``speed``: ``poll_interval = 60 / speed`` and ``max_wait = 900 / speed``. The
gate's backoff (``max(b, min(m, t / 10))``) is linear in time, so scaled parameters give exactly the scaled
schedule. The budget and the sandbox run on simulated seconds. What does not scale is the real time a request
takes: at ``speed`` 288 a 10 ms request lasts 2.9 simulated seconds, which only makes answers later.

``bench/simulated_day.py`` runs it from the command line; ``tests/reliability/test_simulated_day.py`` asserts it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from airflow_provider_debitura.hooks import budget as budget_module
from airflow_provider_debitura.sandbox import SandboxServer
from airflow_provider_debitura.sandbox.scenarios import case_id_for, generate_large
from airflow_provider_debitura.triggers import shared_poll
from airflow_provider_debitura.triggers.case_gate import DebituraCaseUnblockedTrigger
from airflow_provider_debitura.triggers.new_tasks import DebituraNewTasksTrigger
from helpers.seen_store import MemorySeenTasksStore

KEY = "simulated-day-key-7d1f"
API_WINDOWS = {"minute": 2_000, "hour": 20_000, "day": 100_000}
"""The API's documented limits per key (debitura-api.md §5.2)."""
BUDGET_EXTRAS = {"budget_per_minute": 1_000, "budget_per_hour": 10_000, "budget_per_day": 50_000}
"""The budget's defaults, set explicitly: a loopback Base URL is not budgeted unless a ``budget_*`` extra is."""
SHARE = {"minute": 1_000, "hour": 10_000, "day": 50_000}
POLL_INTERVAL = 60.0
MAX_WAIT = 900.0
TRIAGE_EVERY = 1_800.0
CHAT_SOLVE_DELAY = 1_500.0
"""Simulated seconds from a reply to its chat tasks clearing: answered cases leave the queue before the next triage
run (as in Debitura, where a reply clears them), and a new task (on a case the triage answers) stays open at least
25 minutes, longer than the shared poll's most stretched round."""
CHAT_TYPES = ("ReplyToChat", "ClientInputRequired", "MoreInfoNeeded")
REPLY = "We are on it for case {{ case.creditorReference }} and will get back to you within two business days."


@dataclass
class Config:
    """One simulated period.

    :param open_tasks: open tasks at the start (``large:N``, its account-level tasks moved onto cases).
    :param gates: deferred case gates, one per case, on the first cases.
    :param hours: simulated hours in which blockers clear and tasks arrive.
    :param speed: simulated seconds per real second.
    :param new_tasks: tasks added over ``clear_hours`` (on cases no gate watches).
    :param seed: the driver's random seed.
    :param grace: simulated seconds after the period for the last gates to open.
    :param triage: run the triage example every 30 simulated minutes.
    :param clear_hours: the gated cases' blockers clear at uniform random times over this many simulated hours
        (24: a day's pace; a shorter run then clears only its share of them); new tasks arrive the same way.
    """

    open_tasks: int = 5_000
    gates: int = 1_000
    hours: float = 24.0
    speed: float = 288.0
    new_tasks: int = 200
    seed: int = 24
    grace: float = 1_800.0
    triage: bool = True
    clear_hours: float = 24.0


@dataclass
class Result:
    """What a simulated period did."""

    config: Config
    spend: dict[str, Any] = field(default_factory=dict)
    """The sandbox's spend report for the key."""
    delays: list[float] = field(default_factory=list)
    """Simulated seconds from each gate's blocker clearing to its opening."""
    opened_early: list[str] = field(default_factory=list)
    not_opened: list[str] = field(default_factory=list)
    bad_events: list[dict[str, Any]] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    fired: Counter[str] = field(default_factory=Counter)
    triage_runs: list[dict[str, Any]] = field(default_factory=list)
    cleared: int = 0
    """Gates whose blockers the driver cleared."""
    budget_sent: int = 0
    tight_logs: int = 0
    real_seconds: float = 0.0
    sim_seconds: float = 0.0

    @property
    def refused(self) -> int:
        return int(self.spend.get("refused", 0))

    def peak(self, window: str) -> int:
        return int(self.spend[window]["peak"])

    def within_share(self) -> bool:
        return all(self.peak(w) <= SHARE[w] for w in SHARE)

    def fired_once(self) -> bool:
        return set(self.fired) == set(self.added) and all(n == 1 for n in self.fired.values())

    def percentile(self, q: float) -> float:
        ordered = sorted(self.delays)
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if ordered else float("nan")

    def table(self) -> str:
        c = self.config
        triage_ok = sum(1 for r in self.triage_runs if r.get("error") is None)
        rows = [
            ("open tasks / gates / new tasks", f"{c.open_tasks:,} / {c.gates:,} / {len(self.added)}"),
            ("simulated period (+ grace)", f"{c.hours:g} h (+{c.grace / 60:.0f} min), speed {c.speed:g}"),
            ("blockers clear / tasks arrive over", f"{c.clear_hours:g} h ({self.cleared} gates cleared)"),
            ("requests (sandbox) / granted (budget)", f"{self.spend.get('requests', 0):,} / {self.budget_sent:,}"),
            ("429 responses", f"{self.refused}"),
        ]
        rows += [
            (f"peak {w} (share / API limit)", f"{self.peak(w):,} ({SHARE[w]:,} / {API_WINDOWS[w]:,})") for w in SHARE
        ]
        rows += [
            (
                "gates opened after their blocker",
                f"{len(self.delays)} of {self.cleared} (early: {len(self.opened_early)})",
            ),
            ("gate delay median / p95 / max", self._delays_text()),
            ("new tasks fired once (never / more)", self._fired_text()),
            ("triage runs ok / run (retried)", f"{triage_ok} / {len(self.triage_runs)} ({self._retried()})"),
            ("budget 'tight' log lines", f"{self.tight_logs}"),
            ("real seconds", f"{self.real_seconds:.0f}"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

    def _fired_text(self) -> str:
        once = sum(1 for n in self.fired.values() if n == 1)
        never = sum(1 for task_id in self.added if task_id not in self.fired)
        more = sum(1 for n in self.fired.values() if n > 1)
        return f"{once} of {len(self.added)} ({never} / {more})"

    def _retried(self) -> int:
        return sum(1 for r in self.triage_runs if r.get("tries", 1) > 1)

    def _delays_text(self) -> str:
        if not self.delays:
            return "-"
        median = statistics.median(self.delays)
        return f"{median:.0f} s / {self.percentile(0.95):.0f} s / {max(self.delays):.0f} s"


class ScaledClock:
    """The budget's clock: simulated seconds, ``speed`` times real time (a wait of ``s`` lasts ``s / speed``).

    :param speed: simulated seconds per real second.
    """

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._t0 = time.monotonic()

    def now(self) -> float:
        """Simulated seconds since this clock was made."""
        return (time.monotonic() - self._t0) * self.speed

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / self.speed)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)

    async def until(self, sim_time: float) -> None:
        """Wait until the simulated time ``sim_time``."""
        delay = sim_time - self.now()
        if delay > 0:
            await asyncio.sleep(delay / self.speed)


def gate_ref(i: int) -> str:
    return f"LRG-{i + 1:06d}"


def build_scenario(config: Config) -> dict[str, Any]:
    """``large:N`` with its account-level tasks moved onto cases (a default gate counts account-level tasks,
    so one left open would keep every gate shut all day), the gated cases' chat tasks made human-only ones (the
    triage's replies clear chat tasks: a gated case it answered could open before the driver clears it), and
    cases for the new tasks."""
    scenario = generate_large(config.open_tasks)
    cases = scenario["cases"]
    if config.gates > len(cases):
        raise ValueError(
            f"gates={config.gates} needs as many cases; open_tasks={config.open_tasks} has {len(cases)} "
            f"(open_tasks // 5): give at least {config.gates * 5} open tasks or fewer gates"
        )
    gated = {gate_ref(i) for i in range(config.gates)}
    for i, task in enumerate(scenario["tasks"]):
        if "caseCreditorReference" not in task:  # an account-level type cannot sit on a case
            task.update(type="MoreInfoNeeded", caseCreditorReference=cases[i % len(cases)]["creditorReference"])
        if task["caseCreditorReference"] in gated and task["type"] in CHAT_TYPES:
            task["type"] = "ReviewPartner"  # a gate waits for a person; the triage answers only ungated cases
    scenario["cases"] += [{"creditorReference": f"NEW-{i + 1:06d}", "grossAmount": 1000.0} for i in range(50)]
    return scenario


def schedule(config: Config) -> list[tuple[float, str, str]]:
    """The driver's seeded plan: ``(sim time, "clear" | "add" | "triage", what)``, in time order."""
    rng = random.Random(config.seed)
    period, spread = config.hours * 3_600, config.clear_hours * 3_600
    plan = [(rng.uniform(0, spread), "clear", gate_ref(i)) for i in range(config.gates)]
    plan += [(rng.uniform(0, spread), "add", f"NEW-{rng.randrange(50) + 1:06d}") for _ in range(config.new_tasks)]
    if config.triage:
        plan += [(k * TRIAGE_EVERY, "triage", "") for k in range(int(period // TRIAGE_EVERY) + 1)]
    return sorted(p for p in plan if p[0] < period)


class _TightCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "request budget is tight" in record.getMessage():
            self.count += 1


def run(config: Config) -> Result:
    """Run one simulated period and return what it did (see the module's docstring)."""
    logging.getLogger("airflow_provider_debitura").setLevel(logging.WARNING)
    logging.getLogger("airflow.task").setLevel(logging.WARNING)
    result = Result(config)
    started = time.monotonic()
    with SandboxServer(build_scenario(config), api_key=KEY, chat_solve_delay_seconds=CHAT_SOLVE_DELAY) as sb:
        _ok(sb.control("PUT", "/config", {
            "rateLimitPerMinute": API_WINDOWS["minute"], "rateLimitPerHour": API_WINDOWS["hour"],
            "rateLimitPerDay": API_WINDOWS["day"], "rateLimitDayReset": "sliding",
        }))  # fmt: skip
        tasks_by_case: dict[str, list[str]] = {}
        for task in _ok(sb.control("GET", "/state"))["tasks"]:
            tasks_by_case.setdefault(str(task.get("caseId")).lower(), []).append(task["id"])
        conn = sb.conn_dict()
        conn["extra"].update(BUDGET_EXTRAS)
        saved = os.environ.get("AIRFLOW_CONN_DEBITURA_DEFAULT")
        os.environ["AIRFLOW_CONN_DEBITURA_DEFAULT"] = json.dumps(conn)
        clock = ScaledClock(config.speed)
        budget_module.reset_budgets(clock)
        tight = _TightCounter()
        logging.getLogger("airflow_provider_debitura").addHandler(tight)
        try:
            _ok(sb.control("DELETE", "/rate-limits"))
            _ok(sb.control("PUT", "/clock", {"speed": config.speed}))
            asyncio.run(_simulate(sb, config, clock, tasks_by_case, result))
            result.spend = _ok(sb.control("GET", "/rate-limits"))["keys"]["configured"]
        finally:
            logging.getLogger("airflow_provider_debitura").removeHandler(tight)
            budget_module.reset_budgets()
            if saved is None:
                os.environ.pop("AIRFLOW_CONN_DEBITURA_DEFAULT", None)
            else:
                os.environ["AIRFLOW_CONN_DEBITURA_DEFAULT"] = saved
        result.tight_logs = tight.count
    result.real_seconds = time.monotonic() - started
    return result


def _ok(response: httpx.Response) -> Any:
    if response.status_code not in (200, 201):
        raise AssertionError(f"sandbox control call failed: {response.status_code} {response.text}")
    return response.json()


async def _simulate(
    sb: SandboxServer, config: Config, clock: ScaledClock, tasks_by_case: dict[str, list[str]], result: Result
) -> None:
    scale = config.speed
    cleared: dict[str, float] = {}
    opened: dict[str, float] = {}

    def on_open(ref: str, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        opened[ref] = clock.now()
        payload = fut.result()
        if payload.get("status") != "success":
            result.bad_events.append({"gate": ref, **payload})

    gate_tasks: list[asyncio.Future[Any]] = []
    for i in range(config.gates):
        trigger = DebituraCaseUnblockedTrigger(
            case_id_for(gate_ref(i)), poll_interval=POLL_INTERVAL / scale, max_wait=MAX_WAIT / scale, checks=1,
            blocked_since=time.time(),
        )  # fmt: skip
        fut = asyncio.ensure_future(_first_event(trigger))
        fut.add_done_callback(functools.partial(on_open, gate_ref(i)))
        gate_tasks.append(fut)
    watcher = DebituraNewTasksTrigger(poll_interval=POLL_INTERVAL / scale, store=MemorySeenTasksStore())
    watch = asyncio.ensure_future(_collect(watcher, result))
    triage: asyncio.Future[Any] | None = None
    while watcher.rounds < 1:  # a task added before the watcher's first round is backlog, not new
        if watch.done():
            watch.result()
        await asyncio.sleep(0.02)
    t0 = clock.now()
    async with httpx.AsyncClient(base_url=sb.url + "/_sandbox", timeout=60) as control:
        for at, what, ref in schedule(config):
            await clock.until(t0 + at)
            if what == "clear":
                for task_id in tasks_by_case[case_id_for(ref).lower()]:
                    _ok(await control.post(f"/tasks/{task_id}/solve", json={}))
                cleared[ref] = clock.now()
            elif what == "add":
                added = _ok(await control.post("/tasks", json={"type": "ReplyToChat", "caseCreditorReference": ref}))
                result.added.append(added["id"])
            elif triage is None or triage.done():  # max_active_runs=1: a run still going skips this slot
                triage = asyncio.ensure_future(asyncio.to_thread(_triage_run, at, result, config.speed))
            else:
                result.triage_runs.append({"at": at, "error": "skipped: the previous run was still going"})
        await clock.until(t0 + config.hours * 3_600)
        end = t0 + config.hours * 3_600 + config.grace
        while clock.now() < end and (set(cleared) - set(opened) or set(result.fired) != set(result.added)):
            await asyncio.sleep(0.05)
    result.sim_seconds = clock.now()
    if triage is not None:
        await triage
    for fut in [*gate_tasks, watch]:
        fut.cancel()
    await asyncio.gather(*gate_tasks, watch, return_exceptions=True)
    await asyncio.sleep(0)
    assert shared_poll.active_pollers() == {}, "the shared poll did not stop with its last member"
    for ref, at in opened.items():
        if ref not in cleared or at < cleared[ref]:
            result.opened_early.append(ref)
        else:
            result.delays.append(at - cleared[ref])
    result.not_opened = sorted(set(cleared) - set(opened))
    result.cleared = len(cleared)
    result.budget_sent = sum(b.sent for b in budget_module._REGISTRY.values())


async def _first_event(trigger: DebituraCaseUnblockedTrigger) -> dict[str, Any]:
    event = await trigger.run().__anext__()
    payload: dict[str, Any] = event.payload
    return payload


async def _collect(watcher: DebituraNewTasksTrigger, result: Result) -> None:
    async for event in watcher.run():
        result.fired[str(event.payload["id"])] += 1


TRIAGE_RETRIES = 2
TRIAGE_RETRY_DELAY = 120.0
"""The example's ``auto_reply`` task: ``retries=2``, ``retry_delay`` 2 minutes (simulated seconds here)."""


def _triage_run(at: float, result: Result, speed: float) -> None:
    """The triage example's two operators (``auto_reply``, then ``list_human_tasks``), as a worker runs them: a try
    that fails (the request budget refusing it before its bulk) is tried again as the example's retries say."""
    from airflow_provider_debitura.exceptions import DebituraBudgetError
    from airflow_provider_debitura.operators import DebituraListTasksOperator, DebituraReplyToChatTasksOperator
    from helpers.context import task_context

    record: dict[str, Any] = {"at": at, "error": None, "tries": 0}
    try:
        for attempt in range(TRIAGE_RETRIES + 1):
            record["tries"] = attempt + 1
            reply = DebituraReplyToChatTasksOperator(task_id="auto_reply", reply_template=REPLY, max_replies=50)
            try:
                report = reply.execute(task_context(reply))
                break
            except DebituraBudgetError:
                if attempt == TRIAGE_RETRIES:
                    raise
                time.sleep(TRIAGE_RETRY_DELAY / speed)
        record["replied"] = len(report.get("replied", [])) if isinstance(report, dict) else None
        listing = DebituraListTasksOperator(task_id="list_human_tasks", needs_human_only=True, shape="counts")
        summary = listing.execute(task_context(listing))
        record["human_tasks"] = summary.get("total") if isinstance(summary, dict) else None
    except Exception as exc:  # a run that fails is reported, as Airflow would mark it failed
        record["error"] = f"{type(exc).__name__}: {exc}"[:300]
    result.triage_runs.append(record)
