"""The sandbox's three rate-limit windows per key, its movable clock and its spend report (issue 24, item 1).

Every test freezes the sandbox clock at a UTC midnight ahead of the real one and moves it by exact (binary)
amounts, so each window's edge and each ``retryAfter`` is asserted exactly; requests go over real HTTP.
"""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from helpers.rate_windows import (
    advance_clock,
    clear_spend,
    clock,
    freeze_clock,
    midnight_ahead,
    rate_report,
    set_clock_speed,
    set_rate_windows,
    spend,
)
from helpers.sandbox import clear_counters, counters
from helpers.waiting import wait_until

from airflow_provider_debitura.sandbox import SandboxServer
from airflow_provider_debitura.sandbox.cli import _check_args, _rate_settings, build_parser
from airflow_provider_debitura.sandbox.clock import SandboxClock

HOUR = 3600.0


def _statuses(api: httpx.Client, n: int, headers: dict[str, str] | None = None) -> list[int]:
    return [api.get("/me", headers=headers).status_code for _ in range(n)]


def _refused(api: httpx.Client, window: str) -> float:
    """One request that must be refused by ``window``: its ``retryAfter``."""
    r = api.get("/me")
    body = r.json()
    assert r.status_code == 429, r.text
    assert set(body) == {"error", "message", "retryAfter"} and body["error"] == "rate_limit_exceeded"
    assert f"({window} window: " in body["message"], body["message"]
    return float(body["retryAfter"])


def test_minute_window_slides(sb: SandboxServer, api: httpx.Client) -> None:
    freeze_clock(sb, midnight_ahead(sb) + timedelta(hours=10))
    set_rate_windows(sb, minute=5)
    assert _statuses(api, 3) == [200] * 3
    advance_clock(sb, 30)
    assert _statuses(api, 2) == [200] * 2
    assert _refused(api, "minute") == 30.0  # the first three leave the window 60 s after they came
    advance_clock(sb, 29.75)
    assert _refused(api, "minute") == 0.25
    advance_clock(sb, 0.25)
    assert _statuses(api, 3) == [200] * 3  # exactly 60 s on: the first three have left, three more fit
    assert _refused(api, "minute") == 30.0
    used = spend(sb)
    assert (used["requests"], used["refused"]) == (8, 3)
    assert used["minute"] == {"limit": 5, "used": 5, "peak": 5, "refused": 3, "retryAfter": 30.0}


def test_hour_window_is_fixed_on_the_clock_hour(sb: SandboxServer, api: httpx.Client) -> None:
    freeze_clock(sb, midnight_ahead(sb) + timedelta(hours=7, minutes=30))
    set_rate_windows(sb, minute=100, hour=6)
    assert _statuses(api, 6) == [200] * 6
    retry = _refused(api, "hour")
    assert retry == 1800.0  # 07:30 -> 08:00, not 60 minutes after the first request
    advance_clock(sb, 1799.5)
    assert _refused(api, "hour") == 0.5
    advance_clock(sb, 0.5)
    assert _statuses(api, 6) == [200] * 6  # 08:00:00: a new hour, a whole new window
    assert _refused(api, "hour") == HOUR
    hour = spend(sb)["hour"]
    assert hour == {"limit": 6, "used": 6, "peak": 6, "refused": 3, "retryAfter": HOUR}


def test_day_window_resets_at_midnight_utc(sb: SandboxServer, api: httpx.Client) -> None:
    midnight = midnight_ahead(sb, days=2)
    freeze_clock(sb, midnight - timedelta(hours=23))  # 01:00 of the day before
    set_rate_windows(sb, day=4, day_reset="midnight-utc")
    assert _statuses(api, 2) == [200] * 2
    advance_clock(sb, 22 * HOUR)  # 23:00
    assert _statuses(api, 2) == [200] * 2
    assert _refused(api, "day") == HOUR
    advance_clock(sb, HOUR - 0.125)
    assert _refused(api, "day") == 0.125
    advance_clock(sb, 0.125)
    assert clock(sb)["epochSeconds"] == midnight.timestamp()
    assert _statuses(api, 4) == [200] * 4
    assert _refused(api, "day") == 86400.0
    assert spend(sb)["day"] == {"limit": 4, "used": 4, "peak": 4, "refused": 3, "retryAfter": 86400.0}


