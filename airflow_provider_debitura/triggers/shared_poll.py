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

Adaptive: on a large queue a full read costs ``ceil(open/100)`` requests however few gates wait
on it; 1 gate over 5,000 open tasks would pay 50 requests an interval where its own check costs 2.
So each interval the poller compares the two: when every subscriber is a gate that can check on its
own (``subscribe(..., direct_cost=2)``) and the sum of their direct costs is below the shared read's
page count + 1 (pages known from the last consistent read's total; before the first read, the shared
read is assumed), it skips the read and hands out a *direct* snapshot (``snapshot.direct``, also
``ok=False``): each gate then makes its own ≤2-request check. A subscriber that needs the read
itself (the new-tasks watcher; ``direct_cost=None``, the default) always gets the shared read. While
it skips, the poller refreshes the queue size with a one-task probe every ``PROBE_EVERY`` intervals,
so it notices when the queue has shrunk enough for the shared read to win again.

Nothing here blocks the loop: I/O is async, each page is parsed between awaits, and the index a
snapshot builds is one pass over the tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

from airflow_provider_debitura.exceptions import DebituraAuthError
from airflow_provider_debitura.gate import AccountSnapshot, is_fatal
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook
from airflow_provider_debitura.hooks.paging import TaskListing

log = logging.getLogger(__name__)

FANOUT_BATCH = 50

PROBE_EVERY = 10
"""While gates check directly, every this many intervals one ``PageSize=1`` request refreshes the open
queue size (its ``totalResults``), so a queue that shrank hands the gates back to the shared read."""

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
        self._direct_costs: dict[int, int | None] = {}
        self._next_token = 0
        self._waiters: list[asyncio.Future[AccountSnapshot]] = []
        self._has_waiters = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.snapshots = 0
        """Rounds delivered: shared reads (ok or failed) and skipped (direct) rounds alike."""
        self.shared_reads = 0
        self.direct_rounds = 0
        self.probes = 0
        self.last_duration = 0.0
        self.open_total: int | None = None
        """Open tasks in the account at the last consistent read or probe; None before the first."""
        self._direct_since_probe = 0
        self._mode: str | None = None

    # -- subscription bookkeeping --

    @property
    def subscribers(self) -> int:
        return len(self._intervals)

    @property
    def interval(self) -> float:
        """The shortest interval any subscriber asked for: nobody waits longer than they wanted."""
        return min(self._intervals.values(), default=60.0)

    @property
    def direct_cost(self) -> int | None:
        """Requests per interval if every subscriber checked on its own; None when one needs the read."""
        costs = list(self._direct_costs.values())
        if any(c is None for c in costs):
            return None
        return sum(c for c in costs if c is not None)

    @property
    def shared_pages(self) -> int | None:
        """Requests one shared read costs, from the last known queue size; None before the first read."""
        if self.open_total is None:
            return None
        return max(1, math.ceil(self.open_total / endpoints.MAX_PAGE_SIZE))

    def use_direct(self) -> bool:
        """This interval's choice: direct checks when they cost less than the shared read + 1."""
        direct, pages = self.direct_cost, self.shared_pages
        return direct is not None and pages is not None and direct < pages + 1

    def _add(self, interval: float, direct_cost: int | None = None) -> int:
        self._next_token += 1
        self._intervals[self._next_token] = float(interval)
        self._direct_costs[self._next_token] = None if direct_cost is None else int(direct_cost)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"debitura-shared-poll-{self.conn_id}"
            )
        return self._next_token

    def _remove(self, token: int) -> bool:
        """Drop a subscriber; True when it was the last one (the caller then retires the poller)."""
        self._intervals.pop(token, None)
        self._direct_costs.pop(token, None)
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
                snapshot = await self._round()
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

    async def _round(self) -> AccountSnapshot:
        """One interval: the shared read, or (when cheaper) a direct snapshot telling gates to check."""
        if self.use_direct() and self._direct_since_probe >= PROBE_EVERY:
            await self._probe()
        if self.use_direct():
            self._switch("direct")
            self._direct_since_probe += 1
            self.direct_rounds += 1
            self.snapshots += 1
            return AccountSnapshot.skipped(
                time.time(),
                f"shared read skipped: {self.direct_cost} direct requests < {self.shared_pages} pages + 1",
            )
        self._switch("shared")
        self._direct_since_probe = 0
        return await self._read()

    def _switch(self, mode: str) -> None:
        if mode != self._mode:
            log.info(
                "Debitura shared poll of %r: %s (%d subscribers; direct checks %s requests/interval, "
                "shared read %s pages)",
                self.conn_id,
                "gates check directly" if mode == "direct" else "one shared read per interval",
                self.subscribers,
                "n/a" if self.direct_cost is None else self.direct_cost,
                "unknown" if self.shared_pages is None else self.shared_pages,
            )
            self._mode = mode

    async def _probe(self) -> None:
        """One ``PageSize=1`` request for the queue's size. A failed probe keeps the old size."""
        self._direct_since_probe = 0
        self.probes += 1
        try:
            await warm_client(self.hook)
            page = await self.hook.run(endpoints.get_tasks_page(status="Open", page=1, page_size=1))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("Debitura queue-size probe of %r failed: %s", self.conn_id, exc)
            return
        self.open_total = int(page.page.total_results)

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
            fatal = is_fatal(exc)
            log.warning(
                "Debitura shared poll of %r failed, %s: %s",
                self.conn_id,
                "each gate checks on its own to report it" if fatal else "gates stay blocked this round",
                exc,
            )
            if isinstance(exc, DebituraAuthError):
                # A rotated key must take effect without a triggerer restart: re-read the connection next time.
                await self.hook.reset_connection()
            snapshot = AccountSnapshot.failed(f"{type(exc).__name__}: {exc}", taken_at, fatal=fatal)
        self.snapshots += 1
        self.shared_reads += 1
        if snapshot.ok:
            self.open_total = snapshot.total
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
async def subscribe(
    conn_id: str, interval: float, *, direct_cost: int | None = None
) -> AsyncIterator[SharedAccountPoller]:
    """Join the shared poll of ``conn_id`` on the running loop for the duration of the block.

    ``direct_cost``: the requests this subscriber's own check costs, when it can make one instead of
    reading the shared snapshot (a case gate: 2, or 1 without account-level tasks). Such a subscriber
    must handle ``snapshot.direct`` by checking on its own. None (the default): it needs the shared
    read, and while it is subscribed the poller never skips it.

    Safe under cancellation: the ``finally`` always unsubscribes, and the last subscriber out
    stops the poll and closes its HTTP client.
    """
    loop = asyncio.get_running_loop()
    pollers = _POLLERS.setdefault(loop, {})
    poller = pollers.get(conn_id)
    if poller is None:
        poller = pollers[conn_id] = SharedAccountPoller(conn_id)
    token = poller._add(interval, direct_cost)
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
