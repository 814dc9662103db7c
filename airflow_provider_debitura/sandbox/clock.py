"""The sandbox clock: real time by default; frozen, sped up or advanced on demand (``/_sandbox/clock``).

Everything time-based in the sandbox reads it: timed solves and events, the request log's times, the
scenario's load time and the rate-limit windows. Its wall time is primary (epoch seconds, UTC) and its
monotonic time is the wall time minus a constant, so both move together and never backwards, except on
:meth:`SandboxClock.reset`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from airflow_provider_debitura.sandbox.dto import fmt_ts
from airflow_provider_debitura.sandbox.scenario_models import ScenarioError, parse_timestamp


class ClockError(ValueError):
    """A clock setting is invalid (the control plane answers 400)."""


def check_speed(value: Any, name: str = "speed") -> float:
    """A speed factor: a number >= 0 (0 freezes the clock, 1 is real time, 1440 runs a day in a minute).

    :param value: the value given.
    :param name: the parameter named in the error.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ClockError(
            f"{name} must be a number >= 0 (0 freezes the clock, 1 is real time, 86400/N runs a day in N seconds); "
            f"got {value!r}"
        )
    return float(value)


class SandboxClock:
    """Sandbox time: ``wall = anchor + speed * (real monotonic elapsed since the anchor)``.

    :param real: the real monotonic clock (tests may pass a fake).
    :param real_wall: the real wall clock, epoch seconds (read when the clock starts or resets).
    :param speed: the default speed factor (1: real time; restored by :meth:`reset`).
    """

    def __init__(
        self,
        real: Callable[[], float] = time.monotonic,
        real_wall: Callable[[], float] = time.time,
        speed: float = 1.0,
    ) -> None:
        self._real = real
        self._real_wall = real_wall
        self._default_speed = check_speed(speed)
        self._anchor_real = real()
        self._anchor_wall = real_wall()
        self._origin = self._anchor_wall - self._anchor_real  # monotonic = wall - origin, as the real clocks
        self._speed = self._default_speed

    @property
    def speed(self) -> float:
        """The current speed factor."""
        return self._speed

    def wall(self) -> float:
        """Sandbox wall time, epoch seconds (UTC)."""
        return self._anchor_wall + self._speed * (self._real() - self._anchor_real)

    def monotonic(self) -> float:
        """Sandbox monotonic time (seconds; equals the real monotonic clock until the clock is moved)."""
        return self.wall() - self._origin

    def wall_datetime(self) -> datetime:
        """Sandbox wall time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.wall(), timezone.utc)

    def wall_at(self, monotonic: float) -> datetime:
        """The wall time (aware, UTC) at a sandbox monotonic time, e.g. a timer's due time.

        :param monotonic: a value of :meth:`monotonic`.
        """
        return datetime.fromtimestamp(monotonic + self._origin, timezone.utc)

    def _anchor(self) -> None:
        self._anchor_wall, self._anchor_real = self.wall(), self._real()

    def advance(self, seconds: float) -> None:
        """Move sandbox time forward.

        :param seconds: how far, >= 0.
        """
        if not 0 <= seconds < math.inf:
            raise ClockError(f"seconds must be a finite number >= 0 (the clock never goes back); got {seconds!r}")
        self._anchor()
        self._anchor_wall += seconds

    def set(self, speed: float | None = None, wall_time: datetime | None = None) -> None:
        """Change the speed and/or jump forward to a wall time (validated before anything changes).

        :param speed: the new speed factor (0 freezes), None: unchanged.
        :param wall_time: a wall time not before the sandbox's now, None: unchanged.
        """
        new_speed = None if speed is None else check_speed(speed)
        target = None if wall_time is None else wall_time.timestamp()
        self._anchor()
        if target is not None and target < self._anchor_wall:
            raise ClockError(
                f"wallTime {fmt_ts(wall_time)} is before the sandbox's now "
                f"({fmt_ts(self.wall_datetime())}): the clock only moves forward (POST /_sandbox/reset restarts it)"
            )
        if target is not None:
            self._anchor_wall = target
        if new_speed is not None:
            self._speed = new_speed

    def set_default_speed(self, speed: float) -> None:
        """Set the speed now and as the one :meth:`reset` restores (the command line's ``--clock-speed``).

        :param speed: the speed factor.
        """
        self._default_speed = check_speed(speed, "--clock-speed")
        self.set(speed=self._default_speed)

    def reset(self) -> None:
        """Back to real time at the default speed (the wall clock may jump back if it was moved)."""
        self._anchor_real, self._anchor_wall = self._real(), self._real_wall()
        self._speed = self._default_speed

    def view(self) -> dict[str, Any]:
        """``GET /_sandbox/clock``'s fields (without ``elapsedSeconds``, which the store adds)."""
        wall = self.wall()
        return {
            "wallTime": fmt_ts(datetime.fromtimestamp(wall, timezone.utc)),
            "epochSeconds": round(wall, 6),
            "speed": self._speed,
            "frozen": self._speed == 0,
        }


def parse_clock_patch(body: Any) -> tuple[float | None, datetime | None]:
    """The speed and wall time of a ``PUT /_sandbox/clock`` body ``{"speed"?: N, "wallTime"?: ISO}``.

    :param body: the JSON body.
    """
    if not isinstance(body, dict) or not body:
        raise ClockError('body must be a JSON object with "speed" (a number >= 0) and/or "wallTime" (ISO-8601)')
    unknown = sorted(set(body) - {"speed", "wallTime"})
    if unknown:
        raise ClockError(f"unknown field(s) {unknown}; allowed: ['speed', 'wallTime']")
    speed = check_speed(body["speed"]) if "speed" in body else None
    wall = None
    if "wallTime" in body:
        try:
            wall = parse_timestamp(body["wallTime"], "wallTime")
        except ScenarioError as exc:
            raise ClockError(f"{exc} (for example 2026-12-07T23:59:50Z)") from None
    return speed, wall
