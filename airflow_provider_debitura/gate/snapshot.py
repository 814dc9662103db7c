"""What one round read for every gate on a connection (:class:`AccountSnapshot`), and one round of direct
reads (:class:`DirectReads`), without I/O."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_provider_debitura.gate.records import (
    CASE_ID,
    DOCUMENTED_TYPES,
    ID,
    NEW_TYPES,
    TYPE,
    CompactTask,
    RecordBatch,
    TaskPageBatch,
    account_tasks_call,
    case_tasks_call,
    compact,
    count_call,
    is_account_level,
    is_new_type,
    learned_types,
    rejected_scope,
)
from airflow_provider_debitura.gate.verdict import GateSpec, GateVerdict, Part, part_from, part_from_error
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.endpoints import ApiCall
from airflow_provider_debitura.models import RejectedRecord, Task

log = logging.getLogger(__name__)

QUEUE_SEEN_FOR = 1.0
"""Seconds during which a read of the whole queue stands for the proof that no caseless task of a new type is
open, for direct reads made after it in the same task (the shared poll's confirming reads of the same round)."""

INDEX_CHUNK = 5000
"""Records :meth:`AccountSnapshot.afrom_batch` indexes between two turns of the event loop."""


def _index_into(
    tasks: Iterable[CompactTask], by_case: dict[str, list[CompactTask]], account: list[CompactTask]
) -> None:
    """Sort open tasks into their case's list (lower-cased id) or the account-level list."""
    for task in tasks:
        case_id = task[CASE_ID]
        if is_account_level(task):
            account.append(task)
        elif case_id:
            by_case[case_id.lower()].append(task)


_QUEUE_SEEN: ContextVar[float | None] = ContextVar("debitura_gate_queue_seen", default=None)

FAILED_READS_PER_ROUND = 3
"""After this many transient failures in one round of direct reads the rest are skipped (still blocked):
a server that is down is not asked N more times."""

UNREADABLE_CASE_RECORD = "a task record of this case could not be read"
UNREADABLE_ACCOUNT_RECORD = "an account-level task record could not be read"
UNREADABLE_ANY_RECORD = "a task record whose case cannot be read could belong to any case"


@dataclass(frozen=True)
class AccountSnapshot:
    """What one round read, for every gate on a connection: the open tasks by case, the open
    account-level tasks, and what a case that was not read separately gets (:attr:`rest`).

    A full read of the queue indexes every open task once (``rest`` is "no tasks"); a round of direct
    reads holds just the cases it read (``rest`` is "not read"). Tuples of strings throughout, so that
    holding one costs the triggerer's garbage collector nothing.
    """

    taken_at: float
    """Wall-clock time when the reads started."""
    by_case: Mapping[str, tuple[CompactTask, ...]] = field(default_factory=dict)
    account: Part = field(default_factory=lambda: Part.unknown("the account-level tasks were not read"))
    rest: Part = field(default_factory=lambda: Part.unknown("the case was not read"))
    patches: Mapping[str, Part] = field(default_factory=dict)
    """Per-case answers that override ``by_case``: a record that could not be read, a direct re-read."""
    tasks: tuple[CompactTask, ...] = ()
    """Every open task of a full read (for subscribers that need the whole queue)."""
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
        cls, tasks: Iterable[Task | CompactTask], taken_at: float, *, verified: bool = True
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
        by_case: dict[str, list[CompactTask]] = defaultdict(list)
        account: list[CompactTask] = []
        _index_into(batch.open, by_case, account)
        return cls._indexed(batch, by_case, account, taken_at, verified, pages, total, unverified_reason)

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
        by_case: dict[str, list[CompactTask]] = defaultdict(list)
        account: list[CompactTask] = []
        for start in range(0, len(batch.open), INDEX_CHUNK):
            _index_into(batch.open[start : start + INDEX_CHUNK], by_case, account)
            await asyncio.sleep(0)
        return cls._indexed(batch, by_case, account, taken_at, verified, pages, total, unverified_reason)

    @classmethod
    def _indexed(
        cls,
        batch: RecordBatch,
        by_case: dict[str, list[CompactTask]],
        account: list[CompactTask],
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
        account_part = Part(tuple(account), complete=verified, reason=doubt)
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
            {k: tuple(v) for k, v in by_case.items()},
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
            ids = {t[ID] for t in account.tasks}
            seen = tuple(t for t in self.account.tasks if is_new_type(t) and t[ID] not in ids)
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
        open_ids = {t[ID] for t in self.tasks}
        out: dict[str, dict[str, Any]] = {}
        for text in self.pages:  # a task shifted onto a page read later shows twice: the later copy wins
            for record in json.loads(text) or ():
                task_id = record.get("id") if isinstance(record, dict) else None
                if isinstance(task_id, str) and task_id in open_ids and (wanted is None or task_id in wanted):
                    out[task_id] = record
        return list(out.values())


@dataclass
class DirectReads:
    """The reads of one round of direct checks, for one gate or many: one read per distinct case, and
    the account-level tasks once (page 1; a further page only while a needed type is still unseen).

    When some gate counts every type (:data:`NEW_TYPES` in ``account_types``) and could open (a case read
    showed no open task, and the account-level read none either), the read must also rule out a caseless
    task of a type this provider does not know: page 1 of the whole open queue (one request; when the queue
    fits in it, that is the proof), else one count of the open tasks of the known types (documented, or seen
    in this process) against the queue's total. Equal: no task of another type is open anywhere. Different:
    the queue is read on, unfiltered, until a caseless task of a new type shows or the queue ends (the new
    names are remembered, so later rounds ask for them by name). Doubt never opens a gate; see
    docs/gates-unknown-types.md.

    Drive it: send each of :meth:`case_calls` (concurrently is fine) with :meth:`feed_case` (or
    :meth:`skip_case` once :attr:`tripped`), then :meth:`account_call` / :meth:`feed_account` until it
    returns None; :meth:`snapshot` holds the answers. Cases first, then the account: an account-level
    task raised while the cases are read is still seen.

    :param case_ids: the cases to read.
    :param account_types: the account-level types some gate needs (empty: no account-level read).
    :param prove_new_types: make the reads above that rule out a caseless task of a new type; None (default):
        unless a read of the whole queue in the same task ended less than :data:`QUEUE_SEEN_FOR` ago (the shared
        poll's confirming reads follow its full read: that read stands for the proof, and keeps blocked the gates
        of a new caseless task it saw). False: never.
    """

    case_ids: Iterable[str]
    account_types: frozenset[str] = frozenset()
    prove_new_types: bool | None = None
    cases: dict[str, Part] = field(default_factory=dict)
    account: Part | None = None
    failures: int = 0
    requests: int = 0
    """Answers fed so far: the requests this round sent."""
    scanned: int = 0
    """Pages of the whole queue read for caseless tasks of a new type."""
    counted: int | None = None
    """The open tasks of the known types, when they had to be counted."""
    forward: bool = False
    """The whole queue's totals contradicted its pages: it is read on to a short page, without a count."""
    _account_tasks: list[CompactTask] = field(default_factory=list)
    _scan_tasks: list[CompactTask] = field(default_factory=list)
    _page: int = 1
    _total: int | None = None
    _phase: str = "account"
    _known: tuple[str, ...] = ()
    _filter: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.case_ids = tuple(dict.fromkeys(c.lower() for c in self.case_ids))
        learned = set(learned_types()) if NEW_TYPES in self.account_types else set()
        self._known = tuple(sorted(DOCUMENTED_TYPES | learned))
        self._filter = tuple(sorted((self.account_types - {NEW_TYPES}) | learned))
        if self.prove_new_types is None:
            seen = _QUEUE_SEEN.get()
            self.prove_new_types = seen is None or time.monotonic() - seen > QUEUE_SEEN_FOR
            if not self.prove_new_types:
                _QUEUE_SEEN.set(None)  # one round's confirming reads only

    @property
    def tripped(self) -> bool:
        return self.failures >= FAILED_READS_PER_ROUND

    def account_call(self) -> ApiCall[TaskPageBatch] | None:
        """The next account-level read (a filtered page, a page of the whole queue, the count), or None."""
        if not self.account_types or self.account is not None:
            return None
        if self._phase == "count":
            return count_call(self._known)
        return account_tasks_call(self._page, None if self._phase == "scan" else self._filter)

    def feed_account(self, answer: TaskPageBatch | BaseException) -> None:
        """Take the answer to :meth:`account_call` (or the error it ended with).

        :param answer: the page, or the error.
        """
        self.requests += 1
        if isinstance(answer, BaseException):
            self.account = self._failed(answer)
        elif self._phase == "count":
            self._feed_count(answer)
        else:
            batch = answer.batch
            consistent, last = self._page_step(answer)
            if {rejected_scope(r) for r in batch.rejected} & {"account", "any"}:
                self.account = Part.unknown(UNREADABLE_ACCOUNT_RECORD)
            elif not consistent:
                self.account = Part.unknown("the account-level listing changed or disagreed with its own count")
            elif self._phase == "scan":
                self._feed_scan(batch, last)
            else:
                self._feed_filtered(batch, last)

    def _feed_filtered(self, batch: RecordBatch, last: bool) -> None:
        self._account_tasks.extend(t for t in batch.open if is_account_level(t))
        self.cases.update(
            {r.case_id.lower(): Part.unknown(UNREADABLE_CASE_RECORD) for r in batch.rejected if r.case_id}
        )
        seen = {t[TYPE] for t in self._account_tasks}
        if not last and (self.account_types - {NEW_TYPES}) <= seen:
            self.account = Part(tuple(self._account_tasks), complete=False, reason="only the first page(s) were read")
        elif not last:
            self._page += 1
        elif self._may_open_on_new_types():
            self._phase, self._page, self._total = "scan", 1, None
        else:
            self.account = Part(tuple(self._account_tasks))

    def _feed_scan(self, batch: RecordBatch, last: bool) -> None:
        self.scanned += 1
        self._scan_tasks.extend(t for t in batch.open if is_account_level(t))
        if last or any(is_new_type(t) for t in self._scan_tasks):
            # Complete for every gate: the filtered read saw every known account-level type, and a caseless task
            # of a new type blocks each gate that counts new types, whatever the rest of the queue holds.
            self.account = Part(tuple(self._scan_tasks))
        elif self.counted is None and not self.forward:
            self._phase = "count"
        else:
            self._page += 1

    def _feed_count(self, answer: TaskPageBatch) -> None:
        self.counted = answer.page.total_results
        if self.counted is not None and self.counted == self._total:
            self.account = Part(tuple(self._account_tasks))  # no open task of another type, anywhere
            return
        log.warning(
            "The account has %s open task(s), %s of them of the types this provider knows: reading the queue on "
            "for a task raised with no case of a type it does not know (a gate does not open on doubt)",
            self._total, self.counted,
        )  # fmt: skip
        self._phase, self._page = "scan", self._page + 1

    def _page_step(self, answer: TaskPageBatch) -> tuple[bool, bool]:
        """(consistent, last) for one page of a paged read: the total held still and the page held what it said.
        A read of the whole queue whose totals contradict its pages reads on to a short page instead (totals are
        then not trusted: no count, :attr:`forward`)."""
        size, total = endpoints.MAX_PAGE_SIZE, answer.page.total_results
        if total is None or self.forward:  # the spec makes it optional: then only a short page ends the listing
            return True, answer.raw_count < size
        expected = min(size, max(0, total - (self._page - 1) * size))
        consistent = (self._total is None or total == self._total) and answer.raw_count == expected
        if not consistent and self._phase == "scan":
            self.forward, self._total = True, None
            return True, answer.raw_count < size
        self._total = total
        return consistent, self._page * size >= total

    def _may_open_on_new_types(self) -> bool:
        """Whether a gate that counts every type could open: no account-level task was seen (any would block it),
        and some case read showed no open task."""
        if not self.prove_new_types or NEW_TYPES not in self.account_types or self._account_tasks:
            return False
        return any(part.settled and not part.tasks for part in self.cases.values())

    def case_calls(self) -> list[tuple[str, ApiCall[RecordBatch]]]:
        """(case, call) for every case still to read."""
        return [(case_id, case_tasks_call(case_id)) for case_id in self.case_ids if case_id not in self.cases]

    def feed_case(self, case_id: str, answer: RecordBatch | BaseException) -> None:
        """Take one case's answer (or the error it ended with).

        :param case_id: the case.
        :param answer: its records, or the error.
        """
        self.requests += 1
        self.cases[case_id] = self._failed(answer) if isinstance(answer, BaseException) else part_from(answer)

    def skip_case(self, case_id: str) -> None:
        """Do not read this case this round (too many reads failed).

        :param case_id: the case.
        """
        self.cases[case_id] = Part.unknown(f"skipped after {self.failures} failed reads in this round")

    def _failed(self, exc: BaseException) -> Part:
        part = part_from_error(exc)
        if part.error is None:
            self.failures += 1
        return part

    def snapshot(self, taken_at: float) -> AccountSnapshot:
        """What the round read, as a snapshot that answers just these cases.

        :param taken_at: when the round started (wall clock).
        """
        by_case = {c: p.tasks for c, p in self.cases.items() if p.settled}
        patches = {c: p for c, p in self.cases.items() if not p.settled}
        account = self.account if self.account is not None else Part.unknown("the account-level tasks were not read")
        return AccountSnapshot(taken_at, by_case, account, patches=patches)
