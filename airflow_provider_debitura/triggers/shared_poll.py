"""One account-wide poll per interval for every case gate in a triggerer process.

Why: each gate checking on its own costs two requests per interval, so 1,000 gates polling every
minute spend the account's whole budget (2,000 requests a minute). One consistent read of the
open queue (``GET /tasks``, every page, with the hook's drift detection) holds every case task and
every account-level task, so it answers all gates on the connection at ``ceil(open/100)`` requests.

How: gates sharing a connection id subscribe to one :class:`SharedAccountPoller` per event loop
(refcounted; its loop task stops when the last gate leaves). A gate asks for the next snapshot
and gets the first one whose read *started after* it asked, so a verdict is never older than the
question. A failed or inconsistent read is delivered as a failed snapshot, which every gate reads
as "unknown", i.e. still blocked.

Nothing here blocks the loop: I/O is async, each page is parsed between awaits, and the index a
snapshot builds is one pass over the tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

from airflow_provider_debitura.gate import AccountSnapshot
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook
from airflow_provider_debitura.hooks.paging import TaskListing

log = logging.getLogger(__name__)

FANOUT_BATCH = 50

_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, SharedAccountPoller]] = (
    weakref.WeakKeyDictionary()
)


class SharedAccountPoller:
    """The account-wide poll of one connection on one event loop. Use :func:`subscribe`."""

    def __init__(self, conn_id: str, *, hook_factory: Any = DebituraAsyncHook) -> None:
        self.conn_id = conn_id
        self.hook = hook_factory(conn_id)
        """Shared by the poll and by the gates' direct (confirmation) checks: one HTTP pool, not N."""
        self._intervals: dict[int, float] = {}
        self._next_token = 0
        self._waiters: list[asyncio.Future[AccountSnapshot]] = []
        self._has_waiters = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.snapshots = 0
        self.last_duration = 0.0

    # -- subscription bookkeeping --

    @property
    def subscribers(self) -> int:
        return len(self._intervals)

    @property
    def interval(self) -> float:
        """The shortest interval any subscriber asked for: nobody waits longer than they wanted."""
        return min(self._intervals.values(), default=60.0)

    def _add(self, interval: float) -> int:
        self._next_token += 1
        self._intervals[self._next_token] = float(interval)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"debitura-shared-poll-{self.conn_id}"
            )
        return self._next_token

    def _remove(self, token: int) -> bool:
        """Drop a subscriber; True when it was the last one (the caller then retires the poller)."""
        self._intervals.pop(token, None)
        if self._intervals:
            return False
        if self._task is not None and not self._task.done():
            self._task.cancel()
        return True

    async def next_snapshot(self) -> AccountSnapshot:
        """The first snapshot whose read starts after this call."""
        if self._task is None or self._task.done():  # a crashed loop must not strand gates
            self._task = asyncio.get_running_loop().create_task(self._run())
        fut: asyncio.Future[AccountSnapshot] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._has_waiters.set()
        return await fut

    # -- the poll --

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_start = 0.0
        try:
            while self._intervals:
                await self._has_waiters.wait()
                delay = next_start - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                waiters, self._waiters = self._waiters, []
                self._has_waiters.clear()
                next_start = loop.time() + self.interval
                snapshot = await self._read()
                await self._deliver(waiters, snapshot)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave gates waiting forever
            log.exception("Debitura shared poll loop for %r failed", self.conn_id)
            self._fail_waiters(f"shared poll loop failed: {exc}")
        finally:
            self._fail_waiters("shared poll stopped")

    async def _deliver(self, waiters: list[asyncio.Future[AccountSnapshot]], snapshot: AccountSnapshot) -> None:
        try:
            for start in range(0, len(waiters), FANOUT_BATCH):
                for fut in waiters[start : start + FANOUT_BATCH]:
                    if not fut.done():
                        fut.set_result(snapshot)
                # Let the loop run other work between batches: waking 1,000 gates in one
                # iteration would hold every other trigger back for the whole batch.
                await asyncio.sleep(0)
        finally:
            for fut in waiters:  # cancelled mid-way: nobody is left stranded
                if not fut.done():
                    fut.set_result(snapshot)

    def _fail_waiters(self, reason: str) -> None:
        waiters, self._waiters = self._waiters, []
        snapshot = AccountSnapshot.failed(reason, time.time())
        for fut in waiters:
            if not fut.done():
                fut.set_result(snapshot)

    async def _read(self) -> AccountSnapshot:
        started = time.monotonic()
        taken_at = time.time()
        listing = TaskListing(status="Open")
        try:
            await warm_client(self.hook)
            tasks = await self.hook.run_listing(listing)
            snapshot = AccountSnapshot.from_tasks(tasks, taken_at)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("Debitura shared poll of %r failed, gates stay blocked this round: %s", self.conn_id, exc)
            snapshot = AccountSnapshot.failed(f"{type(exc).__name__}: {exc}", taken_at)
        self.snapshots += 1
        self.last_duration = time.monotonic() - started
        log.debug(
            "Debitura shared poll of %r: %s in %.2f s (%d pages, %d subscribers)",
            self.conn_id,
            f"{snapshot.total} open tasks" if snapshot.ok else "failed",
            self.last_duration,
            listing.pages_read,
            self.subscribers,
        )
        return snapshot

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.hook.aclose()


async def warm_client(hook: DebituraAsyncHook) -> None:
    """Build the hook's client before the first poll; the hook keeps CA-bundle loading off the loop."""
    with contextlib.suppress(Exception):  # a broken connection surfaces on the first real request instead
        await hook.get_async_conn()


@contextlib.asynccontextmanager
async def subscribe(conn_id: str, interval: float) -> AsyncIterator[SharedAccountPoller]:
    """Join the shared poll of ``conn_id`` on the running loop for the duration of the block.

    Safe under cancellation: the ``finally`` always unsubscribes, and the last subscriber out
    stops the poll and closes its HTTP client.
    """
    loop = asyncio.get_running_loop()
    pollers = _POLLERS.setdefault(loop, {})
    poller = pollers.get(conn_id)
    if poller is None:
        poller = pollers[conn_id] = SharedAccountPoller(conn_id)
    token = poller._add(interval)
    try:
        yield poller
    finally:
        if poller._remove(token):
            if pollers.get(conn_id) is poller:
                del pollers[conn_id]
            # Shielded so a cancelled trigger still releases the connection pool.
            with contextlib.suppress(BaseException):
                await asyncio.shield(poller.aclose())


def active_pollers() -> dict[str, SharedAccountPoller]:
    """The pollers on the running loop (for tests and the benchmark)."""
    return dict(_POLLERS.get(asyncio.get_running_loop(), {}))
