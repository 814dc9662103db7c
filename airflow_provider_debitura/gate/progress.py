"""What a gate remembers between checks, the XCom record it ends with, and when it checks next."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

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
    :param first_blockers: compact blockers of the first check that could tell, None until then.
    :param record_first: False when earlier checks were made but their blockers are lost (reschedule mode
        without a task state store): ``first_blockers`` then stays None.
    """

    case_id: str
    label: str | None = None
    checks: int = 0
    first_blockers: list[dict[str, Any]] | None = None
    record_first: bool = True
    solution_url: str | None = None
    _last_ids: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        return f"{self.label} ({self.case_id})" if self.label and self.label != self.case_id else self.case_id

    def note(self, verdict: GateVerdict, *, quiet_unchanged: bool = False) -> tuple[str, str]:
        """Count a check; return (level, message) for its log line ("warning", "info" or "debug").

        :param verdict: the check's verdict.
        :param quiet_unchanged: "debug" for a blocked verdict identical to the last one.
        """
        self.checks += 1
        if self.label is None and verdict.case_reference:
            self.label = verdict.case_reference
        if verdict.state in (GateState.BLOCKED, GateState.UNBLOCKED):
            if self.first_blockers is None and self.record_first:
                self.first_blockers = verdict.blockers()
            self.solution_url = verdict.first_solution_url or self.solution_url
        if verdict.state in (GateState.UNKNOWN, GateState.FAILED):
            return "warning", f"Case {self.name}, check {self.checks}: {verdict.summary()}"
        ids = verdict.ids
        changed, self._last_ids = ids != self._last_ids, ids
        if quiet_unchanged and not changed and verdict.state is GateState.BLOCKED:
            # No summary built: 1,000 gates re-listing 100 blockers each round would cost the loop ~30 ms.
            return "debug", f"Case {self.name}, check {self.checks}: still blocked (unchanged)"
        return "info", f"Case {self.name}, check {self.checks}: {verdict.summary()}"

    def record(self) -> dict[str, Any]:
        return success_record(self.case_id, self.checks, self.first_blockers)


def next_interval(
    base: float, checks: int, *, exponential_backoff: bool = False, max_wait: float | None = None, seed: str = ""
) -> float:
    """Seconds until the next check: ``base``, or with ``exponential_backoff`` Airflow's own sensor
    progression (after check n, between base·2^(n-2) and twice that, jittered by ``seed``), capped by
    ``max_wait``.

    :param base: the poke or poll interval.
    :param checks: checks made so far.
    :param exponential_backoff: grow the interval after each check.
    :param max_wait: the longest interval, None for no cap.
    :param seed: makes the jitter differ between gates and stay stable across restarts.
    """
    if not exponential_backoff:
        return base
    low = base * 2.0 ** (max(checks, 1) - 2)
    digest = int(hashlib.sha1(f"{seed}#{checks}".encode(), usedforsecurity=False).hexdigest()[:8], 16)
    interval = low + low * (digest % 1000) / 1000
    return min(interval, max_wait) if max_wait else interval
