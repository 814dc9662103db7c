"""One poll per connection for every case gate and watcher in a triggerer: the fewest requests per interval.

Every subscriber on a connection (a gate with its :class:`~airflow_provider_debitura.gate.GateSpec`, or a
watcher that needs the whole queue) joins one :class:`SharedAccountPoller` per event loop through
:func:`subscribe`. Each round serves the subscribers that are due with the cheaper of two plans:

- **direct**: one read per distinct case of the due gates, plus *one* read of the account-level tasks
  shared by all of them (``C + 1`` requests; ``C`` without account-level gates);
- **full**: one read of the whole open queue (``P`` pages), which also serves a watcher.

So N gates over a queue of P pages cost at most ``min(N + 1, P)`` requests per interval. The queue's
size is learned from page 1 of a full read, which doubles as the probe: after it the poller either
reads on or switches to direct reads, so even the first interval costs at most ``min(N + 1, P) + 1``.
While gates read directly, page 1 is read again now and then to notice a queue that shrank, but only in
a round with a request to spare under ``min(N + 1, P)``.

A shared read may keep a gate blocked (a task seen open was open), but a gate opens only on direct reads of
every part it counts: after a full read, the gates it would open (and those it leaves in doubt: a failed or
unverified read, a record that cannot be read) read their own case, and the account-level tasks once for all
of them, in the same round; a gate the full read keeps blocked confirms now and then that its case still
exists (:data:`EXISTS_EVERY`). Those direct reads share one budget per round, so that a round costs at most
``2 * min(N + 1, P)`` (:func:`confirm_budget`); a gate that does not fit waits for the next round, blocked.
Direct reads run at most :data:`MAX_CONCURRENT_READS` at a time *per connection*: a slow connection never
holds up gates on another. Design notes and the cost table: ``docs/gates.md``.

A round starts only when the requests it is expected to send fit the connection's request budget
(:class:`~airflow_provider_debitura.triggers.poll_budget.RoundBudget`): when the budget is tight the rounds
stretch, said once in the log, and come back to the interval when it fits again (``docs/request-budget.md``).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from airflow_provider_debitura.gate import AccountSnapshot, DirectReads, GateSpec, GateState
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook
from airflow_provider_debitura.triggers.poll_budget import RoundBudget
from airflow_provider_debitura.triggers.reads import ListedIds, QueueRead, drive_direct, pages_for, read_queue

log = logging.getLogger(__name__)

R = TypeVar("R")
Step = Callable[[AccountSnapshot], float | R]
"""A follower's per-round function: a float (loop time of the next round it wants) or its final outcome."""

MAX_CONCURRENT_READS = 8
"""Direct reads in flight at once, per connection and event loop (a cleared account-level blocker makes
every gate read at once; 1,000 gates must not spend the key's per-minute budget in one burst)."""

FANOUT_BATCH = 50
"""Subscribers woken per event-loop iteration when a round is delivered, at most."""

SLICE_SECONDS = 0.01
"""CPU a round's fan-out or verdict sorting spends before it lets the loop run: at 50,000 open tasks a blocked
gate's step costs a few milliseconds (its blockers include every account-level task), so a fixed count of gates
per slice held the loop for 100 ms and more (``docs/triggerer-scale.md``)."""

_NEVER = float("inf")
_TOLERANCE = 1e-3
"""Seconds by which a subscriber may ask "early" for a round and still be served by it (float rounding)."""

EXISTS_EVERY = 5
"""A gate kept blocked by full reads has its case read directly (does it still exist?) once in this many rounds,
budget permitting: a case deleted while the queue still lists its task fails its gate within a few rounds."""

UNKNOWN_PAGES = MAX_CONCURRENT_READS
"""The page count a round's budget assumes while the queue's size is unknown (its first read failed)."""

PROBE_EVERY = 10
"""While gates read directly, page 1 of the queue is read again (to notice a queue that shrank) at most
every this many rounds, and only in a round with a request to spare."""

_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = weakref.WeakKeyDictionary()
_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, SharedAccountPoller]] = (
    weakref.WeakKeyDictionary()
)