def test_day_window_rolling_opens_at_the_first_request(sb: SandboxServer, api: httpx.Client) -> None:
    freeze_clock(sb, midnight_ahead(sb) + timedelta(hours=10))
    set_rate_windows(sb, day=3, day_reset="rolling")
    assert _statuses(api, 1) == [200]  # 10:00 opens the window until 10:00 tomorrow
    advance_clock(sb, 20 * HOUR)  # 06:00 tomorrow: midnight did not reset it
    assert _statuses(api, 2) == [200] * 2
    assert _refused(api, "day") == 4 * HOUR
    advance_clock(sb, 4 * HOUR)  # 10:00: the window is over, the next request opens another
    assert _statuses(api, 3) == [200] * 3
    assert _refused(api, "day") == 86400.0
    day = spend(sb)["day"]
    assert (day["used"], day["peak"], day["refused"]) == (3, 3, 2)


def test_day_window_sliding_lets_each_request_leave_24_hours_later(sb: SandboxServer, api: httpx.Client) -> None:
    freeze_clock(sb, midnight_ahead(sb) + timedelta(hours=10))
    set_rate_windows(sb, day=3, day_reset="sliding")
    assert _statuses(api, 1) == [200]
    advance_clock(sb, 12 * HOUR)
    assert _statuses(api, 2) == [200] * 2
    assert _refused(api, "day") == 12 * HOUR
    advance_clock(sb, 12 * HOUR)  # only the first has left
    assert _statuses(api, 2) == [200, 429]
    assert _refused(api, "day") == 12 * HOUR


def test_the_window_that_opens_last_is_named_and_its_wait_given(sb: SandboxServer, api: httpx.Client) -> None:
    freeze_clock(sb, midnight_ahead(sb) + timedelta(hours=9, minutes=10))
    set_rate_windows(sb, minute=5, hour=5, day=100)
    assert _statuses(api, 5) == [200] * 5
    assert _refused(api, "hour") == 50 * 60.0  # the minute would admit in 60 s, the hour only at 10:00
    advance_clock(sb, 49 * 60 + 30)  # 09:59:30, the hour is still spent
    assert _refused(api, "hour") == 30.0
    advance_clock(sb, 30)
    assert _statuses(api, 5) == [200] * 5  # 10:00
    sb.control("PUT", "/_sandbox/config", json={"rateLimitPerHour": 50, "retryAfterHeader": True})
    r = api.get("/me")
    assert r.status_code == 429 and r.json()["retryAfter"] == 60.0 and r.headers["Retry-After"] == "60"
    used = spend(sb)
    assert {w: used[w]["refused"] for w in ("minute", "hour", "day")} == {"minute": 1, "hour": 2, "day": 0}
    assert used["refused"] == 3 and used["requests"] == 10


def test_report_counts_every_key_apart_and_names_none(sb: SandboxServer, api: httpx.Client, anon: httpx.Client) -> None:
    freeze_clock(sb, midnight_ahead(sb) + timedelta(hours=12))
    set_rate_windows(sb, minute=2)
    wrong = {"XApiKey": "a-real-production-key-sent-by-mistake"}
    assert _statuses(api, 3) == [200, 200, 429]
    assert _statuses(anon, 3) == [401, 401, 429]  # the shared bucket of requests without a key
    assert _statuses(api, 2, headers=wrong) == [401, 401]
    report = rate_report(sb)
    assert set(report["keys"]) == {"configured", "anonymous", "other-1"}
    assert sb.api_key not in str(report) and wrong["XApiKey"] not in str(report)
    counts = {label: (k["requests"], k["refused"], k["minute"]["used"]) for label, k in report["keys"].items()}
    assert counts == {"configured": (2, 1, 2), "anonymous": (2, 1, 2), "other-1": (2, 0, 2)}
    assert report["windows"]["minute"] == {"limit": 2, "seconds": 60.0, "rule": "sliding"}
    assert report["windows"]["day"] == {"limit": None, "seconds": 86400.0, "rule": "fixed", "reset": "midnight-utc"}
    clear_spend(sb)
    assert spend(sb)["requests"] == 0 and sb.control("GET", "/_sandbox/config").json()["rateLimitPerMinute"] == 2


