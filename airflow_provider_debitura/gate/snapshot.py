"""What one round read for every gate on a connection (:class:`AccountSnapshot`), without I/O. One round of
direct reads is :class:`~airflow_provider_debitura.gate.direct_reads.DirectReads`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_provider_debitura.gate.records import (
    CASE_ID,
    TASK_ID,
    PackedTask,
    RecordBatch,
    compact,
    is_account_level,
    is_new_type,
    rejected_scope,
)
from airflow_provider_debitura.gate.verdict import GateSpec, GateVerdict, Part
from airflow_provider_debitura.models import RejectedRecord, Task

QUEUE_SEEN_FOR = 1.0
"""Seconds during which a read of the whole queue stands for the proof that no caseless task of a new type is
open, for direct reads made after it in the same task (the shared poll's confirming reads of the same round)."""

INDEX_CHUNK = 5000
"""Records :meth:`AccountSnapshot.afrom_batch` indexes between two turns of the event loop."""


SMALL_CASE = 16
"""Tasks a case's index entry grows to by copying its tuple; a larger case is collected in a list."""


class _CaseIndex:
    """Open tasks sorted into their case's tuple (lower-cased id) or the account-level list, in pieces.

    A tuple per case, not a list: a list lives tracked through the loop turns of the indexing and was promoted to
    the collector's oldest generation, 10,000 a round at 50,000 open tasks (a plain tuple of packed tasks is
    untracked at once). A tuple grows by copying, so a case past :data:`SMALL_CASE` tasks (rare: most hold a few)
    is collected in a list, made a tuple at the end: indexing stays linear in the tasks of the largest case.
    """

    def __init__(self) -> None:
        self.by_case: dict[str, tuple[PackedTask, ...]] = {}
        self.account: list[PackedTask] = []
        self._large: dict[str, list[PackedTask]] = {}

    def add(self, tasks: Iterable[PackedTask]) -> None:
        by_case, large = self.by_case, self._large
        for task in tasks:
            case_id = task[CASE_ID]
            if not case_id:
                if is_account_level(task):
                    self.account.append(task)
                continue
            key = case_id.lower()
            grown = large.get(key)
            if grown is not None:
                grown.append(task)
                continue
            have = by_case.get(key, ())
            if len(have) < SMALL_CASE:
                by_case[key] = (*have, task)
            else:
                large[key] = [*have, task]

    def done(self) -> dict[str, tuple[PackedTask, ...]]:
        """The index by case (the large cases' lists made tuples)."""
        self.by_case.update((key, tuple(grown)) for key, grown in self._large.items())
        self._large = {}
        return self.by_case


_QUEUE_SEEN: ContextVar[float | None] = ContextVar("debitura_gate_queue_seen", default=None)


def queue_seen_just_now() -> bool:
    """Whether a read of the whole queue in this task ended less than :data:`QUEUE_SEEN_FOR` ago; True only once
    (it stands for the proof for one round's confirming reads only)."""
    seen = _QUEUE_SEEN.get()
    if seen is None or time.monotonic() - seen > QUEUE_SEEN_FOR:
        return False
    _QUEUE_SEEN.set(None)
    return True


UNREADABLE_CASE_RECORD = "a task record of this case could not be read"
UNREADABLE_ACCOUNT_RECORD = "an account-level task record could not be read"
UNREADABLE_ANY_RECORD = "a task record whose case cannot be read could belong to any case"


@dataclass(frozen=True)
class AccountSnapshot:
    """What one round read, for every gate on a connection: the open tasks by case, the open
    account-level tasks, and what a case that was not read separately gets (:attr:`rest`).

    A full read of the queue indexes every open task once (``rest`` is "no tasks"); a round of direct
    reads holds just the cases it read (``rest`` is "not read"). Tasks are packed (plain tuples of strings)
    throughout, so that holding one costs the triggerer's garbage collector nothing.
    """

    taken_at: float
    """Wall-clock time when the reads started."""
    by_case: Mapping[str, tuple[PackedTask, ...]] = field(default_factory=dict)
    account: Part = field(default_factory=lambda: Part.unknown("the account-level tasks were not read"))
    rest: Part = field(default_factory=lambda: Part.unknown("the case was not read"))
    patches: Mapping[str, Part] = field(default_factory=dict)
    """Per-case answers that override ``by_case``: a record that could not be read, a direct re-read."""
    tasks: tuple[PackedTask, ...] = ()
    """Every open task of a full read, packed (for subscribers that need the whole queue)."""
    total: int = 0
    error: str | None = None
    full: bool = False
    """The queue was read in full (every page), successfully or not."""
    pages: tuple[str, ...] = ()
    """The full read's task records as JSON text, one string per page (only when a subscriber asked)."""
    started: float = 0.0
    """Event-loop time when the round started (gates pace their next check from it)."""
    doubt_all: str | None = None
    """Set when a record that may belong to any case could not be read: every case not re-read is unknown."""
    rejected: tuple[RejectedRecord, ...] = ()
    """The full read's records that could not be understood (the watcher reports them once)."""
    account_direct: bool = False
    """The account-level part comes from a direct read: the account-level read itself, or a full read that was
    one atomic answer (one page whose records match its own total). A gate opens only on direct reads."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def verified(self) -> bool:
        return self.full and self.ok and self.rest.complete

    @classmethod
    def failed(cls, error: str, taken_at: float, *, full: bool = True) -> AccountSnapshot:
        doubt = Part.unknown(error)
        return cls(taken_at, account=doubt, rest=doubt, error=error, full=full)

    @classmethod
    def from_tasks(
        cls, tasks: Iterable[Task | PackedTask], taken_at: float, *, verified: bool = True
    ) -> AccountSnapshot:
        """A full snapshot from already-read tasks (``Task`` models or compact tuples).

        :param tasks: every task of a full listing (a ``Records``/``Listing`` also carries its rejects).
        :param taken_at: when the listing started.
        :param verified: whether the listing guarantees it missed no task.
        """
        compacts = tuple(t if isinstance(t, tuple) else compact(t) for t in tasks if isinstance(t, tuple) or t.is_open)
        rejected = tuple(getattr(tasks, "rejected", ()))
        return cls.from_batch(RecordBatch(compacts, rejected), taken_at, verified=verified)

    @classmethod
    def from_batch(
        cls,
        batch: RecordBatch,
        taken_at: float,
        *,
        verified: bool,
        pages: tuple[str, ...] = (),
        total: int | None = None,
        unverified_reason: str | None = None,
    ) -> AccountSnapshot:
        """Index a full read once, so each gate's verdict is a dict lookup.

        :param batch: the records of the whole listing.
        :param taken_at: when the listing started.
        :param verified: whether the listing guarantees it missed no task open for the whole read.
        :param pages: the records as JSON text, for subscribers that asked for them.
        :param total: the queue's size as the API reported it.
        :param unverified_reason: why the listing is not verified.
        """
        index = _CaseIndex()
        index.add(batch.open)
        return cls._indexed(batch, index, taken_at, verified, pages, total, unverified_reason)

    @classmethod
    async def afrom_batch(
        cls,
        batch: RecordBatch,
        taken_at: float,
        *,
        verified: bool,
        pages: tuple[str, ...] = (),
        total: int | None = None,
        unverified_reason: str | None = None,
    ) -> AccountSnapshot:
        """:meth:`from_batch` for the event loop: it lets the loop run every :data:`INDEX_CHUNK` records (50,000
        open tasks held a triggerer's loop for some 100 ms in one piece). Same parameters, same snapshot.

        :param batch: the records of the whole listing.
        :param taken_at: when the listing started.
        :param verified: whether the listing guarantees it missed no task open for the whole read.
        :param pages: the records as JSON text, for subscribers that asked for them.
        :param total: the queue's size as the API reported it.
        :param unverified_reason: why the listing is not verified.
        """
        index = _CaseIndex()
        for start in range(0, len(batch.open), INDEX_CHUNK):
            index.add(batch.open[start : start + INDEX_CHUNK])
            await asyncio.sleep(0)
        return cls._indexed(batch, index, taken_at, verified, pages, total, unverified_reason)

    @classmethod
    def _indexed(
        cls,
        batch: RecordBatch,
        index: _CaseIndex,
        taken_at: float,
        verified: bool,
        pages: tuple[str, ...],
        total: int | None,
        unverified_reason: str | None,
    ) -> AccountSnapshot:
        doubt = (
            None if verified else f"the listing could not rule out a missed task ({unverified_reason or 'unverified'})"
        )
        scopes = {rejected_scope(r) for r in batch.rejected}
        account_part = Part(tuple(index.account), complete=verified, reason=doubt)
        if scopes & {"account", "any"}:
            account_part = Part.unknown(UNREADABLE_ACCOUNT_RECORD)
        patches = {
            r.case_id.lower(): Part.unknown(UNREADABLE_CASE_RECORD)
            for r in batch.rejected
            if r.scope == "case" and r.case_id
        }
        # The whole queue was read: direct reads that follow in this round need not prove again that no caseless
        # task of a new type is open (one it saw keeps the gates blocked, also after with_reads).
        _QUEUE_SEEN.set(time.monotonic())
        return cls(
            taken_at,
            index.done(),
            account_part,
            Part(complete=verified, reason=doubt),
            patches,
            batch.open,
            len(batch.open) if total is None else total,
            full=True,
            pages=pages,
            doubt_all=UNREADABLE_ANY_RECORD if "any" in scopes else None,
            rejected=tuple(batch.rejected),
        )

    def from_full_read(self, case_id: str) -> bool:
        """Whether this snapshot's answer for the case comes from the full read of the queue (not from a read
        of the case itself): such an answer cannot tell a case with no tasks from a case that is gone.

        :param case_id: the case GUID.
        """
        return self.full and case_id.lower() not in self.patches

    def direct_for(self, spec: GateSpec) -> bool:
        """Whether every part the gate counts was read directly: its own case, and the account-level tasks when
        they can block it. A shared read may keep a gate blocked (a task seen open was open); a gate opens only
        when this holds (docs/gates.md, "The principle").

        :param spec: the gate.
        """
        if not self.full:
            return True
        return not self.from_full_read(spec.case_id) and (not spec.needs_account or self.account_direct)

    def case_part(self, case_id: str) -> Part:
        """What this snapshot knows of one case's open tasks.

        :param case_id: the case GUID.
        """
        key = case_id.lower()
        patch = self.patches.get(key)
        if patch is not None:
            return patch
        if self.doubt_all is not None:
            return Part.unknown(self.doubt_all)
        tasks = self.by_case.get(key)
        if tasks is None:
            return self.rest
        return Part(tasks, complete=self.rest.complete, reason=self.rest.reason) if self.full else Part(tasks)

    def verdict_for(self, spec: GateSpec) -> GateVerdict:
        """The gate's verdict from this snapshot.

        :param spec: the gate.
        """
        return spec.verdict(self.case_part(spec.case_id), self.account)

    def verdict(
        self, case_id: str, *, blocking_types: Sequence[str] | None = None, include_account_tasks: bool = True
    ) -> GateVerdict:
        """The verdict for one case (same rule as every other path).

        :param case_id: the case GUID.
        :param blocking_types: the blocking types, None for every type.
        :param include_account_tasks: whether account-level tasks count.
        """
        return self.verdict_for(GateSpec.of(case_id, blocking_types, include_account_tasks))

    def with_reads(self, cases: Mapping[str, Part], account: Part | None) -> AccountSnapshot:
        """This snapshot with some parts replaced by direct re-reads (the fallback of a doubtful full read).

        :param cases: re-read cases.
        :param account: the re-read account-level tasks, None when not re-read.
        """
        if account is not None and account.known:
            # A caseless task of a new type the shared read saw was open: it keeps the gates that count it blocked,
            # whether or not the direct read asked for its type.
            ids = {t[TASK_ID] for t in account.tasks}
            seen = tuple(t for t in self.account.tasks if is_new_type(t) and t[TASK_ID] not in ids)
            account = replace(account, tasks=account.tasks + seen) if seen else account
        return replace(
            self,
            patches={**self.patches, **cases},
            account=account if account is not None else self.account,
            account_direct=self.account_direct or account is not None,
        )

    def records(self, ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The full task records of a full read (JSON as the API sent it), in listing order.

        :param ids: only these task ids (None: every open task). Needs a poller subscriber that asked for records.
        """
        wanted = None if ids is None else set(ids)
        open_ids = {t[TASK_ID] for t in self.tasks}
        out: dict[str, dict[str, Any]] = {}
        for text in self.pages:  # a task shifted onto a page read later shows twice: the later copy wins
            for record in json.loads(text) or ():
                task_id = record.get("id") if isinstance(record, dict) else None
                if isinstance(task_id, str) and task_id in open_ids and (wanted is None or task_id in wanted):
                    out[task_id] = record
        return list(out.values())
