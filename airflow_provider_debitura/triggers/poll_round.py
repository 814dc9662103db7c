"""What one round of a connection's shared poll reads: the cheaper of two plans, then the confirmations.

- **direct**: one read per distinct case of the due gates, plus *one* read of the account-level tasks shared by
  all of them (``C + 1`` requests; ``C`` without account-level gates);
- **full**: one read of the whole open queue (``P`` pages), which also serves a whole-queue subscriber (the
  watcher); then the direct reads that the gates it would open need (:mod:`.poll_confirm`), within
  ``2 * min(N + 1, P)`` for the round, or ``P + min(U, 100) + 1`` when U of them a verified read saw unblocked.

The queue's size is learned from page 1 of a full read, which doubles as the probe: after it the round either
reads on or switches to direct reads. While gates read directly, page 1 is read again now and then
(:data:`PROBE_EVERY`) to notice a queue that shrank, but only in a round with a request to spare.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, replace

from airflow_provider_debitura.gate import AccountSnapshot, DirectReads, GateSpec
from airflow_provider_debitura.hooks.debitura import DebituraAsyncHook
from airflow_provider_debitura.triggers.poll_confirm import (
    Confirmations,
    account_types_of,
    confirm_room,
    existence_checks,
    sort_gates,
)
from airflow_provider_debitura.triggers.poll_subscribers import Member
from airflow_provider_debitura.triggers.reads import LastReadTasks, QueueRead, full_read_cost, pages_for, read_queue

log = logging.getLogger("airflow_provider_debitura.triggers.shared_poll")

PROBE_EVERY = 10
"""While gates read directly, page 1 of the queue is read again (to notice a queue that shrank) at most
every this many rounds, and only in a round with a request to spare."""


@dataclass(frozen=True)
class RoundPlan:
    """Who a round serves: the due gates, and whether a due subscriber needs the whole queue.

    :param gates: the due gates.
    :param full: a due subscriber needs the whole queue.
    :param records: ... and its full JSON records.
    """

    gates: tuple[GateSpec, ...]
    full: bool
    records: bool = False

    @classmethod
    def of(cls, members: list[Member]) -> RoundPlan:
        """The plan for the due ``members``."""
        gates = tuple(m.gate for m in members if m.gate is not None)
        return cls(gates, any(m.gate is None for m in members), any(m.records for m in members))

    @functools.cached_property
    def cases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(g.case_id for g in self.gates))

    @functools.cached_property
    def account_types(self) -> frozenset[str]:
        return account_types_of(self.gates)

    @functools.cached_property
    def direct_cost(self) -> int:
        """Requests of a direct round: one per distinct case, and one for the account-level tasks."""
        return len(self.cases) + (1 if self.account_types else 0)


class RoundReads:
    """The reads of one connection's shared poll, round after round; the attributes are read-only statistics.

    :param conn_id: the connection (for the log).
    :param hook: its async hook.
    :param slots: its limit on concurrent direct reads.
    """

    def __init__(self, conn_id: str, hook: DebituraAsyncHook, slots: asyncio.Semaphore) -> None:
        self.conn_id, self.hook, self._slots = conn_id, hook, slots
        self.confirmations = Confirmations()
        self._listed = LastReadTasks()
        self._rounds_since_size = 0
        self._plan_text: str | None = None
        self._interval = 60.0
        self.rounds = 0
        """Rounds read (the number of the round being read)."""
        self.requests = 0
        """Requests the current (or last) round sent; a retried request counts once."""
        self.shared_reads = 0
        """Full reads of the queue (failed ones included)."""
        self.direct_rounds = 0
        self.probes = 0
        """Full reads stopped after page 1 because direct reads were cheaper."""
        self.fallback_rounds = 0
        """Rounds in which a full read was followed by direct reads (confirmations)."""
        self.open_total: int | None = None
        """Open tasks at the last page 1 read; None before the first."""

    @property
    def pages(self) -> int | None:
        """Pages of the queue at the last page 1 read (the listing's hint); None before the first."""
        return None if self.open_total is None else pages_for(self.open_total)

    @property
    def full_cost(self) -> int | None:
        """P: requests of a full read with a right hint (:func:`~.reads.full_read_cost`); None before the first."""
        return None if self.open_total is None else full_read_cost(self.open_total)

    async def read(self, plan: RoundPlan, interval: float) -> AccountSnapshot:
        """One round's snapshot for ``plan`` (never raises for a failed read: that is a failed snapshot).

        :param plan: who the round serves.
        :param interval: the poll's interval (for the log).
        """
        self.requests, self._interval = 0, interval
        try:
            return await self._read(plan, time.time())
        finally:
            self.rounds += 1

    async def _read(self, plan: RoundPlan, taken_at: float) -> AccountSnapshot:
        pages, full, cost = self.pages, self.full_cost, plan.direct_cost
        probe = self._rounds_since_size >= PROBE_EVERY and cost <= len(plan.gates)
        if not plan.full and full is not None and cost < full and not probe:
            return await self._direct(plan, taken_at)
        # Page 1 first when the size is unknown (or due for a refresh): it decides between the plans.
        sizing = not plan.full and (pages is None or probe)
        read = await read_queue(
            self.hook,
            keep_pages=plan.records,
            keep_going=(lambda total: full_read_cost(total) <= cost) if sizing else None,
            listed=self._listed,
            pages_hint=None if sizing else pages,
            max_rereads=1 if plan.full else 0,  # a re-read opens no gate: only a whole-queue subscriber needs it
        )
        self.requests += read.requests
        if read.total is not None:
            self.open_total, self._rounds_since_size = read.total, 0
        if read.abandoned:
            self.probes += 1
            return await self._direct(plan, taken_at)
        self.shared_reads += 1
        self._say("full", plan)
        snapshot = await _snapshot_of(read, taken_at)
        # P for the budget: the size the queue told; a read that could not tell (no or a lying total): its pages.
        pages = self.full_cost if read.total is not None or read.error is not None else read.requests
        return await self._confirm(snapshot, plan, pages) if plan.gates else snapshot

    async def _direct(self, plan: RoundPlan, taken_at: float) -> AccountSnapshot:
        self.direct_rounds += 1
        self._rounds_since_size += 1
        self._say("direct", plan)
        reads = await self._send(DirectReads(plan.cases, plan.account_types))
        return reads.snapshot(taken_at)

    async def _confirm(self, snapshot: AccountSnapshot, plan: RoundPlan, pages: int | None) -> AccountSnapshot:
        """The direct reads a full read calls for, in the same round and within the round's budget."""
        opening, held, unblocked = await sort_gates(snapshot, plan.gates)
        account_types = account_types_of(opening) if opening and not snapshot.account_direct else frozenset()
        room = confirm_room(len(plan.gates), pages, self.requests, unblocked=unblocked, account=bool(account_types))
        cases = self.confirmations.choose(opening, held, room, self.rounds, existence_checks(pages))
        if not cases:
            return snapshot
        self.fallback_rounds += 1
        reads = await self._send(DirectReads(cases, account_types))
        return snapshot.with_reads(reads.cases, reads.account)

    async def _send(self, reads: DirectReads) -> DirectReads:
        """Send a round's direct reads (the cases concurrently within the connection's slots), and note them."""
        reads = await self.hook.exchange(reads, slots=self._slots)
        self.requests += reads.requests
        self.confirmations.read(reads.cases, self.rounds)
        return reads

    def _say(self, mode: str, plan: RoundPlan) -> None:
        """One plain log line whenever the way the gates are served changes."""
        gates = len(plan.gates)
        named = [f"{gates:,} gate{'s' if gates != 1 else ''}"] if gates else []
        who = " and ".join([*named, "a task watcher"] if plan.full else named)
        pages = self.pages
        if mode == "full":
            what = f"{who} {'share' if gates + plan.full > 1 else 'uses'} one read of the account's open tasks"
            total = self.open_total or 0
            tasks = f"{total:,} task{'s' if total != 1 else ''}"
            detail = f" ({tasks} in {pages} page{'s' if pages != 1 else ''})" if pages else ""
            text = f"{what}{detail} every {self._interval:g} s"
        else:
            account = " plus one read of the account-level tasks for all of them" if plan.account_types else ""
            text = (
                f"{who} each read their own case{account} every {self._interval:g} s "
                f"(cheaper than reading the {pages}-page queue)"
            )
        if text != self._plan_text:
            log.info("Debitura connection %r: %s", self.conn_id, text)
            self._plan_text = text


async def _snapshot_of(read: QueueRead, taken_at: float) -> AccountSnapshot:
    if read.error is not None or read.batch is None:
        return AccountSnapshot.failed(f"{type(read.error).__name__}: {read.error}", taken_at)
    snapshot = await AccountSnapshot.afrom_batch(
        read.batch,
        taken_at,
        verified=read.verified or read.atomic,  # one page that matches its total: nothing to miss, in any order
        pages=read.pages,
        total=read.total,
        unverified_reason=read.unverified_reason,
    )
    return replace(snapshot, account_direct=read.atomic and snapshot.account.settled)
