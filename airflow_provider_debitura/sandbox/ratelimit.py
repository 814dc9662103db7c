"""Per-key rate limits over Debitura's three windows, and the spend report (not thread-safe: the store locks).

Debitura counts requests per API key over a sliding minute, a fixed clock hour and a day (one version of its
docs: resets at midnight UTC; another: a rolling 24 hours anchored to the first request); breaking any one
gives 429 with ``retryAfter``. Every window is counted for every key whether or not it is enforced, so the
report shows what a run spent; only windows with a size refuse. Refused requests count in no window. See
``docs/sandbox-rate-limits.md``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

WINDOWS = ("minute", "hour", "day")
WINDOW_SECONDS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}
#: How the day window resets: at midnight UTC, 24 h after the first request of a window, or sliding 24 h.
DayReset = Literal["midnight-utc", "rolling", "sliding"]
DAY_RESETS: tuple[str, ...] = get_args(DayReset)
_DAY_RULES = {"midnight-utc": "fixed", "rolling": "anchored", "sliding": "sliding"}
_RULE_TEXT = {
    ("minute", "sliding"): "per sliding minute",
    ("hour", "fixed"): "per clock hour",
    ("day", "fixed"): "per UTC day (resets at midnight UTC)",
    ("day", "anchored"): "per 24 hours from the first request",
    ("day", "sliding"): "per sliding 24 hours",
}


@dataclass(frozen=True)
class Limits:
    """The enforced window sizes (None: counted, not enforced) and the day's reset rule.

    :param minute: requests per sliding minute.
    :param hour: requests per clock hour.
    :param day: requests per day.
    :param day_reset: one of :data:`DAY_RESETS`.
    """

    minute: int | None = None
    hour: int | None = None
    day: int | None = None
    day_reset: str = "midnight-utc"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Limits:
        """The limits in the sandbox's settings (``GET /_sandbox/config``).

        :param config: the effective settings.
        """
        return cls(
            config["rateLimitPerMinute"], config["rateLimitPerHour"], config["rateLimitPerDay"],
            config["rateLimitDayReset"],
        )  # fmt: skip

    def size(self, window: str) -> int | None:
        """A window's size.

        :param window: ``minute``, ``hour`` or ``day``.
        """
        value: int | None = getattr(self, window)
        return value

    def rule(self, window: str) -> str:
        """How a window counts: ``sliding``, ``fixed`` (aligned to the clock hour or UTC day) or ``anchored``.

        :param window: ``minute``, ``hour`` or ``day``.
        """
        return {"minute": "sliding", "hour": "fixed"}.get(window) or _DAY_RULES[self.day_reset]

    def to_dict(self) -> dict[str, Any]:
        """The windows as the report shows them."""
        return {
            w: {"limit": self.size(w), "seconds": WINDOW_SECONDS[w], "rule": self.rule(w)}
            | ({"reset": self.day_reset} if w == "day" else {})
            for w in WINDOWS
        }


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: the window that admits last, and when it will.

    :param window: ``minute``, ``hour`` or ``day``.
    :param limit: that window's size.
    :param retry_after: seconds until every window admits the request.
    :param rule: how the window counts (see :meth:`Limits.rule`).
    """

    window: str
    limit: int
    retry_after: float
    rule: str

    def describe(self) -> str:
        """E.g. ``hour window: 200 requests per clock hour``."""
        return f"{self.window} window: {self.limit} requests {_RULE_TEXT[(self.window, self.rule)]}"


class _Tracker(Protocol):
    def used(self, now: float) -> int: ...

    def wait(self, limit: int, now: float) -> float | None: ...

    def add(self, now: float) -> None: ...


class _Sliding:
    """Request times over the last ``seconds``, as ``[time, count]`` runs (equal times share a run)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._runs: deque[list[float]] = deque()
        self._count = 0

    def used(self, now: float) -> int:
        edge = now - self.seconds
        while self._runs and self._runs[0][0] <= edge:
            self._count -= int(self._runs.popleft()[1])
        return self._count

    def wait(self, limit: int, now: float) -> float | None:
        excess = self.used(now) - limit  # this many requests, plus one, must leave the window
        if excess < 0:
            return None
        for when, count in self._runs:
            excess -= int(count)
            if excess < 0:
                return when + self.seconds - now
        raise AssertionError("unreachable: the runs add up to the count")  # pragma: no cover

    def add(self, now: float) -> None:
        if self._runs and self._runs[-1][0] == now:
            self._runs[-1][1] += 1
        else:
            self._runs.append([now, 1.0])
        self._count += 1


class _Fixed:
    """A count per window aligned to the epoch: the clock hour, the UTC day."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._start = -math.inf
        self._count = 0

    def used(self, now: float) -> int:
        start = math.floor(now / self.seconds) * self.seconds
        if start != self._start:
            self._start, self._count = start, 0
        return self._count

    def wait(self, limit: int, now: float) -> float | None:
        return None if self.used(now) < limit else self._start + self.seconds - now

    def add(self, now: float) -> None:
        self.used(now)
        self._count += 1


