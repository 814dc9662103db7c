"""Issue 24 item 3 (gates): a gate blocked for hours backs off by default, to at most ``max_wait``; the schedule
is one function (``gate.backoff_interval``), checked here with a simulated clock (no sleeps)."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timezone

import pytest

from airflow_provider_debitura import gate
from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.gate import GateProgress, GateState, GateVerdict, read_records

CASE = "d5ba0833-fd38-506d-8521-5ec5ae679c33"
DAY = 86_400.0


def blocked_by(*ids: str) -> GateVerdict:
    records = [
        {
            "id": i,
            "type": "ReplyToChat",
            "status": "Open",
            "caseId": CASE,
            "dateCreated": datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat(),
        }
        for i in ids
    ]
    return GateVerdict(GateState.BLOCKED, read_records(records).open)


def day_of_checks(base: float, max_wait: float = gate.DEFAULT_MAX_WAIT, horizon: float = DAY) -> list[float]:
    """The intervals of one gate blocked by the same task for ``horizon`` seconds (simulated clock)."""
    progress, now, intervals = GateProgress(CASE), 0.0, []
    verdict = blocked_by("a")
    while now < horizon:
        progress.note(verdict, now=now)
        interval = gate.next_interval(base, progress.checks, backoff=True, max_wait=max_wait,
                                      blocked_for=progress.blocked_for(now))  # fmt: skip
        intervals.append(interval)
        now += interval
    return intervals


def test_the_schedule_keeps_the_interval_for_ten_intervals_then_grows_by_a_tenth_to_the_cap():
    intervals = day_of_checks(60.0)
    assert intervals[:10] == [60.0] * 10  # blocked for less than 10 minutes: every minute, as before
    growing = intervals[10:40]
    assert all(b >= a for a, b in itertools.pairwise(growing))
    assert intervals[12] == pytest.approx(1.1 * intervals[11])  # each wait a tenth of the time blocked so far
    assert max(intervals) == gate.DEFAULT_MAX_WAIT == 900.0 and intervals[-1] == 900.0
    first_capped = intervals.index(900.0)
    assert sum(intervals[:first_capped]) == pytest.approx(9000, rel=0.1)  # the cap is reached after 2.5 h


def test_the_cost_of_a_day_blocked_matches_the_documented_formula():
    base, share, cap = 60.0, gate.BACKOFF_SHARE, gate.DEFAULT_MAX_WAIT
    formula = 1 / share + math.log(cap / base) / math.log(1 + share) + (DAY - cap / share) / cap  # docs/gate-backoff.md
    checks = len(day_of_checks(base))
    assert formula == pytest.approx(124.4, abs=0.1)
    assert abs(checks - formula) <= 2  # 125 checks a day instead of 1,440
    assert len(day_of_checks(base, max_wait=base)) == 1440  # max_wait = interval: no backoff
    assert len(day_of_checks(10.0)) == 144  # a 10 s gate: 144 instead of 8,640


def test_a_change_of_blockers_starts_the_schedule_again_and_doubt_does_not():
    progress = GateProgress(CASE)
    progress.note(blocked_by("a"), now=0.0)
    progress.note(gate.unknown("HTTP 503"), now=5000.0)  # doubt is not news
    assert progress.blocked_for(6000.0) == 6000.0
    progress.note(blocked_by("a"), now=6000.0)
    assert progress.since == 0.0
    progress.note(blocked_by("b"), now=7000.0)  # somebody solved a, b appeared: check often again
    assert progress.since == 7000.0
    assert gate.backoff_interval(60.0, progress.blocked_for(7000.0)) == 60.0
    resumed = GateProgress(CASE, checks=1, since=100.0)  # the trigger after the sensor's first check
    resumed.note(blocked_by("a"), now=4000.0)
    assert resumed.since == 100.0


def test_airflows_exponential_backoff_is_capped_by_the_same_maximum():
    intervals = [gate.next_interval(60.0, n, exponential_backoff=True, seed=CASE) for n in range(1, 12)]
    assert intervals[0] >= 30 and max(intervals) == gate.DEFAULT_MAX_WAIT
    assert gate.next_interval(60.0, 5) == 60.0  # neither: fixed


@pytest.mark.parametrize(
    ("interval", "max_wait", "match"),
    [(60.0, 30.0, "max_wait=30 s is shorter than poll_interval=60 s"), (60.0, 0.0, "max_wait=0.0 must be a positive")],
)
def test_a_max_wait_that_cannot_work_is_refused_with_the_fix(interval, max_wait, match):
    with pytest.raises(DebituraConfigError, match=match):
        gate.progress.check_backoff(interval, max_wait, "poll_interval")
