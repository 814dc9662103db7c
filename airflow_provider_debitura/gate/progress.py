"""What a gate remembers between checks, the XCom record it ends with, and when it checks next."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.gate.records import PackedTask, task_dict
from airflow_provider_debitura.gate.verdict import GateState, GateVerdict


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def success_record(
    case_id: str, checks: int, first_blockers: Sequence[Mapping[str, Any]] | None, unblocked_at: str | None = None
) -> dict[str, Any]:
    """The sensor's XCom, identical in every mode (poke, reschedule, deferred)."""
    return {
        "case_id": case_id,
        "unblocked_at": unblocked_at or utc_now_iso(),
        "checks": int(checks),
        # None (not []) when the first check's blockers could not be established.
        "blocked_by_on_first_check": None if first_blockers is None else [dict(t) for t in first_blockers],
    }


@dataclass(slots=True)
class GateProgress:
    """What a gate remembers between checks: the count, the first check's blockers, its case's name.

    :param case_id: the case GUID.
    :param label: the case's reference for log lines (None until known).
    :param checks: checks already made (e.g. by the sensor before it deferred).
    :param first: the first check's blockers, when an earlier check found them (as :attr:`first_blockers` gave
        them), None until then.
    :param record_first: False when earlier checks were made but their blockers are lost (reschedule mode
        without a task state store): ``first_blockers`` then stays None.
    """

    case_id: str
    label: str | None = None
    checks: int = 0
    first: Sequence[Mapping[str, Any]] | tuple[PackedTask, ...] | None = None
    """The first check's blockers: as given, or the verdict's own packed tasks (a thousand gates blocked by the
    same thousand account-level tasks share them; as dicts, one per blocker and gate, they held some 200 MB)."""
    record_first: bool = True
    solution_url: str | None = None
    since: float | None = None
    """Wall-clock time of the first check of the gate's current state: its first check, or the check that saw
    the blockers change (the backoff starts again from the poke interval then)."""
    _last_ids: tuple[str, ...] | None = None

    @property
    def first_blockers(self) -> list[dict[str, Any]] | None:
        """The first check's blockers as the XCom record shows them (compact dicts), None until known."""
        if self.first is None:
            return None
        return [dict(t) if isinstance(t, Mapping) else task_dict(t) for t in self.first]

    @property
    def name(self) -> str:
        return f"{self.label} ({self.case_id})" if self.label and self.label != self.case_id else self.case_id

    def blocked_for(self, now: float) -> float:
        """Seconds the gate has been in its current state (0 before its first check).

        :param now: the wall-clock time.
        """
        return 0.0 if self.since is None else max(0.0, now - self.since)

    def note(self, verdict: GateVerdict, *, quiet_unchanged: bool = False, now: float | None = None) -> tuple[str, str]:
        """Count a check; return (level, message) for its log line ("warning", "info" or "debug").

        :param verdict: the check's verdict.
        :param quiet_unchanged: "debug" for a blocked verdict identical to the last one.
        :param now: the check's wall-clock time (default: now).
        """
        now = time.time() if now is None else now
        self.checks += 1
        if self.since is None:
            self.since = now
        if self.label is None and verdict.case_reference:
            self.label = verdict.case_reference
        if verdict.state in (GateState.BLOCKED, GateState.UNBLOCKED):
            if self.first is None and self.record_first:
                self.first = verdict.blocking
            self.solution_url = verdict.first_solution_url or self.solution_url
        if verdict.state in (GateState.UNKNOWN, GateState.FAILED):
            return "warning", f"Case {self.name}, check {self.checks}: {verdict.summary()}"
        ids = verdict.ids
        changed = ids != self._last_ids
        if changed and self._last_ids is not None and verdict.state is GateState.BLOCKED:
            self.since = now  # the blockers changed: somebody is at work on the case; check often again
        self._last_ids = ids
        if quiet_unchanged and not changed and verdict.state is GateState.BLOCKED:
            # No summary built: 1,000 gates re-listing 100 blockers each round would cost the loop ~30 ms.
            return "debug", f"Case {self.name}, check {self.checks}: still blocked (unchanged)"
        return "info", f"Case {self.name}, check {self.checks}: {verdict.summary()}"

    def record(self) -> dict[str, Any]:
        return success_record(self.case_id, self.checks, self.first_blockers)


