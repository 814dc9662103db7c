"""Issue 24 item 3 (gates): the sensor backs off by default in poke and reschedule mode (Airflow asks
``_get_next_poke_interval`` after each check), hands the same schedule to the trigger, and refuses a ``max_wait``
that cannot work. Simulated durations, no sleeps."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_provider_debitura import gate
from airflow_provider_debitura.exceptions import DebituraConfigError
from airflow_provider_debitura.gate import GateProgress
from airflow_provider_debitura.sensors.debitura import DebituraCaseUnblockedSensor

try:
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 2
    from airflow.exceptions import TaskDeferred

CASE = "d5ba0833-fd38-506d-8521-5ec5ae679c33"


def sensor(**kwargs) -> DebituraCaseUnblockedSensor:
    kwargs.setdefault("task_id", "gate")
    kwargs.setdefault("case_id", CASE)
    kwargs.setdefault("poke_interval", 60)
    kwargs.setdefault("timeout", 7 * 86_400)
    return DebituraCaseUnblockedSensor(**kwargs)


def test_backoff_is_on_by_default_with_a_fifteen_minute_maximum():
    op = sensor()
    assert op.backoff is True and op.max_wait == timedelta(minutes=15) and not op.exponential_backoff
    assert sensor(max_wait=timedelta(minutes=5)).max_wait == timedelta(minutes=5)


@pytest.mark.parametrize(("blocked_for", "expected"), [(0, 60), (600, 60), (3000, 300), (9000, 900), (80_000, 900)])
def test_poke_mode_waits_a_tenth_of_the_time_blocked(blocked_for, expected):
    op = sensor()
    assert op._get_next_poke_interval(0.0, lambda: float(blocked_for), 1) == expected  # before the first note


def test_poke_mode_counts_from_the_current_blockers_and_reschedule_mode_from_the_first_try(monkeypatch):
    op = sensor()
    op._progress = GateProgress(CASE, since=1_000.0)
    monkeypatch.setattr("airflow_provider_debitura.sensors.debitura.time.time", lambda: 1_600.0)
    assert op._get_next_poke_interval(0.0, lambda: 50_000.0, 40) == 60.0  # the blockers changed 600 s ago
    rescheduled = sensor(mode="reschedule")
    rescheduled._progress = GateProgress(CASE, since=1_000.0)
    assert rescheduled._get_next_poke_interval(0.0, lambda: 50_000.0, 1) == 900.0  # a fresh process each try


def test_the_wait_never_runs_past_the_timeout_and_backoff_false_keeps_the_interval():
    assert sensor(timeout=10_000)._get_next_poke_interval(0.0, lambda: 9_700.0, 1) == 300.0
    assert sensor(backoff=False)._get_next_poke_interval(0.0, lambda: 50_000.0, 1) == 60.0


def test_airflows_exponential_backoff_replaces_it_and_is_capped_by_max_wait():
    op = sensor(exponential_backoff=True)
    assert op._get_next_poke_interval(0.0, lambda: 60.0, 12) == 900.0  # 60 * 2**10 without the cap


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_wait": 30}, r"max_wait=30 s is shorter than poke_interval=60 s.*max_wait >= 60"),
        ({"max_wait": timedelta(seconds=120), "poll_interval": 300}, "shorter than poll_interval=300 s"),
        ({"max_wait": 0}, "max_wait=0 must be a positive number of seconds"),
        ({"max_wait": -5}, "max_wait=-5 must be a positive number of seconds"),
        ({"backoff": "sometimes"}, "backoff"),
    ],
)
def test_a_backoff_that_cannot_work_is_refused_with_the_fix(kwargs, match):
    with pytest.raises(DebituraConfigError, match=match):
        sensor(**kwargs)


def test_a_short_max_wait_is_accepted_when_nothing_backs_off():
    assert sensor(max_wait=30, backoff=False).max_wait == timedelta(seconds=30)


def test_the_deferred_gate_gets_the_same_schedule(debitura_conn, case_ids):
    op = sensor(case_id=case_ids["INV-1002"], deferrable=True, max_wait=600, poll_interval=30)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    _, kwargs = trigger.serialize()
    assert kwargs["backoff"] is True and kwargs["max_wait"] == 600.0 and kwargs["poll_interval"] == 30.0
    assert kwargs["blocked_since"] == op._progress.since is not None  # counted from the sensor's first check
    assert gate.next_interval(30.0, 1, backoff=True, max_wait=600.0, blocked_for=6_000.0) == 600.0
