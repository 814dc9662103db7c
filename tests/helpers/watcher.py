"""Running a new-task watcher in a test: its ``run()`` in the background, its events recorded."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from airflow_provider_debitura.sandbox import SandboxServer
from airflow_provider_debitura.triggers.new_tasks import DebituraNewTasksTrigger

EMPTY_200 = {
    "kind": "status",
    "status": 200,
    "method": "GET",
    "path": "/tasks",
    "body": {
        "page": {"totalResults": 0, "pageSize": 100, "currentPage": 1, "responseCount": 0, "totalPages": 0},
        "tasks": [],
    },
}
"""A sandbox fault rule: ``GET /tasks`` answers a well-formed empty page (an API hiccup, a proxy's empty 200);
add ``"count"`` to limit it."""


class Watch:
    """Runs a trigger's ``run()`` in the background and records its events."""

    def __init__(self, trigger: DebituraNewTasksTrigger) -> None:
        """:param trigger: the watcher to run (started at once on the running loop)."""
        self.trigger = trigger
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event.payload)

    async def rounds(self, n: int = 1, timeout: float = 15) -> None:
        """Wait until ``n`` more rounds have been processed (and their state saved)."""
        target = self.trigger.rounds + n
        await self.until(lambda: self.trigger.rounds >= target and not self.dirty, timeout)

    @property
    def dirty(self) -> bool:
        return self.trigger.tracker is not None and self.trigger.tracker.dirty

    async def until(self, condition: Callable[[], bool], timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.task.done():
                self.task.result()  # surface a crash
                raise AssertionError("the trigger stopped")
            assert time.monotonic() < deadline, f"timed out; events={self.events} rounds={self.trigger.rounds}"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        assert not self.task.done() or self.task.cancelled() or self.task.exception() is None


def add_task(sb: SandboxServer, type_: str = "ReplyToChat", ref: str | None = "INV-1005") -> dict[str, Any]:
    """Create an open task through the sandbox's control plane; returns its TaskDto."""
    body: dict[str, Any] = {"type": type_}
    if ref is not None:
        body["caseCreditorReference"] = ref
    response = sb.control("POST", "/tasks", body)
    assert response.status_code == 201, response.text
    return response.json()