def test_windows_are_counted_when_not_enforced(sb: SandboxServer, api: httpx.Client) -> None:
    freeze_clock(sb, midnight_ahead(sb) + timedelta(hours=23, minutes=59))
    assert _statuses(api, 3) == [200] * 3
    advance_clock(sb, 60)  # midnight: a new minute, hour and day
    assert _statuses(api, 2) == [200] * 2
    used = spend(sb)
    assert {w: (used[w]["used"], used[w]["peak"], used[w]["limit"]) for w in ("minute", "hour", "day")} == {
        "minute": (2, 3, None),
        "hour": (2, 3, None),
        "day": (2, 3, None),
    }


def test_simulated_day_of_rounds_within_every_window(sb: SandboxServer, api: httpx.Client) -> None:
    """A poller's day on scaled windows (20/min, 200/h, 600/day): 96 rounds of 6 requests over HTTP, one every
    15 simulated minutes; the report shows the day's spend, its peaks and no 429."""
    midnight = midnight_ahead(sb)
    freeze_clock(sb, midnight)
    set_rate_windows(sb, minute=20, hour=200, day=600)
    clear_counters(sb)
    for _ in range(96):
        assert _statuses(api, 6) == [200] * 6
        advance_clock(sb, 15 * 60)
    assert clock(sb)["epochSeconds"] == midnight.timestamp() + 86400.0
    assert counters(sb)["total"] == 576
    day = spend(sb)
    assert (day["requests"], day["refused"]) == (576, 0)
    assert {w: (day[w]["peak"], day[w]["refused"]) for w in ("minute", "hour", "day")} == {
        "minute": (6, 0), "hour": (24, 0), "day": (576, 0)
    }  # fmt: skip
    assert day["day"]["used"] == 0  # the simulated day is over: a new UTC day began


def test_scaled_day_limit_refuses_until_midnight(sb: SandboxServer, api: httpx.Client) -> None:
    midnight = midnight_ahead(sb, days=2)  # the coming midnight minus 3 h is past after 21:00 UTC
    freeze_clock(sb, midnight - timedelta(hours=3))
    set_rate_windows(sb, minute=20, hour=200, day=50)
    assert _statuses(api, 20) == [200] * 20  # 21:00
    advance_clock(sb, 60)
    assert _statuses(api, 20) == [200] * 20  # 21:01
    advance_clock(sb, 60)
    assert _statuses(api, 10) == [200] * 10  # 21:02: the day's 50 are spent
    assert _refused(api, "day") == 3 * HOUR - 120.0
    advance_clock(sb, 3 * HOUR - 120.0)
    assert _statuses(api, 1) == [200]
    used = spend(sb)
    assert (used["day"]["peak"], used["day"]["used"], used["day"]["refused"], used["requests"]) == (50, 1, 1, 51)


def test_clock_is_real_time_until_moved_and_reset_restores_it(sb: SandboxServer) -> None:
    view = clock(sb)
    assert view["speed"] == 1.0 and view["frozen"] is False
    assert abs(view["epochSeconds"] - time.time()) < 5
    frozen = freeze_clock(sb)
    assert clock(sb)["epochSeconds"] == frozen["epochSeconds"]
    assert advance_clock(sb, 90.5)["epochSeconds"] == frozen["epochSeconds"] + 90.5
    start = set_clock_speed(sb, 86400)["epochSeconds"]  # a day per real second
    wait_until(lambda: clock(sb)["epochSeconds"] >= start + HOUR, timeout=10, what="an hour in 1/24 s", interval=0.01)
    sb.reset("demo")
    assert clock(sb)["speed"] == 1.0 and abs(clock(sb)["epochSeconds"] - time.time()) < 5


