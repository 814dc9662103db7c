"""Where a watcher's rounds come from: a tail read of the queue's end when the counts allow it, else a full read.

A round first reads the end of the queue (:mod:`.tail`, 1 or 2 requests in steady state) against the order of
the last listing the watcher trusted. When the tail read cannot prove that it holds every new task (tasks
solved before the end, a burst, a total that does not add up, an order that moved), the round reads the whole
queue: through the connection's shared poll (``coalesce=True``: that read also serves the case gates due
then) or on its own (``coalesce=False``). A case filter reads the case's tasks instead (one unpaged request).

The order becomes the next round's basis only once the trigger has processed the round (:meth:`settle`): a
round whose tasks the watcher could not judge (its state did not load) never becomes the basis, so nothing it
held is taken for seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from airflow_provider_debitura.exceptions import DebituraAuthError
from airflow_provider_debitura.gate.records import TASK_ID
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook
from airflow_provider_debitura.models import Records, RejectedRecord, Task
from airflow_provider_debitura.triggers.shared_poll import connection_slots, subscribe, warm_client
from airflow_provider_debitura.triggers.watcher.ids import TaskJson
from airflow_provider_debitura.triggers.watcher.records import SnapshotRecords
from airflow_provider_debitura.triggers.watcher.tail import QueueOrder, TailRead, TailResult

if TYPE_CHECKING:
    from airflow_provider_debitura.gate import AccountSnapshot
    from airflow_provider_debitura.triggers.watcher.state import WatchFilter

log = logging.getLogger(__name__)


@dataclass
class Round:
    """One poll's answer: the open tasks the round could see (JSON), or why it saw nothing.

    :param ok: the listing was read.
    :param tasks: the open tasks (tasks outside the watcher's filter may be included; they are ignored); a full
        read of the shared poll gives them as :class:`~.records.SnapshotRecords`, parsed while they are iterated.
    :param error: why the round failed.
    :param complete: the listing is known to hold every task open throughout it (default). A listing
        that is not (e.g. a best-effort read) may fire new tasks but never starts a watcher, moves its
        watermark or makes it forget.
    :param rejected: records the reader could not parse (reported once if they may match, never fired).
    :param tail: ``tasks`` are the end of the queue, proved by a tail read to hold every task new since the
        last trusted listing (complete as to what is new; see :mod:`.tail`).
    :param order: the queue's order as this round proved it (the next tail read's basis); None: unknown.
    :param kind: how it was read: ``"tail"``, ``"full"``, ``"case"``, ``"failed"`` or ``"interim"`` (the end of the
        queue read while a full read it needs is held back by the request budget: incomplete, and not the next
        tail read's basis).
    :param requests: requests the watcher itself sent (a full read through the shared poll is not counted).
    :param doubt: why the tail read did not suffice, when it did not.
    """

    ok: bool
    tasks: Sequence[TaskJson] | SnapshotRecords
    error: str | None = None
    complete: bool = True
    rejected: Sequence[RejectedRecord] = field(default_factory=tuple)
    tail: bool = False
    order: QueueOrder | None = None
    kind: str = "full"
    requests: int = 0
    doubt: str | None = None

    @classmethod
    def failed(cls, error: str) -> Round:
        """A round that read nothing.

        :param error: why.
        """
        return cls(False, [], error, kind="failed")


class WatcherConfig(Protocol):
    """What the round sources read of the trigger."""

    debitura_conn_id: str
    task_types: list[str] | None
    case_id: str | None
    poll_interval: float
    watch: WatchFilter

    def matches(self, task: TaskJson) -> bool: ...


class QueueRounds:
    """The rounds of one watcher: the tail read, its fallback, the pacing and the trusted order.

    :param trigger: the watcher (its connection, filter and interval).
    """

    types: tuple[str, ...] | None = None
    """The ``type`` filter of this source's listings (the shared poll lists every type)."""

    def __init__(self, trigger: WatcherConfig) -> None:
        self.trigger = trigger
        self.known: QueueOrder | None = None
        """The order of the last listing the watcher processed and could trust; None: the next round reads all."""
        self.tail_rounds = 0
        self.full_rounds = 0
        self.interim_rounds = 0
        """Rounds that read the end of the queue while a full read was held back by the request budget."""
        self.last_doubt: str | None = None
        self._next_at: float | None = None

    @property
    def hook(self) -> DebituraAsyncHook:
        """The HTTP client the round's own reads use."""
        raise NotImplementedError

    async def __aenter__(self) -> QueueRounds:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def next_round(self) -> Round:
        """Read one round (never raises for a failed read: that is a failed round)."""
        loop = asyncio.get_running_loop()
        self._next_at = loop.time() + self.trigger.poll_interval
        try:
            if self.trigger.case_id is not None:
                return await self._case_round()
            tail = await self._tail() if self.known is not None else None
            if tail is not None and tail.verified:
                self._drop_question()
                self.tail_rounds += 1
                return Round(
                    True,
                    [t.to_api_dict() for t in tail.tasks],
                    tail=True,
                    order=tail.order,
                    kind="tail",
                    requests=tail.requests,
                )
            if tail is not None:
                self.last_doubt = tail.doubt
                log.info("Debitura watcher: reading the whole queue: %s", tail.doubt)
            listing = await self._full_round(tail)
            if listing.kind == "interim":
                self.interim_rounds += 1
            else:
                self.full_rounds += 1
            return listing
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, DebituraAuthError):
                await self.hook.reset_connection()  # a rotated key takes effect without a triggerer restart
            return Round.failed(f"{type(exc).__name__}: {exc}")

    def settle(self, listing: Round, accepted: bool) -> None:
        """After the trigger processed ``listing``: its order becomes the next tail read's basis.

        :param listing: the round.
        :param accepted: the watcher judged its tasks (its state was loaded). A round it could not judge, or
            one that failed, leaves the basis as it was.
        """
        if listing.ok and accepted and listing.kind != "interim":
            self.known = listing.order

    async def pause(self) -> None:
        """Until the next round is due (``poll_interval`` after this one started)."""
        loop = asyncio.get_running_loop()
        wait = self.trigger.poll_interval if self._next_at is None else self._next_at - loop.time()
        await asyncio.sleep(max(0.0, wait))

    async def _tail(self) -> TailResult:
        assert self.known is not None
        tail = TailRead(self.known, types=self.types)
        return await self.hook.exchange(tail, slots=connection_slots(self.trigger.debitura_conn_id))

    async def _case_round(self) -> Round:
        case_id = self.trigger.case_id
        assert case_id is not None
        tasks: Records[Task] = await self.hook.get_case_tasks(case_id, status="Open", types=self.trigger.task_types)
        # one unpaged answer: nothing can shift under it
        return Round(True, [t.to_api_dict() for t in tasks], rejected=tuple(tasks.rejected), kind="case", requests=1)

    async def _full_round(self, tail: TailResult | None) -> Round:
        raise NotImplementedError

    def _drop_question(self) -> None:
        """A tail read proved the end complete: a full read asked for earlier is no longer needed."""