def connection_slots(conn_id: str) -> asyncio.Semaphore:
    """The limit on concurrent direct reads of one connection on the running loop.

    :param conn_id: the Airflow connection id.
    """
    slots = _SLOTS.setdefault(asyncio.get_running_loop(), {})
    if conn_id not in slots:
        slots[conn_id] = asyncio.Semaphore(MAX_CONCURRENT_READS)
    return slots[conn_id]


async def warm_client(hook: DebituraAsyncHook) -> None:
    """Build the hook's client before the first read (the hook keeps CA-bundle loading off the loop). A
    broken connection is not raised here: it surfaces on the first real request, as that request's answer.

    :param hook: the hook to warm up.
    """
    try:
        await hook.get_async_conn()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.debug("Debitura connection %r not ready yet: %s", hook.debitura_conn_id, exc)


@dataclass(frozen=True)
class _Member:
    interval: float
    gate: GateSpec | None
    """None: the subscriber needs the full read (a watcher)."""
    records: bool = False


@dataclass(frozen=True)
class _Plan:
    """Who is served in a round: the due gates, and whether a due subscriber needs the whole queue."""

    gates: tuple[GateSpec, ...]
    full: bool
    records: bool = False

    @functools.cached_property
    def cases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(g.case_id for g in self.gates))

    @functools.cached_property
    def account_types(self) -> frozenset[str]:
        needed: set[str] = set()
        for gate in self.gates:
            needed |= gate.account_types
        return frozenset(needed)

    @functools.cached_property
    def direct_cost(self) -> int:
        """Requests of a direct round: one per distinct case, and one for the account-level tasks."""
        return len(self.cases) + (1 if self.account_types else 0)


