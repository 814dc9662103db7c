"""Running case gates the way a triggerer does, and reading back what they cost."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from airflow_provider_debitura.sandbox.scenarios import case_id_for
from airflow_provider_debitura.triggers import shared_poll
from airflow_provider_debitura.triggers.case_gate import DebituraCaseUnblockedTrigger


def gate(ref: str, **kwargs: Any) -> DebituraCaseUnblockedTrigger:
    """A deferred gate on the case with creditor reference ``ref`` (fast polling, 60 s deadline), as the
    sensor hands it to the triggerer: after its first check (``checks=1``), so it joins the shared poll."""
    kwargs.setdefault("poll_interval", 0.3)
    kwargs.setdefault("checks", 1)
    kwargs.setdefault("end_time", time.time() + 60)
    return DebituraCaseUnblockedTrigger(case_id_for(ref), **kwargs)


def first_event(trigger: DebituraCaseUnblockedTrigger) -> asyncio.Future[Any]:
    """Run the trigger until its one event (as a triggerer would); the future's result is the payload."""

    async def run() -> dict[str, Any]:
        event = await trigger.run().__anext__()
        return event.payload

    return asyncio.ensure_future(run())


async def until(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def poller(conn_id: str = "debitura_default", timeout: float = 10) -> shared_poll.SharedAccountPoller:
    await until(lambda: conn_id in shared_poll.active_pollers(), timeout, f"the shared poll of {conn_id!r}")
    return shared_poll.active_pollers()[conn_id]


async def stop(tasks: list[asyncio.Future[Any]]) -> None:
    """Cancel running gates; the last one out must stop the shared poll."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0)
    assert shared_poll.active_pollers() == {}


@contextlib.asynccontextmanager
async def running(triggers: list[DebituraCaseUnblockedTrigger]) -> AsyncIterator[list[asyncio.Future[Any]]]:
    tasks = [first_event(t) for t in triggers]
    try:
        yield tasks
    finally:
        await stop([t for t in tasks if not t.done()])


def counters(sb: Any) -> dict[str, int]:
    return sb.control("GET", "/counters").json()


def clear_counters(sb: Any) -> None:
    sb.control("DELETE", "/requests")
