"""The hook's retry waits in unit tests: recorded, not slept, with tenacity's clock moved by them.

The hooks retry through tenacity (``Retrying`` in ``hooks/debitura.py``, ``AsyncRetrying`` in
``hooks/async_hook.py``, policy in ``hooks/retry.py``), which sleeps between attempts: a test of a persistent 5xx
waited 4.5 s for nothing. The ``retry_clock`` fixture (``tests/conftest.py``, on for every test) hands those loops a
sleep that only records the wait and advances the clock tenacity reads (``time.monotonic`` inside tenacity), so that
``stop_before_delay(retry_deadline)`` decides exactly as it would after real sleeps. Attempt counts, wait values and
log lines are unchanged; only the waiting is gone.

A test about waiting asserts ``retry_clock.waits`` (the seconds each retry would have slept), or carries
``@pytest.mark.real_retry_waits`` to sleep for real (the waits are still recorded). ``DEBITURA_REAL_WAITS=1``
makes every test sleep for real (to compare, or to check that no test depends on the recorded waits).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from types import SimpleNamespace

import pytest

__all__ = ["RetryClock", "install"]


class RetryClock:
    """The waits the hook's retry loops asked for, in order.

    :param real: sleep for real as well (tenacity's clock is then left alone).
    """

    def __init__(self, real: bool = False) -> None:
        self.real = real
        self.waits: list[float] = []
        self._offset = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        """``time.monotonic()`` plus every wait recorded so far: the clock tenacity reads."""
        return time.monotonic() + self._offset

    def _record(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(float(seconds))
            if not self.real:
                self._offset += float(seconds)

    def sleep(self, seconds: float) -> None:
        """Record a wait of the sync hook (and sleep it, when real).

        :param seconds: the wait tenacity chose.
        """
        self._record(seconds)
        if self.real:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        """Record a wait of the async hook and yield to the event loop once (or sleep it, when real).

        :param seconds: the wait tenacity chose.
        """
        self._record(seconds)
        await asyncio.sleep(seconds if self.real else 0)


def install(monkeypatch: pytest.MonkeyPatch, clock: RetryClock) -> None:
    """Give the hooks' tenacity loops ``clock``'s sleep (and, unless real, tenacity its clock).

    Fails loudly (``AttributeError``) if ``hooks/debitura.py`` and ``hooks/async_hook.py`` no longer build their
    loops from the names ``Retrying`` and ``AsyncRetrying``: the fixture must then follow the hook, not silently
    stop working.

    :param monkeypatch: the test's monkeypatch (undone after the test).
    :param clock: the clock to install.
    """
    import tenacity

    from airflow_provider_debitura.hooks import async_hook, debitura

    monkeypatch.setattr(debitura, "Retrying", functools.partial(tenacity.Retrying, sleep=clock.sleep))
    monkeypatch.setattr(async_hook, "AsyncRetrying", functools.partial(tenacity.AsyncRetrying, sleep=clock.asleep))
    if not clock.real:
        monkeypatch.setattr(tenacity, "time", SimpleNamespace(monotonic=clock.monotonic))
