"""Prints the watcher rows of docs/reliability.md: odd listings, a fast neighbour, a redeploy.

    PYTHONPATH=tests .venv/bin/python tests/triggers/render_watcher_faults.py

Runs each scenario against the sandbox with whatever ``airflow_provider_debitura`` is importable and
the in-memory store of ``tests/helpers``, through the trigger's public API only (constructor, ``run()``,
``rounds``), so the same script measures an older checkout too, e.g. main's before a change::

    git archive main airflow_provider_debitura tests/helpers | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before:/tmp/before/tests .venv/bin/python tests/triggers/render_watcher_faults.py

The assertions live in test_new_tasks_scale.py; this script only counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from helpers.seen_store import MemorySeenTasksStore

import airflow_provider_debitura
from airflow_provider_debitura.sandbox import SandboxServer
from airflow_provider_debitura.triggers.new_tasks import DebituraNewTasksTrigger
from airflow_provider_debitura.triggers.watcher import tracker

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


class Run:
    """A trigger's ``run()`` in the background, its events counted by round."""

    def __init__(self, trigger: DebituraNewTasksTrigger) -> None:
        self.trigger = trigger
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event.payload)

    async def rounds(self, n: int, timeout: float = 300) -> None:
        target = self.trigger.rounds + n + 1  # the n-th round is done once the next one has started
        deadline = time.monotonic() + timeout
        while self.trigger.rounds < target:
            assert time.monotonic() < deadline and not self.task.done(), "the watcher stopped or stalled"
            await asyncio.sleep(0.02)

    async def stop(self) -> list[str]:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        return [e["id"] for e in self.events]


def add(sb: SandboxServer, type_: str, ref: str | None) -> str:
    body: dict[str, Any] = {"type": type_} | ({"caseCreditorReference": ref} if ref else {})
    return sb.control("POST", "/tasks", body).json()["id"]


async def backlog(sb: SandboxServer) -> str:
    sb.control("POST", "/scenario", {"name": "large:10100"})
    run = Run(DebituraNewTasksTrigger(poll_interval=0.2, store=MemorySeenTasksStore()))
    await run.rounds(4)
    return f"{len(await run.stop())} events (want 0)"


async def empty_listings(sb: SandboxServer) -> str:
    run = Run(DebituraNewTasksTrigger(poll_interval=0.15, replay_existing=True, store=MemorySeenTasksStore()))
    await run.rounds(2)
    fired = len(run.events)
    sb.control("PUT", "/faults", {"rules": [EMPTY_200 | {"count": 6}]})
    await run.rounds(6)
    sb.control("DELETE", "/faults")
    await run.rounds(4)
    return f"{len(await run.stop()) - fired} of {fired} fired again (want 0)"


async def fast_neighbour(sb: SandboxServer) -> str:
    add(sb, "SignContract", None)
    slow = Run(DebituraNewTasksTrigger(poll_interval=60, replay_existing=True, store=MemorySeenTasksStore()))
    fast = Run(DebituraNewTasksTrigger(task_types=["Generic"], poll_interval=0.1, store=MemorySeenTasksStore()))
    await slow.rounds(1, 60)
    fired = len(slow.events)
    sb.control("PUT", "/faults", {"rules": [EMPTY_200 | {"count": 8}]})
    await fast.rounds(8, 60)  # the neighbour's rounds are the clock
    sb.control("DELETE", "/faults")
    await fast.rounds(5, 60)
    await fast.stop()
    return f"{len(await slow.stop()) - fired} of {fired} fired again (want 0)"


async def filter_change(sb: SandboxServer) -> str:
    store = MemorySeenTasksStore()

    async def deploy(types: list[str]) -> list[str]:
        run = Run(DebituraNewTasksTrigger(task_types=types, poll_interval=0.15, store=store))
        await run.rounds(3)
        # Deploys are minutes apart: let fired tasks leave the grace window (where a redeploy fires them
        # again, by design) before the next one. Versions without the grace wait a second.
        await asyncio.sleep(tracker.PERSIST_GRACE + 1)
        await run.rounds(1)
        return await run.stop()

    await deploy(["ReplyToChat"])
    during = [add(sb, "ReplyToChat", "INV-1002"), add(sb, "SignContract", None)]
    widened = await deploy(["ReplyToChat", "SignContract"])
    after = add(sb, "ReplyToChat", "INV-1003")
    reverted = await deploy(["ReplyToChat"])
    outcome = "fired" if after in reverted else "lost"
    return (
        f"created during the deploy: {sum(i in widened for i in during)} of 2 fired (want 2); revert: "
        f"{sum(i in reverted for i in during)} fired again (want 0), new task {outcome}"
    )


SCENARIOS: list[tuple[str, Callable[[SandboxServer], Awaitable[str]]]] = [
    ("10,100 unchanged open tasks, 4 rounds (old cap 10,000)", backlog),
    ("6 empty 200 listings, then the real queue again", empty_listings),
    ("poll_interval=60 next to a 0.1 s watcher, 8 empty 200s", fast_neighbour),
    ("filter widened while tasks appear, then reverted", filter_change),
]


async def main() -> None:
    print(f"package: {os.path.dirname(airflow_provider_debitura.__file__)}\n")
    print("| Scenario | Outcome |\n|---|---|")
    for name, scenario in SCENARIOS:
        with SandboxServer(scenario="demo", api_key="render-watcher-key") as sb:
            os.environ["AIRFLOW_CONN_DEBITURA_DEFAULT"] = sb.conn_json()
            print(f"| {name} | {await scenario(sb)} |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