class _Anchored:
    """A window that opens at the first request after the previous one ended and lasts ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._start: float | None = None
        self._count = 0

    def used(self, now: float) -> int:
        if self._start is None or now >= self._start + self.seconds:
            self._start, self._count = None, 0
        return self._count

    def wait(self, limit: int, now: float) -> float | None:
        if self.used(now) < limit or self._start is None:
            return None
        return self._start + self.seconds - now

    def add(self, now: float) -> None:
        if self.used(now) == 0:
            self._start = now
        self._count += 1


def _tracker(rule: str, seconds: float) -> _Tracker:
    kinds: dict[str, type[_Sliding] | type[_Fixed] | type[_Anchored]] = {
        "sliding": _Sliding, "fixed": _Fixed, "anchored": _Anchored
    }  # fmt: skip
    return kinds[rule](seconds)


class _KeySpend:
    """One key's windows, peaks and refusals."""

    def __init__(self) -> None:
        self.requests = 0
        self.refused = 0
        self.peak = dict.fromkeys(WINDOWS, 0)
        self.refused_by = dict.fromkeys(WINDOWS, 0)
        self._trackers: dict[str, _Tracker] = {"minute": _Sliding(60.0), "hour": _Fixed(3600.0)}
        self._day_reset: str | None = None

    def tracker(self, window: str, limits: Limits) -> _Tracker:
        if window == "day" and self._day_reset != limits.day_reset:  # a new rule starts the day afresh
            self._trackers["day"] = _tracker(limits.rule("day"), WINDOW_SECONDS["day"])
            self._day_reset = limits.day_reset
        return self._trackers[window]

    def refusal(self, limits: Limits, now: float) -> Refusal | None:
        worst: Refusal | None = None
        for window in WINDOWS:
            size = limits.size(window)
            wait = None if size is None else self.tracker(window, limits).wait(size, now)
            if size is not None and wait is not None and (worst is None or wait > worst.retry_after):
                worst = Refusal(window, size, wait, limits.rule(window))
        return worst

    def admit(self, limits: Limits, now: float) -> None:
        self.requests += 1
        for window in WINDOWS:
            tracker = self.tracker(window, limits)
            tracker.add(now)
            self.peak[window] = max(self.peak[window], tracker.used(now))

    def view(self, limits: Limits, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {"requests": self.requests, "refused": self.refused}
        for window in WINDOWS:
            size, tracker = limits.size(window), self.tracker(window, limits)
            wait = None if size is None else tracker.wait(size, now)
            out[window] = {
                "limit": size,
                "used": tracker.used(now),
                "peak": self.peak[window],
                "refused": self.refused_by[window],
                "retryAfter": None if wait is None else round(wait, 3),
            }
        return out


class RateLimiter:
    """Every presented key's windows (no parameters); keys are never shown, only labels."""

    def __init__(self) -> None:
        self._keys: dict[str | None, _KeySpend] = {}

    def check(self, key: str | None, limits: Limits, now: float) -> Refusal | None:
        """Count one request for ``key`` if every enforced window admits it; else why not (counted as refused).

        :param key: the presented API key, None when none was sent.
        :param limits: the window sizes and day rule.
        :param now: sandbox wall time, epoch seconds (never decreasing).
        """
        spend = self._keys.get(key)
        if spend is None:
            spend = self._keys[key] = _KeySpend()
        refusal = spend.refusal(limits, now)
        if refusal is None:
            spend.admit(limits, now)
        else:
            spend.refused += 1
            spend.refused_by[refusal.window] += 1
        return refusal

    def report(self, limits: Limits, now: float, configured: str) -> dict[str, Any]:
        """The spend report: windows, and per key label its requests, refusals and per-window use and peaks.

        Labels: ``configured`` (the sandbox's key, always listed), ``anonymous`` (no key sent), ``other-N``
        (other keys, in order of first use).

        :param limits: the window sizes and day rule.
        :param now: sandbox wall time, epoch seconds.
        :param configured: the sandbox's API key.
        """
        keys: dict[str, Any] = {"configured": _KeySpend().view(limits, now)}
        others = 0
        for key, spend in self._keys.items():
            if key == configured:
                label = "configured"
            elif key is None:
                label = "anonymous"
            else:
                others += 1
                label = f"other-{others}"
            keys[label] = spend.view(limits, now)
        return {"windows": limits.to_dict(), "keys": keys}

    def clear(self) -> None:
        """Forget every key's windows, peaks and refusals."""
        self._keys.clear()
