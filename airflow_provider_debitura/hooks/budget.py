"""The request budget of a connection: what one process may send on the API key, planned over the day.

Debitura counts requests per key over three windows (2,000 a minute, 20,000 an hour, 100,000 a day) and the
key is shared with the creditor's other systems. Every request the hooks send first asks this budget
(:meth:`RequestBudget.acquire` / :meth:`RequestBudget.aacquire`); a request goes when it fits

- each of three sliding windows (a minute, an hour, a day) of this process's share, and
- the day's **pace**: a token bucket refilled at ``per_day / 86,400`` requests a second and holding at most a
  burst of ``per_day / 24`` (an hour of the day's pace), so that in any stretch of ``t`` seconds this process
  sends at most ``burst + t * per_day / 86,400``: the day cannot be spent in the morning;
- no hold: a 429 holds every request of the connection in this process until its ``retryAfter`` has passed
  (each waiter then comes back at its own spread moment, never all at once).

The design, the per-process split and every component's cost are in ``docs/request-budget.md``.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import math
import random
import threading
import time
from typing import Protocol

from airflow_provider_debitura.exceptions import DebituraBudgetError
from airflow_provider_debitura.hooks.settings import DAY, BudgetLimits, ConnectionSettings, connection_label

__all__ = [
    "BudgetLimits",
    "Clock",
    "DebituraBudgetError",
    "RequestBudget",
    "SystemClock",
    "budget_for",
    "reset_budgets",
]

RETRY_AFTER_SPREAD = 0.5
"""After a 429 the wait is drawn uniformly from ``[retryAfter, retryAfter * (1 + RETRY_AFTER_SPREAD)]``: clients
told the same ``retryAfter`` at once (one key shared by many DAGs, or the requests a 429 held in one process) come
back spread over half the wait, not together into the limit again."""

RETRY_AFTER_MIN_SPREAD = 0.2
"""The least spread, in seconds, for a very short ``retryAfter``."""

RETRY_AFTER_MAX_SPREAD = 60.0
"""The most spread, in seconds: a long ``retryAfter`` (the hourly or daily window) is not doubled for it."""


def spread(told: float, rng: random.Random, fraction: float = RETRY_AFTER_SPREAD) -> float:
    """A wait of ``told`` seconds (never less) plus jitter in proportion to it, within the bounds above. The
    retry's wait after a 429 and the budget's release of requests a 429 held both draw it here.

    :param told: the wait the server asked for (``retryAfter``), in seconds.
    :param rng: the random source.
    :param fraction: the jitter's upper bound as a fraction of ``told``.
    """
    told = max(0.0, told)
    jitter = min(RETRY_AFTER_MAX_SPREAD, max(RETRY_AFTER_MIN_SPREAD, fraction * told))
    return told + rng.uniform(0.0, jitter)


class Clock(Protocol):
    """Where a budget reads the time and waits (tests inject one that needs no sleeps)."""

    def now(self) -> float:
        """Monotonic seconds."""

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""

    async def asleep(self, seconds: float) -> None:
        """Wait ``seconds`` without blocking the event loop."""


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.sleep``, ``asyncio.sleep``."""

    def now(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Block the calling thread.

        :param seconds: how long.
        """
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        """Wait on the event loop.

        :param seconds: how long.
        """
        await asyncio.sleep(seconds)


class _Window:
    """Requests in the last ``seconds``, counted in slots of ``slot`` seconds (conservative by one slot)."""

    def __init__(self, name: str, seconds: float, slot: float) -> None:
        self.name, self.seconds, self.slot = name, seconds, slot
        self.limit = 1
        self.spent = 0
        self._slots: collections.deque[list[float]] = collections.deque()

    def _expire(self, now: float) -> None:
        while self._slots and self._slots[0][0] + self.slot + self.seconds <= now:
            self.spent -= int(self._slots.popleft()[1])

    def add(self, now: float, n: int) -> None:
        start = now - now % self.slot
        if self._slots and self._slots[-1][0] == start:
            self._slots[-1][1] += n
        else:
            self._slots.append([start, float(n)])
        self.spent += n

    def delay(self, now: float, n: int) -> float:
        """Seconds until ``n`` more requests fit (about, for ``n`` over the limit: whole windows added).

        :param now: the clock's time.
        :param n: requests.
        """
        self._expire(now)
        if n > self.limit:
            whole = math.ceil(n / self.limit) - 1
            return whole * self.seconds + self.delay(now, n - whole * self.limit)
        excess, freed = self.spent + n - self.limit, 0
        if excess <= 0:
            return 0.0
        for start, count in self._slots:
            freed += int(count)
            if freed >= excess:
                return start + self.slot + self.seconds - now
        return self.seconds  # unreachable while spent <= limit


class RequestBudget:
    """One connection's budget in this process: thread-safe, with a blocking and an awaiting acquire.

    :param limits: the connection's budget.
    :param label: how messages name the connection (never the key).
    :param clock: where time is read and waited (default: the real clock).
    :param rng: the random source of the spread after a 429 hold.
    """

    def __init__(
        self,
        limits: BudgetLimits,
        label: str = "The connection",
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.label = label
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._rng = rng if rng is not None else random.Random()
        self._lock = threading.Lock()
        self._windows = (_Window("minute", 60.0, 1.0), _Window("hour", 3_600.0, 60.0), _Window("day", DAY, 600.0))
        self._stamp = self.clock.now()
        self._hold_until = -math.inf
        self.sent = 0
        """Requests granted so far."""
        self.limits = limits
        self._tokens = float(limits.burst)
        self.configure(limits)

    def configure(self, limits: BudgetLimits) -> None:
        """Take new limits (a changed connection), keeping what was spent.

        :param limits: the new budget.
        """
        with self._lock:
            self._refill(self.clock.now())
            self.limits = limits
            for window in self._windows:
                window.limit = limits.share(window.name)
            self._tokens = min(self._tokens, float(limits.burst))

    # -- the arithmetic (under the lock) --

    def _refill(self, now: float) -> None:
        self._tokens = min(float(self.limits.burst), self._tokens + (now - self._stamp) * self.limits.rate)
        self._stamp = now

    def _delays(self, now: float, n: int) -> dict[str, float]:
        self._refill(now)
        delays = {window.name: window.delay(now, n) for window in self._windows}
        delays["pace"] = max(0.0, (n - self._tokens) / self.limits.rate)
        delays["hold"] = max(0.0, self._hold_until - now)
        return delays

    def _take(self, now: float, n: int) -> None:
        for window in self._windows:
            window.add(now, n)
        self._tokens -= n
        self.sent += n

    # -- what callers use --

    def delay_for(self, n: int = 1) -> float:
        """Seconds until ``n`` requests sent back to back from now would all have gone (0: they fit now).

        :param n: requests.
        """
        if not self.limits.enabled or n <= 0:
            return 0.0
        with self._lock:
            return max(self._delays(self.clock.now(), n).values())

    def available(self, within: float) -> int:
        """The most requests that could go within ``within`` seconds from now.

        :param within: seconds.
        """
        if not self.limits.enabled:
            return 2**31
        low, high = 0, 1
        while self.delay_for(high) <= within and high < 2**31:
            low, high = high, high * 2
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if self.delay_for(middle) <= within else (low, middle)
        return low

    def _grant(self, waited: float, held: dict[str, float]) -> float:
        """0 when a request was granted; else how long to wait first (raises beyond ``max_wait``)."""
        with self._lock:
            now = self.clock.now()
            delays = self._delays(now, 1)
            wait = max(delays.values())
            if wait <= 0:
                self._take(now, 1)
                return 0.0
            if delays["hold"] > 0:  # each waiter leaves the hold at its own moment
                target = held.setdefault("until", now + spread(delays["hold"], self._rng))
                wait = max(wait, target - now)
            if waited + wait > self.limits.max_wait:
                raise self._error(delays, waited)
            return max(wait, 1e-3)

    def acquire(self) -> float:
        """Block until one request fits, then count it; the seconds waited. Raises :class:`DebituraBudgetError`
        when it would wait longer than ``budget_max_wait``."""
        waited, held = 0.0, dict[str, float]()
        while self.limits.enabled:
            wait = self._grant(waited, held)
            if wait == 0:
                break
            self.clock.sleep(wait)
            waited += wait
        return waited

    async def aacquire(self) -> float:
        """:meth:`acquire` for the event loop: it awaits, never blocks the loop."""
        waited, held = 0.0, dict[str, float]()
        while self.limits.enabled:
            wait = self._grant(waited, held)
            if wait == 0:
                break
            await self.clock.asleep(wait)
            waited += wait
        return waited

    def hold(self, retry_after: float | None) -> None:
        """A 429 said to wait ``retry_after`` seconds: hold every request of the connection in this process
        until then.

        :param retry_after: the 429's ``retryAfter`` (None: no hold; the retry backs off on its own).
        """
        if not self.limits.enabled or retry_after is None or not math.isfinite(retry_after):
            return
        with self._lock:
            self._hold_until = max(self._hold_until, self.clock.now() + max(0.0, retry_after))

    def require(self, n: int, *, what: str) -> None:
        """Fail before a run that would not fit: ``n`` requests must be able to go within ``budget_max_wait``.

        :param n: the requests the run needs (an estimate: "about").
        :param what: the run, for the message (e.g. ``"listing 5,000 open tasks (50 pages)"``).
        """
        if not self.limits.enabled or n <= 0:
            return
        with self._lock:
            delays = self._delays(self.clock.now(), n)
        if max(delays.values()) <= self.limits.max_wait:
            return
        fits = self.available(self.limits.max_wait)
        window = max(delays, key=lambda name: delays[name])
        raise DebituraBudgetError(
            f"{self.label}: {what} needs about {n:,} request{'s' if n != 1 else ''}; the connection's request "
            f"budget allows {fits:,} more within budget_max_wait={self.limits.max_wait:g} s "
            f"({self._describe(window)}). {self._fix(window)}, or make the run smaller (a task_types filter, a "
            "case scope, max_replies)."
        )

    def why(self, n: int = 1) -> str:
        """What keeps ``n`` requests from going now, for a log line ("fits" when nothing does).

        :param n: requests.
        """
        with self._lock:
            delays = self._delays(self.clock.now(), n)
        window = max(delays, key=lambda name: delays[name])
        return self._describe(window) if delays[window] > 0 else "fits"

    def _error(self, delays: dict[str, float], waited: float) -> DebituraBudgetError:
        window = max(delays, key=lambda name: delays[name])
        return DebituraBudgetError(
            f"{self.label}: the next request fits the request budget in {delays[window] + waited:,.0f} s, longer "
            f"than budget_max_wait={self.limits.max_wait:g} s: {self._describe(window)}. {self._fix(window)}."
        )

    def _describe(self, window: str) -> str:
        limits, per = self.limits, f" for {self.limits.processes} processes" if self.limits.processes > 1 else ""
        if window == "hold":
            return "the API answered 429 and asked this connection to wait (retryAfter)"
        if window == "pace":
            return (
                f"the day's pace is spent: {limits.share('day'):,} a day{per} is {limits.rate * 60:.1f} a minute "
                f"after a burst of {limits.burst:,} (budget_per_day={limits.per_day:,})"
            )
        spent = next(w.spent for w in self._windows if w.name == window)
        setting = f"budget_per_{window}={getattr(limits, f'per_{window}'):,}"
        if limits.processes > 1:
            setting += f" split over budget_processes={limits.processes}"
        span = "24 hours" if window == "day" else window
        return f"{spent:,} of {limits.share(window):,} requests used in the last {span} ({setting})"

    @staticmethod
    def _fix(window: str) -> str:
        if window == "hold":
            return "Another system may be spending the key: lower its use or this connection's budget_* extras"
        name = "budget_per_day" if window == "pace" else f"budget_per_{window}"
        return f"Raise {name} (or budget_max_wait) in the connection extras if the key has room"


_REGISTRY: dict[tuple[str, str, str], RequestBudget] = {}
_REGISTRY_LOCK = threading.Lock()
_default_clock: Clock | None = None


def budget_for(settings: ConnectionSettings) -> RequestBudget:
    """This process's budget of a connection, keyed by connection id, Base URL and a hash of the key (the key
    itself is never kept); a changed budget extra takes effect, what was spent is kept.

    :param settings: the connection's validated settings.
    """
    digest = hashlib.sha256(settings.api_key.encode()).hexdigest()[:16]
    key = (settings.conn_id, settings.base_url, digest)
    with _REGISTRY_LOCK:
        budget = _REGISTRY.get(key)
        if budget is None:
            budget = RequestBudget(settings.budget, connection_label(settings.conn_id), clock=_default_clock)
            _REGISTRY[key] = budget
    if budget.limits != settings.budget:
        budget.configure(settings.budget)
    return budget


def reset_budgets(clock: Clock | None = None) -> None:
    """Forget every connection's budget (tests); new budgets read time from ``clock`` (None: the real clock).

    :param clock: the clock of the budgets made from now on.
    """
    global _default_clock
    with _REGISTRY_LOCK:
        _REGISTRY.clear()
        _default_clock = clock