class SharedAccountPoller:
    """The shared poll of one connection on one event loop. Use :func:`subscribe`; the attributes below
    are read-only statistics (tests and ``bench/gates.py`` read them).

    :param conn_id: the Airflow connection id.
    :param hook_factory: builds the connection's async hook (one HTTP pool for every subscriber).
    """

    def __init__(self, conn_id: str, *, hook_factory: Callable[[str], DebituraAsyncHook] = DebituraAsyncHook) -> None:
        self.conn_id = conn_id
        self.hook = hook_factory(conn_id)
        self._members: dict[int, _Member] = {}
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._steps: dict[int, Step[Any]] = {}
        self._not_before: dict[int, float] = {}
        self._deadline: dict[int, float] = {}
        self._next_token = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._rounds_since_size = 0
        self._plan_text: str | None = None
        self._busy = False
        self._listed = ListedIds()
        self._case_read: dict[str, int] = {}
        """Round (``snapshots``) in which each case was last read directly."""
        self._turn = 0
        """Rotates which gates' direct reads come first when a round's budget cannot hold them all."""
        self.snapshots = 0
        """Rounds delivered."""
        self.shared_reads = 0
        """Full reads of the queue (failed ones included)."""
        self.direct_rounds = 0
        self.probes = 0
        """Full reads stopped after page 1 because direct reads were cheaper."""
        self.fallback_rounds = 0
        """Rounds in which a doubtful full read was completed by direct reads."""
        self.open_total: int | None = None
        """Open tasks at the last page 1 read; None before the first."""
        self.last_duration = 0.0
        self.round_requests: collections.deque[int] = collections.deque(maxlen=1000)
        """Requests each recent round sent (a retried request counts once per call)."""
        self.round_gates: collections.deque[int] = collections.deque(maxlen=1000)
        """Gates each recent round served (a gate that subscribes during a round joins the next one)."""
        self._requests = 0
        self.budget = RoundBudget(conn_id)
        """Rounds wait while the connection's request budget cannot fit them (``triggers.poll_budget``)."""

    # -- membership (through :func:`subscribe`) --

    @property
    def subscribers(self) -> int:
        return len(self._members)

    @property
    def interval(self) -> float:
        """The shortest interval any subscriber asked for: rounds are never further apart."""
        return min((m.interval for m in self._members.values()), default=60.0)

    @property
    def waiting(self) -> int:
        """Subscribers waiting for a round right now."""
        return sum(1 for fut in self._waiting.values() if not fut.done())

    @property
    def busy(self) -> bool:
        """A round is being read."""
        return self._busy

    @property
    def pages(self) -> int | None:
        return None if self.open_total is None else pages_for(self.open_total)

    def join(self, member: _Member) -> int:
        self._next_token += 1
        self._members[self._next_token] = member
        self._ensure_running()
        return self._next_token

    def leave(self, token: int) -> bool:
        """Drop a subscriber; True when it was the last one."""
        self._members.pop(token, None)
        fut = self._forget(token)
        if fut is not None and not fut.done():
            fut.cancel()
        return not self._members

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"debitura-shared-poll-{self.conn_id}"
            )

    def ask(
        self, token: int, not_before: float | None, deadline: float | None, step: Step[R] | None = None
    ) -> asyncio.Future[Any]:
        """A future for the first round that starts at or after ``not_before`` (loop time; None: the next one);
        its result is None once ``deadline`` (wall clock) has passed.

        With ``step``, the poller calls ``step(snapshot)`` after each round the subscriber is due for: a float
        means "again at the first round at or after that loop time", anything else resolves the future. A
        gate that stays blocked then costs no object per round at all: no future, no task wake-up, nothing
        for the garbage collector to age (docs/gates.md).
        """
        loop = asyncio.get_running_loop()
        self._ensure_running()  # a crashed loop must not strand anybody
        self._forget(token)  # one question at a time per subscriber
        fut: asyncio.Future[Any] = loop.create_future()
        self._waiting[token] = fut
        self._not_before[token] = loop.time() if not_before is None else not_before
        if deadline is not None:
            self._deadline[token] = loop.time() + (deadline - time.time())
        if step is not None:
            self._steps[token] = step
        self._wake.set()
        return fut

    def _forget(self, token: int) -> asyncio.Future[Any] | None:
        self._not_before.pop(token, None)
        self._deadline.pop(token, None)
        self._steps.pop(token, None)
        return self._waiting.pop(token, None)

    # -- the loop --

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_start = 0.0
        try:
            while self._members:
                now = loop.time()
                self._expire(now)
                for token in [t for t, fut in self._waiting.items() if fut.done()]:  # cancelled meanwhile
                    self._forget(token)
                asking = list(self._waiting)
                start_at = max([next_start, min(self._not_before[t] for t in asking)]) if asking else _NEVER
                if start_at > now + _TOLERANCE:
                    await self._sleep_until(min([start_at, *(self._deadline.get(t, _NEVER) for t in asking)]))
                    continue
                if (tight := await self.budget.wait(self.hook, self.round_requests, self.interval)) > 0:
                    next_start = now + min(tight, self.interval)  # stretched: look again, send nothing
                    continue
                next_start = now + self.interval
                await self._serve([t for t in asking if self._not_before[t] <= now + _TOLERANCE], now)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave subscribers waiting forever
            log.exception("Debitura shared poll loop for %r failed; restarting it in 1 s", self.conn_id)
            self._deliver_now(
                list(self._waiting), AccountSnapshot.failed(f"shared poll loop failed: {exc}", time.time())
            )
            asyncio.get_running_loop().call_later(1.0, self._restart)

    def _restart(self) -> None:
        if self._members:
            self._ensure_running()

    async def _sleep_until(self, when: float) -> None:
        self._wake.clear()
        loop = asyncio.get_running_loop()
        handle = loop.call_at(when, self._wake.set) if when != _NEVER else None
        try:
            await self._wake.wait()
        finally:
            if handle is not None:
                handle.cancel()

    def _expire(self, now: float) -> None:
        for token in [t for t, at in self._deadline.items() if at <= now]:
            fut = self._forget(token)
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def _serve(self, tokens: list[int], started: float) -> None:
        members = [self._members[t] for t in tokens if t in self._members]
        plan = _Plan(
            tuple(m.gate for m in members if m.gate is not None),
            any(m.gate is None for m in members),
            any(m.records for m in members),
        )
        clock = time.monotonic()
        self._busy, self._requests = True, 0
        try:
            snapshot = replace(await self._read(plan), started=started)
            self.round_requests.append(self._requests)
            self.round_gates.append(len(plan.gates))
            self.snapshots += 1
            await self._deliver(tokens, snapshot)
        finally:
            self._busy = False
            self.last_duration = time.monotonic() - clock

    async def _read(self, plan: _Plan) -> AccountSnapshot:
        taken_at = time.time()
        pages, cost = self.pages, plan.direct_cost
        probe = self._rounds_since_size >= PROBE_EVERY and cost <= len(plan.gates)
        if not plan.full and pages is not None and cost < pages and not probe:
            return await self._direct(plan, taken_at)
        # Page 1 first when the size is unknown (or due for a refresh): it decides between the plans.
        sizing = not plan.full and (pages is None or probe)
        keep_going = (lambda total: pages_for(total) <= cost) if sizing else None
        read = await read_queue(
            self.hook,
            keep_pages=plan.records,
            keep_going=keep_going,
            listed=self._listed,
            pages_hint=None if sizing else pages,
            max_rereads=1 if plan.full else 0,  # a re-read opens no gate: only a whole-queue subscriber needs it
        )
        self._requests += read.requests
        if read.total is not None:
            self.open_total, self._rounds_since_size = read.total, 0
        if read.abandoned:
            self.probes += 1
            return await self._direct(plan, taken_at)
        self.shared_reads += 1
        self._say("full", plan)
        snapshot = await _snapshot_of(read, taken_at)
        # P for the budget: the size the queue told; a read that could not tell (no or a lying total): its pages.
        pages = self.pages if read.total is not None or read.error is not None else read.requests
        return await self._confirm(snapshot, plan, pages) if plan.gates else snapshot

    async def _direct(self, plan: _Plan, taken_at: float) -> AccountSnapshot:
        self.direct_rounds += 1
        self._rounds_since_size += 1
        self._say("direct", plan)
        reads = DirectReads(plan.cases, plan.account_types)
        await drive_direct(self.hook, reads, connection_slots(self.conn_id))
        self._requests += reads.requests
        self._case_read.update(dict.fromkeys(reads.cases, self.snapshots))
        return reads.snapshot(taken_at)

    async def _confirm(self, snapshot: AccountSnapshot, plan: _Plan, pages: int | None) -> AccountSnapshot:
        """The direct reads a full read calls for, in the same round and within the round's budget: the case of
        every gate it would open or leaves in doubt (the account-level tasks once for them all), then the cases
        of gates it keeps blocked that have not been read directly for :data:`EXISTS_EVERY` rounds."""
        opening, held = await self._sort_gates(snapshot, plan)
        budget = confirm_budget(len(plan.gates), pages, self._requests)
        account_types: frozenset[str] = frozenset()
        if opening and not snapshot.account_direct:
            account_types = _Plan(tuple(opening), False).account_types
        budget = max(budget, 1 + bool(account_types))  # room to open at least one gate, or no gate ever opens
        self._turn += 1
        cases = _rotate(list(dict.fromkeys(g.case_id for g in opening)), self._turn)
        due = self.snapshots - EXISTS_EVERY
        cases += sorted(
            {g.case_id for g in held if self._case_read.setdefault(g.case_id, self.snapshots) <= due} - set(cases),
            key=lambda case: self._case_read[case],
        )
        cases = cases[: max(0, budget - bool(account_types))]
        if not cases:
            return snapshot
        self.fallback_rounds += 1
        reads = DirectReads(cases, account_types)
        await drive_direct(self.hook, reads, connection_slots(self.conn_id))
        self._requests += reads.requests
        self._case_read.update(dict.fromkeys(reads.cases, self.snapshots))
        return snapshot.with_reads(reads.cases, reads.account)

    @staticmethod
    async def _sort_gates(snapshot: AccountSnapshot, plan: _Plan) -> tuple[list[GateSpec], list[GateSpec]]:
        """The due gates a full read would open or leaves in doubt, and those it keeps blocked by their case."""
        opening: list[GateSpec] = []
        held: list[GateSpec] = []
        slice_ends = time.monotonic() + SLICE_SECONDS
        for gate in plan.gates:
            state = snapshot.verdict_for(gate).state
            if state in (GateState.UNBLOCKED, GateState.UNKNOWN):
                opening.append(gate)
            elif state is GateState.BLOCKED and snapshot.from_full_read(gate.case_id):
                held.append(gate)
            if time.monotonic() >= slice_ends:  # 1,000 verdicts must not hold the loop in one piece
                await asyncio.sleep(0)
                slice_ends = time.monotonic() + SLICE_SECONDS
        return opening, held

    def _say(self, mode: str, plan: _Plan) -> None:
        """One plain log line whenever the way the gates are served changes."""
        gates = len(plan.gates)
        named = [f"{gates:,} gate{'s' if gates != 1 else ''}"] if gates else []
        who = " and ".join([*named, "a task watcher"] if plan.full else named)
        if mode == "full":
            pages = self.pages
            what = f"{who} {'share' if gates + plan.full > 1 else 'uses'} one read of the account's open tasks"
            total = self.open_total or 0
            detail = (
                f" ({total:,} task{'s' if total != 1 else ''} in {pages} page{'s' if pages != 1 else ''})"
                if pages
                else ""
            )
            text = f"{what}{detail} every {self.interval:g} s"
        else:
            account = " plus one read of the account-level tasks for all of them" if plan.account_types else ""
            text = (
                f"{who} each read their own case{account} every {self.interval:g} s "
                f"(cheaper than reading the {self.pages}-page queue)"
            )
        if text != self._plan_text:
            log.info("Debitura connection %r: %s", self.conn_id, text)
            self._plan_text = text

    async def _deliver(self, tokens: list[int], snapshot: AccountSnapshot) -> None:
        start = 0
        while start < len(tokens):
            start = self._deliver_now(tokens, snapshot, start, time.monotonic() + SLICE_SECONDS)
            await asyncio.sleep(0)  # wake 1,000 subscribers in slices, not in one loop iteration

    def _deliver_now(self, tokens: list[int], snapshot: AccountSnapshot, start: int = 0, until: float = _NEVER) -> int:
        """Deliver to ``tokens[start:]``: at most :data:`FANOUT_BATCH` of them, and none once ``until``
        (``time.monotonic()``) has passed; returns the index of the first one not delivered."""
        end = min(len(tokens), start + FANOUT_BATCH) if until != _NEVER else len(tokens)
        for index in range(start, end):
            if index > start and time.monotonic() >= until:
                return index
            token = tokens[index]
            fut, step = self._waiting.get(token), self._steps.get(token)
            if fut is None or fut.done():
                self._forget(token)
                continue
            if step is None:
                self._forget(token)
                fut.set_result(snapshot)
                continue
            try:
                outcome = step(snapshot)
            except Exception as exc:  # the subscriber's own error, raised in its own task
                self._forget(token)
                fut.set_exception(exc)
                continue
            if isinstance(outcome, float):
                self._not_before[token] = outcome  # still waiting, same future
            else:
                self._forget(token)
                fut.set_result(outcome)
        return end

    async def aclose(self) -> None:
        """Stop the loop and close the HTTP client; cancellation of the caller still propagates."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task})
        await self.hook.aclose()


def confirm_budget(gates: int, pages: int | None, spent: int) -> int:
    """Direct reads a round may still send after its full read: the round stays within ``2 * min(N + 1, P)``.

    :param gates: N, the gates due in the round.
    :param pages: P, the queue's pages (None while unknown: :data:`UNKNOWN_PAGES`).
    :param spent: requests the round has sent so far.
    """
    return max(0, 2 * min(gates + 1, pages or UNKNOWN_PAGES) - spent)


def _rotate(items: list[str], turn: int) -> list[str]:
    """The list started at a different place each turn, so that a budget too small for all serves all in turn."""
    if not items:
        return items
    start = turn % len(items)
    return items[start:] + items[:start]


async def _snapshot_of(read: QueueRead, taken_at: float) -> AccountSnapshot:
    if read.error is not None or read.batch is None:
        return AccountSnapshot.failed(f"{type(read.error).__name__}: {read.error}", taken_at)
    snapshot = await AccountSnapshot.afrom_batch(
        read.batch,
        taken_at,
        verified=read.verified or read.atomic,  # one page that matches its total: nothing to miss, in any order
        pages=read.pages,
        total=read.total,
        unverified_reason=read.unverified_reason,
    )
    return replace(snapshot, account_direct=read.atomic and snapshot.account.settled)


class Subscription:
    """A subscriber's handle on the shared poll; an async context manager (use :func:`subscribe`).

    Joining happens on entry, leaving on exit: the last subscriber out stops the poll and closes its HTTP
    client (shielded, so a cancelled subscriber still releases the pool; its own cancellation propagates).
    A class rather than a generator-based context manager: one object fewer per gate for the collector.
    """

    __slots__ = ("_member", "conn_id", "poller", "token")

    def __init__(self, conn_id: str, member: _Member) -> None:
        self.conn_id = conn_id
        self._member = member
        self.poller: SharedAccountPoller | None = None
        self.token = 0

    async def __aenter__(self) -> Subscription:
        pollers = _POLLERS.setdefault(asyncio.get_running_loop(), {})
        poller = pollers.get(self.conn_id)
        if poller is None:
            poller = pollers[self.conn_id] = SharedAccountPoller(self.conn_id)
        self.poller, self.token = poller, poller.join(self._member)
        return self

    async def __aexit__(self, *exc: object) -> None:
        poller = self._poller
        self.poller = None
        if poller.leave(self.token):
            pollers = _POLLERS.get(asyncio.get_running_loop(), {})
            if pollers.get(self.conn_id) is poller:
                del pollers[self.conn_id]
            await asyncio.shield(poller.aclose())

    @property
    def _poller(self) -> SharedAccountPoller:
        if self.poller is None:
            raise RuntimeError("use the subscription as an async context manager (async with subscribe(...))")
        return self.poller

    @property
    def hook(self) -> DebituraAsyncHook:
        """The connection's shared hook (one HTTP pool for every subscriber)."""
        return self._poller.hook

    def next_snapshot(
        self, not_before: float | None = None, deadline: float | None = None
    ) -> asyncio.Future[AccountSnapshot | None]:
        """Await it: the first round that starts at or after ``not_before``; None once ``deadline`` has passed.

        :param not_before: event-loop time (``loop.time()``); None: the next round.
        :param deadline: wall-clock time (``time.time()``); None: no deadline.
        """
        return self._poller.ask(self.token, not_before, deadline)

    def follow(
        self, step: Step[R], not_before: float | None = None, deadline: float | None = None
    ) -> asyncio.Future[R | None]:
        """Await it: ``step(snapshot)`` runs after every round this subscriber is due for, until it returns
        something other than a float (the loop time of the next round it wants); that is the result. None
        once ``deadline`` has passed; an exception ``step`` raises is raised here.

        :param step: the per-round function (synchronous, quick: it runs in the poller's fan-out).
        :param not_before: event-loop time of the first round; None: the next round.
        :param deadline: wall-clock time; None: no deadline.
        """
        return self._poller.ask(self.token, not_before, deadline, step)


def subscribe(conn_id: str, interval: float, *, gate: GateSpec | None = None, records: bool = False) -> Subscription:
    """Join the shared poll of ``conn_id`` on the running loop for the duration of an ``async with`` block.

    :param conn_id: the Airflow connection id.
    :param interval: the subscriber's interval in seconds; rounds come at the shortest interval of all.
    :param gate: the gate this subscriber checks. None: it needs the whole queue every round it asks
        (a watcher), so those rounds read every page, and the gates due then share that read.
    :param records: (whole-queue subscribers) keep each page's records as JSON for
        :meth:`~airflow_provider_debitura.gate.AccountSnapshot.records`.
    """
    return Subscription(conn_id, _Member(float(interval), gate, records))


def active_pollers() -> dict[str, SharedAccountPoller]:
    """The pollers on the running loop (for tests and the benchmark)."""
    return dict(_POLLERS.get(asyncio.get_running_loop(), {}))


__all__ = [
    "MAX_CONCURRENT_READS",
    "SharedAccountPoller",
    "Subscription",
    "active_pollers",
    "connection_slots",
    "subscribe",
    "warm_client",
]