def _interim(tail: TailResult) -> Round:
    """The tail read's tasks as an incomplete round: they are open (read directly), so those new fire now."""
    tasks = [t.to_api_dict() for t in tail.tasks]
    return Round(True, tasks, complete=False, kind="interim", requests=tail.requests, doubt=tail.doubt)


def _with_tail(records: list[TaskJson], tail: TailResult | None, trigger: WatcherConfig) -> list[TaskJson]:
    """A full read's records plus the matching tasks the tail read saw that it lacks (read directly: open)."""
    if tail is None or not tail.tasks:
        return records
    have = {r.get("id") for r in records}
    extra = [t.to_api_dict() for t in tail.tasks if t.id not in have]
    return records + [t for t in extra if trigger.matches(t)]


class DirectRounds(QueueRounds):
    """A watcher that reads on its own (``coalesce=False``): its tail reads and full reads carry its type filter.

    :param trigger: the watcher.
    """

    def __init__(self, trigger: WatcherConfig) -> None:
        super().__init__(trigger)
        self.types = tuple(trigger.task_types) if trigger.task_types is not None else None
        self._hook = DebituraAsyncHook(trigger.debitura_conn_id)

    @property
    def hook(self) -> DebituraAsyncHook:
        return self._hook

    async def __aenter__(self) -> DirectRounds:
        await warm_client(self._hook)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.shield(self._hook.aclose())

    async def _full_round(self, tail: TailResult | None) -> Round:
        listing = await self._hook.list_tasks(status="Open", types=self.types)
        trusted = listing.verified and not listing.rejected and listing.total == len(listing)
        order = QueueOrder(tuple(t.id for t in listing)) if trusted else None
        records = _with_tail([t.to_api_dict() for t in listing], tail, self.trigger)
        requests = listing.requests + (tail.requests if tail is not None else 0)
        doubt = tail.doubt if tail is not None else None
        return Round(
            True,
            records,
            complete=listing.verified,
            rejected=tuple(listing.rejected),
            order=order,
            requests=requests,
            doubt=doubt,
        )