DEFAULT_MAX_WAIT = 900.0
"""The longest interval between two checks of a gate that backs off (``max_wait``'s default): 15 minutes."""

BACKOFF_SHARE = 0.1
"""A gate that backs off waits this share of the time it has been blocked (never less than its interval)."""


def backoff_interval(base: float, blocked_for: float, max_wait: float = DEFAULT_MAX_WAIT) -> float:
    """Seconds until the next check of a gate blocked for ``blocked_for`` seconds: ``base`` until it has been
    blocked for ``base / BACKOFF_SHARE`` (10 intervals), then a tenth of the time blocked (each interval 1.1
    times the last), at most ``max_wait``. A gate opens at most that much later than its blocker clears.

    :param base: the poke or poll interval.
    :param blocked_for: seconds since the gate's state last changed (:meth:`GateProgress.blocked_for`).
    :param max_wait: the longest interval.
    """
    return max(base, min(max_wait, BACKOFF_SHARE * max(0.0, blocked_for)))


def aligned_wait(now: float, interval: float, base: float, max_wait: float = DEFAULT_MAX_WAIT) -> float:
    """The wait for a gate on the shared poll: its due time moved earlier onto the wall-clock grid of its level
    (``max_wait`` once capped, else the largest ``base``·2^k within the interval), so that gates blocked since
    different times are due at the same instants and one read of the queue serves them all; never longer than
    ``interval``, so never past ``max_wait``.

    :param now: the wall-clock time (epoch seconds).
    :param interval: the gate's interval (:func:`next_interval`).
    :param base: the poll interval.
    :param max_wait: the longest interval.
    """
    level = base * 2.0 ** math.floor(math.log2(max(interval / base, 1.0)))
    grid = max_wait if interval >= max_wait else level
    due = math.floor((now + interval) / grid) * grid
    return max(0.0, min(interval, due - now))


def next_interval(
    base: float,
    checks: int,
    *,
    exponential_backoff: bool = False,
    max_wait: float | None = None,
    seed: str = "",
    backoff: bool = False,
    blocked_for: float = 0.0,
) -> float:
    """Seconds until the next check: with ``backoff``, :func:`backoff_interval`; with ``exponential_backoff``,
    Airflow's own sensor progression instead (after check n, between base·2^(n-2) and twice that, jittered by
    ``seed``); else ``base``. Both are capped by ``max_wait`` (None: :data:`DEFAULT_MAX_WAIT`).

    :param base: the poke or poll interval.
    :param checks: checks made so far.
    :param exponential_backoff: Airflow's doubling after each check.
    :param max_wait: the longest interval.
    :param seed: makes the jitter differ between gates and stay stable across restarts.
    :param backoff: grow the interval with the time blocked.
    :param blocked_for: seconds since the gate's state last changed.
    """
    cap = DEFAULT_MAX_WAIT if max_wait is None else max_wait
    if exponential_backoff:
        low = base * 2.0 ** (max(checks, 1) - 2)
        digest = int(hashlib.sha1(f"{seed}#{checks}".encode(), usedforsecurity=False).hexdigest()[:8], 16)
        return min(low + low * (digest % 1000) / 1000, max(cap, base))
    if backoff:
        return backoff_interval(base, blocked_for, cap)
    return base


def check_backoff(interval: float, max_wait: float | None, interval_name: str = "poke_interval") -> None:
    """Refuse a ``max_wait`` that is not a positive number of seconds at least as long as the interval.

    :param interval: the poke or poll interval, in seconds.
    :param max_wait: the longest interval, in seconds (None: :data:`DEFAULT_MAX_WAIT`).
    :param interval_name: the interval's parameter name, for the error.
    """
    if max_wait is None:
        return
    if not max_wait > 0:
        raise DebituraConfigError(
            f"max_wait={max_wait!r} must be a positive number of seconds (the longest wait between two checks of a "
            f"gate that backs off); the default is {DEFAULT_MAX_WAIT:g}."
        )
    if max_wait < interval:
        raise DebituraConfigError(
            f"max_wait={max_wait:g} s is shorter than {interval_name}={interval:g} s: a gate never waits less than "
            f"its interval. Give max_wait >= {interval:g} (e.g. the default {DEFAULT_MAX_WAIT:g}), or a shorter "
            f"{interval_name}; backoff=False keeps the interval fixed."
        )
