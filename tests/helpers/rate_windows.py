"""Steering a running sandbox's rate-limit windows and clock through its control API, and reading its spend report.

Every call is one HTTP request to ``/_sandbox/`` (see docs/sandbox-rate-limits.md). ``sb`` is a
:class:`~airflow_provider_debitura.sandbox.SandboxServer` (anything with its ``control(method, path, json)``).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

DAY = 86400.0


def _ok(response: Any) -> dict[str, Any]:
    if response.status_code != 200:
        raise AssertionError(f"sandbox control call failed: {response.status_code} {response.text}")
    body: dict[str, Any] = response.json()
    return body


def set_rate_windows(
    sb: Any,
    minute: int | None = None,
    hour: int | None = None,
    day: int | None = None,
    day_reset: str = "midnight-utc",
) -> dict[str, Any]:
    """Enforce these window sizes per API key (None: counted, not enforced); the effective settings.

    :param sb: the sandbox.
    :param minute: requests per sliding minute.
    :param hour: requests per clock hour.
    :param day: requests per day.
    :param day_reset: ``midnight-utc``, ``rolling`` or ``sliding``.
    """
    patch = {
        "rateLimitPerMinute": minute,
        "rateLimitPerHour": hour,
        "rateLimitPerDay": day,
        "rateLimitDayReset": day_reset,
    }
    return _ok(sb.control("PUT", "/config", patch))


def clock(sb: Any) -> dict[str, Any]:
    """``GET /_sandbox/clock``: ``wallTime``, ``epochSeconds``, ``speed``, ``frozen``, ``elapsedSeconds``."""
    return _ok(sb.control("GET", "/clock"))


def freeze_clock(sb: Any, at: datetime | None = None) -> dict[str, Any]:
    """Stop the sandbox clock (only :func:`advance_clock` moves it), optionally jumping forward to ``at`` first.

    :param sb: the sandbox.
    :param at: an aware wall time not before the sandbox's now.
    """
    body: dict[str, Any] = {"speed": 0}
    if at is not None:
        body["wallTime"] = at.astimezone(timezone.utc).isoformat()
    return _ok(sb.control("PUT", "/clock", body))


def set_clock_speed(sb: Any, speed: float) -> dict[str, Any]:
    """Run the sandbox clock at ``speed`` times real time (86400/N: a day in N seconds; 0 freezes it).

    :param sb: the sandbox.
    :param speed: the factor.
    """
    return _ok(sb.control("PUT", "/clock", {"speed": speed}))


def advance_clock(sb: Any, seconds: float) -> dict[str, Any]:
    """Move the sandbox clock forward (timers fire, windows move); the clock's view.

    :param sb: the sandbox.
    :param seconds: how far, >= 0.
    """
    return _ok(sb.control("POST", "/clock/advance", {"seconds": seconds}))


def midnight_ahead(sb: Any, days: int = 1) -> datetime:
    """The UTC midnight ``days`` days after the sandbox's current day began (a wall time tests can freeze at).

    :param sb: the sandbox.
    :param days: 1: the coming midnight.
    """
    today = math.floor(clock(sb)["epochSeconds"] / DAY) * DAY
    return datetime.fromtimestamp(today + days * DAY, timezone.utc)


def rate_report(sb: Any) -> dict[str, Any]:
    """``GET /_sandbox/rate-limits``: ``clock``, ``windows`` and ``keys`` (by label)."""
    return _ok(sb.control("GET", "/rate-limits"))


def spend(sb: Any, label: str = "configured") -> dict[str, Any]:
    """One key's spend: ``requests``, ``refused`` and per window (``minute``, ``hour``, ``day``) its
    ``limit``, ``used``, ``peak``, ``refused`` and ``retryAfter``.

    :param sb: the sandbox.
    :param label: ``configured`` (the sandbox's key), ``anonymous`` or ``other-N``.
    """
    keys: dict[str, Any] = rate_report(sb)["keys"]
    return dict(keys[label])


def clear_spend(sb: Any) -> None:
    """Forget every key's windows, peaks and refusals (the settings stay)."""
    _ok(sb.control("DELETE", "/rate-limits"))