class SharedRounds(QueueRounds):
    """A watcher on the connection's shared poll (``coalesce=True``): tail reads on the poll's HTTP client, and
    the full reads it needs from the poll's rounds, which the case gates due then share.

    :param trigger: the watcher.
    """

    def __init__(self, trigger: WatcherConfig) -> None:
        super().__init__(trigger)
        self.source = subscribe(trigger.debitura_conn_id, trigger.poll_interval, records=True)
        self._asked: asyncio.Future[AccountSnapshot | None] | None = None
        """The full read asked of the shared poll and not yet answered (kept across interim rounds)."""

    @property
    def hook(self) -> DebituraAsyncHook:
        return self.source.hook

    async def __aenter__(self) -> SharedRounds:
        await self.source.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.source.__aexit__(None, None, None)  # leaving the poll does not depend on why

    def _drop_question(self) -> None:
        if self._asked is not None:
            self._asked.cancel()
            self._asked = None

    async def _full_round(self, tail: TailResult | None) -> Round:
        """The shared poll's next full read, with the tail read's tasks. While the request budget holds the poll's
        rounds back, every interval without it is an *interim* round of the tail read's tasks (incomplete: new
        tasks at the end fire, nothing else changes), so that a task created and solved while the full read waits
        (an hour, when the day's share is spent) is still seen; the question stays asked."""
        if self._asked is None:
            self._asked = self.source.next_snapshot(None)
        while not self._asked.done():
            await asyncio.wait({self._asked}, timeout=self.trigger.poll_interval)
            poller = self.source.poller
            if not self._asked.done() and tail is not None and poller is not None and poller.budget.stretched:
                return _interim(tail)
        snapshot, self._asked = self._asked.result(), None
        if snapshot is None:  # no deadline was given, so this cannot happen
            return Round.failed("the shared poll stopped")
        if not snapshot.ok:
            return Round.failed(snapshot.error or "the shared account poll failed")
        trigger = self.trigger
        # Parsed page by page while the tracker iterates them in its thread: 50,000 records built here at once
        # held the loop for ~0.4 s and ~100 MB until the round was judged (docs/triggerer-scale.md).
        extra = [t.to_api_dict() for t in tail.tasks] if tail is not None else []
        records = SnapshotRecords(snapshot, trigger.watch, [t for t in extra if trigger.matches(t)])
        trusted = snapshot.verified and not snapshot.rejected and snapshot.total == len(snapshot.tasks)
        order = QueueOrder(tuple(t[TASK_ID] for t in snapshot.tasks)) if trusted else None
        return Round(
            True,
            records,
            complete=snapshot.verified,
            rejected=snapshot.rejected,
            order=order,
            requests=tail.requests if tail is not None else 0,
            doubt=tail.doubt if tail is not None else None,
        )