def test_clock_drives_the_request_log_and_timed_solves(sb: SandboxServer, api: httpx.Client) -> None:
    at = midnight_ahead(sb, days=3)
    freeze_clock(sb, at)
    api.get("/me")
    assert sb.control("GET", "/_sandbox/requests").json()[-1]["time"].startswith(at.strftime("%Y-%m-%dT00:00:00"))
    task = next(t for t in sb.state.list_tasks("Open") if t["type"] == "ReviewPartner")
    sb.control("POST", f"/_sandbox/tasks/{task['id']}/solve", json={"afterSeconds": 600})
    advance_clock(sb, 600)
    assert sb.state.task(task["id"])["dateSolved"].startswith(at.strftime("%Y-%m-%dT00:10:00"))


@pytest.mark.parametrize(
    ("path", "method", "body", "names"),
    [
        ("/_sandbox/clock", "PUT", {"speed": -1}, "speed"),
        ("/_sandbox/clock", "PUT", {"speed": "fast"}, "speed"),
        ("/_sandbox/clock", "PUT", {"wallTime": "yesterday"}, "wallTime"),
        ("/_sandbox/clock", "PUT", {"wallTime": "2001-01-01T00:00:00Z"}, "only moves forward"),
        ("/_sandbox/clock", "PUT", {"tick": 1}, "allowed: ['speed', 'wallTime']"),
        ("/_sandbox/clock", "PUT", {}, "speed"),
        ("/_sandbox/clock/advance", "POST", {"seconds": -1}, "seconds"),
        ("/_sandbox/clock/advance", "POST", {"seconds": "1h"}, "seconds"),
        ("/_sandbox/config", "PUT", {"rateLimitPerHour": 0}, "rateLimitPerHour"),
        ("/_sandbox/config", "PUT", {"rateLimitPerDay": 1.5}, "rateLimitPerDay"),
        ("/_sandbox/config", "PUT", {"rateLimitDayReset": "weekly"}, "rateLimitDayReset"),
    ],
)
def test_bad_clock_and_window_settings_are_refused(
    sb: SandboxServer, path: str, method: str, body: dict[str, object], names: str
) -> None:
    before = clock(sb)["speed"], sb.control("GET", "/_sandbox/config").json()
    r = sb.control(method, path, json=body)
    assert r.status_code == 400 and names in r.json()["message"], r.text
    assert (clock(sb)["speed"], sb.control("GET", "/_sandbox/config").json()) == before


def test_sandbox_clock_speed_and_advance_are_exact() -> None:
    real = [1000.0]
    sim = SandboxClock(real=lambda: real[0], real_wall=lambda: 1_800_000_000.0)
    sim.set(speed=1440)  # a day in a minute
    real[0] += 60
    assert sim.wall() == 1_800_000_000.0 + 86400.0
    sim.advance(0.5)
    sim.set(speed=0)
    real[0] += 1000
    assert sim.wall() == 1_800_086_400.5 and sim.monotonic() == 1000.0 + 86400.5
    sim.reset()
    assert (sim.speed, sim.wall()) == (1.0, 1_800_000_000.0)


def test_command_line_flags() -> None:
    parse = build_parser().parse_args
    args = parse(
        ["--rate-limit", "20", "--rate-limit-hour", "200", "--rate-limit-day", "1000", "--day-reset", "rolling"]
    )
    assert _check_args(args) is None
    assert _rate_settings(args) == {
        "rateLimitPerMinute": 20, "rateLimitPerHour": 200, "rateLimitPerDay": 1000, "rateLimitDayReset": "rolling"
    }  # fmt: skip
    assert _rate_settings(parse(["--api-limits", "--rate-limit-day", "5000"])) == {
        "rateLimitPerMinute": 2000, "rateLimitPerHour": 20000, "rateLimitPerDay": 5000
    }  # fmt: skip
    assert _rate_settings(parse([])) == {}
    assert "--rate-limit-hour must be >= 1" in str(_check_args(parse(["--rate-limit-hour", "0"])))
    assert "--clock-speed must be a number >= 0" in str(_check_args(parse(["--clock-speed", "-2"])))
