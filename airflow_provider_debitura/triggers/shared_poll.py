"""One poll per connection for every case gate and watcher in a triggerer: the fewest requests per interval.

Every subscriber on a connection (a gate with its :class:`~airflow_provider_debitura.gate.GateSpec`, or a
watcher that needs the whole queue) joins one :class:`SharedAccountPoller` per event loop through
:func:`subscribe`, whose :class:`Subscription` is the subscriber's source of snapshots. The poller is a short
loop over three parts, one object each (``docs/shared-poll-design.md``):

- who is subscribed and what each waits for: :class:`~.poll_subscribers.Subscribers`;
- what a round reads, the cheaper of direct reads and a full read: :class:`~.poll_round.RoundReads`;
- which gates a full read's verdicts send to direct reads before they open: :class:`~.poll_confirm.Confirmations`;

and a round starts only when the requests it is expected to send fit the connection's request budget
(:class:`~.poll_budget.RoundBudget`: when the budget is tight the rounds stretch, said once in the log).

So N gates over a queue of P pages cost at most ``min(N + 1, P)`` requests per interval, and at most
``2 * min(N + 1, P)`` in a round whose full read opens gates, or ``P + min(U, 100) + 1`` when U gates are seen
unblocked (the first round: ``min(N + 1, P) + 1``, page 1 being the size probe). Direct reads run at most
:data:`MAX_CONCURRENT_READS` at a time *per connection*: a slow connection never holds up gates on another.
Design notes and the cost table: ``docs/gates.md``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import replace

from airflow_provider_debitura.gate import AccountSnapshot, GateSpec
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook
from airflow_provider_debitura.triggers.poll_budget import RoundBudget
from airflow_provider_debitura.triggers.poll_round import PROBE_EVERY, RoundPlan, RoundReads
from airflow_provider_debitura.triggers.poll_subscribers import NEVER, TOLERANCE, Member, R, Step, Subscribers

log = logging.getLogger(__name__)

MAX_CONCURRENT_READS = 8
"""Direct reads in flight at once, per connection and event loop (a cleared account-level blocker makes
every gate read at once; 1,000 gates must not spend the key's per-minute budget in one burst)."""

FORGET_SLACK = 100
"""Cases of gates gone that the confirmations may remember beyond twice the subscribers before forgetting them."""

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


class SharedAccountPoller:
    """The shared poll of one connection on one event loop. Use :func:`subscribe`; the attributes below
    are read-only statistics (tests and ``bench/`` read them; the reads' own are on :attr:`reads`).

    :param conn_id: the Airflow connection id.
    :param hook_factory: builds the connection's async hook (one HTTP pool for every subscriber).
    """

    def __init__(self, conn_id: str, *, hook_factory: Callable[[str], DebituraAsyncHook] = DebituraAsyncHook) -> None:
        self.conn_id = conn_id
        self.hook = hook_factory(conn_id)
        self.members = Subscribers()
        self.reads = RoundReads(conn_id, self.hook, connection_slots(conn_id))
        self.budget = RoundBudget(conn_id)
        """Rounds wait while the connection's request budget cannot fit them (``triggers.poll_budget``)."""
        self._task: asyncio.Task[None] | None = None
        self.busy = False
        """A round is being read."""
        self.snapshots = 0
        """Rounds delivered."""
        self.last_duration = 0.0
        self.round_requests: collections.deque[int] = collections.deque(maxlen=1000)
        """Requests each recent round sent (a retried request counts once per call)."""
        self.round_gates: collections.deque[int] = collections.deque(maxlen=1000)
        """Gates each recent round served (a gate that subscribes during a round joins the next one)."""

    @property
    def subscribers(self) -> int:
        return len(self.members)

    @property
    def waiting(self) -> int:
        """Subscribers waiting for a round right now."""
        return self.members.waiting

    @property
    def interval(self) -> float:
        """The shortest interval any subscriber asked for: rounds are never further apart."""
        return self.members.interval

    def ensure_running(self) -> None:
        """Start the loop unless it runs (a crashed loop must not strand anybody)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"debitura-shared-poll-{self.conn_id}"
            )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_start = 0.0
        try:
            while self.members:
                now = loop.time()
                self.members.prune(now)
                start_at = max(next_start, self.members.first_due())
                if start_at > now + TOLERANCE:
                    await self._sleep_until(min(start_at, self.members.first_deadline()))
                    continue
                due = self.members.due(now)
                if (tight := await self.budget.wait(self.hook, self.round_requests, self.interval)) > 0:
                    next_start = now + min(tight, self.interval)  # stretched: look again, send nothing
                    continue
                next_start = now + self.interval
                await self._serve(due, now)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave subscribers waiting forever
            log.exception("Debitura shared poll loop for %r failed; restarting it in 1 s", self.conn_id)
            failed = AccountSnapshot.failed(f"shared poll loop failed: {exc}", time.time())
            self.members.deliver_now(self.members.asking(), failed)
            loop.call_later(1.0, self._restart)

    def _restart(self) -> None:
        if self.members:
            self.ensure_running()

    async def _sleep_until(self, when: float) -> None:
        wake = self.members.changed
        wake.clear()
        loop = asyncio.get_running_loop()
        handle = loop.call_at(when, wake.set) if when != NEVER else None
        try:
            await wake.wait()
        finally:
            if handle is not None:
                handle.cancel()

    async def _serve(self, tokens: list[int], started: float) -> None:
        plan = RoundPlan.of(self.members.of(tokens))
        clock = time.monotonic()
        self.busy = True
        try:
            snapshot = replace(await self.reads.read(plan, self.interval), started=started)
            self.round_requests.append(self.reads.requests)
            self.round_gates.append(len(plan.gates))
            self.snapshots += 1
            await self.members.deliver(tokens, snapshot)
            self._forget_gone_cases()
        finally:
            self.busy = False
            self.last_duration = time.monotonic() - clock

    def _forget_gone_cases(self) -> None:
        """Let the confirmations forget the cases no gate watches any more, once they remember more than twice as
        many cases as there are subscribers (so the work is a few operations per gate that left)."""
        confirmations = self.reads.confirmations
        if confirmations.remembered > 2 * len(self.members) + FORGET_SLACK:
            confirmations.keep({m.gate.case_id for m in self.members.members.values() if m.gate is not None})

    async def aclose(self) -> None:
        """Stop the loop and close the HTTP client; cancellation of the caller still propagates."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task})
        await self.hook.aclose()


class Subscription:
    """A subscriber's place in the shared poll, and its source of snapshots; an async context manager (use
    :func:`subscribe`). It is a :class:`~airflow_provider_debitura.triggers.sources.SnapshotSource`.

    Joining happens on entry, leaving on exit: the last subscriber out stops the poll and closes its HTTP
    client (shielded, so a cancelled subscriber still releases the pool; its own cancellation propagates).
    A class rather than a generator-based context manager: one object fewer per gate for the collector.

    :param conn_id: the Airflow connection id.
    :param member: what the subscriber reads, and how often.
    """

    __slots__ = ("_member", "conn_id", "poller", "token")

    def __init__(self, conn_id: str, member: Member) -> None:
        self.conn_id = conn_id
        self._member = member
        self.poller: SharedAccountPoller | None = None
        self.token = 0

    async def __aenter__(self) -> Subscription:
        pollers = _POLLERS.setdefault(asyncio.get_running_loop(), {})
        poller = pollers.get(self.conn_id)
        if poller is None:
            poller = pollers[self.conn_id] = SharedAccountPoller(self.conn_id)
        self.poller, self.token = poller, poller.members.join(self._member)
        poller.ensure_running()
        return self

    async def __aexit__(self, *exc: object) -> None:
        poller = self._poller
        self.poller = None
        if poller.members.leave(self.token):
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
        (A future, not a coroutine: one object per gate per round, see docs/gates.md.)

        :param not_before: event-loop time (``loop.time()``); None: the next round.
        :param deadline: wall-clock time (``time.time()``); None: no deadline.
        """
        poller = self._poller
        poller.ensure_running()
        return poller.members.ask(self.token, not_before, deadline)

    def follow(
        self, step: Step[R], not_before: float | None = None, deadline: float | None = None
    ) -> asyncio.Future[R | None]:
        """Await it: ``step(snapshot)`` runs after every round this subscriber is due for, until it returns
        something other than a float (the loop time of the next round it wants); that is the result. None
        once ``deadline`` has passed; an exception ``step`` raises is raised here. A blocked gate costs no task
        wake-up and no object per round.

        :param step: the per-round function (synchronous, quick: it runs in the poll's fan-out).
        :param not_before: event-loop time of the first round; None: the next round.
        :param deadline: wall-clock time; None: no deadline.
        """
        poller = self._poller
        poller.ensure_running()
        return poller.members.ask(self.token, not_before, deadline, step)


def subscribe(conn_id: str, interval: float, *, gate: GateSpec | None = None, records: bool = False) -> Subscription:
    """Join the shared poll of ``conn_id`` on the running loop for the duration of an ``async with`` block.

    :param conn_id: the Airflow connection id.
    :param interval: the subscriber's interval in seconds; rounds come at the shortest interval of all.
    :param gate: the gate this subscriber checks. None: it needs the whole queue every round it asks
        (a watcher), so those rounds read every page, and the gates due then share that read.
    :param records: (whole-queue subscribers) keep each page's records as JSON for
        :meth:`~airflow_provider_debitura.gate.AccountSnapshot.records`.
    """
    return Subscription(conn_id, Member(float(interval), gate, records))


def active_pollers() -> dict[str, SharedAccountPoller]:
    """The pollers on the running loop (for tests and the benchmark)."""
    return dict(_POLLERS.get(asyncio.get_running_loop(), {}))


__all__ = [
    "MAX_CONCURRENT_READS",
    "PROBE_EVERY",
    "SharedAccountPoller",
    "Step",
    "Subscription",
    "active_pollers",
    "connection_slots",
    "subscribe",
    "warm_client",
]
