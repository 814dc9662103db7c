"""One round of direct reads (:class:`DirectReads`), for one gate or many, as an exchange without I/O."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from airflow_provider_debitura.gate.records import (
    DOCUMENTED_TYPES,
    NEW_TYPES,
    TASK_TYPE,
    PackedTask,
    RecordBatch,
    TaskPageBatch,
    account_tasks_call,
    case_tasks_call,
    count_call,
    is_account_level,
    is_new_type,
    learned_types,
    rejected_scope,
)
from airflow_provider_debitura.gate.snapshot import (
    UNREADABLE_ACCOUNT_RECORD,
    UNREADABLE_CASE_RECORD,
    AccountSnapshot,
    queue_seen_just_now,
)
from airflow_provider_debitura.gate.verdict import Part, part_from, part_from_error
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.endpoints import ApiCall
from airflow_provider_debitura.hooks.exchange import Exchange

__all__ = ["FAILED_READS_PER_ROUND", "DirectReads"]

log = logging.getLogger(__name__)

FAILED_READS_PER_ROUND = 3
"""After this many transient failures in one round of direct reads the rest are skipped (still blocked):
a server that is down is not asked N more times."""


@dataclass
class DirectReads(Exchange["DirectReads"]):
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

    An :class:`~airflow_provider_debitura.hooks.exchange.Exchange`: ``hook.exchange(reads)`` (the async hook
    with the connection's ``slots``) sends the cases first, as one batch (concurrently is fine; once
    :attr:`tripped`, the cases not yet sent are skipped), then the account-level pages one at a time, and
    returns the reads; :meth:`snapshot` holds the answers. Cases first, then the account: an account-level
    task raised while the cases are read is still seen. A failed read is an answer (:func:`part_from_error`).

    :param case_ids: the cases to read.
    :param account_types: the account-level types some gate needs (empty: no account-level read).
    :param prove_new_types: make the reads above that rule out a caseless task of a new type; None (default):
        unless a read of the whole queue in the same task ended less than ``snapshot.QUEUE_SEEN_FOR`` ago (the shared
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
    _account_tasks: list[PackedTask] = field(default_factory=list)
    _scan_tasks: list[PackedTask] = field(default_factory=list)
    _page: int = 1
    _total: int | None = None
    _phase: str = "account"
    _known: tuple[str, ...] = ()
    _filter: tuple[str, ...] = ()
    _asked: dict[str, str] = field(default_factory=dict)
    """The path of each case call sent, and its case."""

    def __post_init__(self) -> None:
        self.case_ids = tuple(dict.fromkeys(c.lower() for c in self.case_ids))
        learned = set(learned_types()) if NEW_TYPES in self.account_types else set()
        self._known = tuple(sorted(DOCUMENTED_TYPES | learned))
        self._filter = tuple(sorted((self.account_types - {NEW_TYPES}) | learned))
        if self.prove_new_types is None:
            self.prove_new_types = not queue_seen_just_now()

    @property
    def tripped(self) -> bool:
        """Too many reads failed this round: the cases not yet sent are skipped."""
        return self.failures >= FAILED_READS_PER_ROUND

    def next_calls(self) -> Sequence[ApiCall[Any]]:
        """Every case still to read; once they are read, the next account-level read; then nothing."""
        cases = [case_id for case_id in self.case_ids if case_id not in self.cases]
        if cases:
            calls = [case_tasks_call(case_id) for case_id in cases]
            self._asked.update((call.path, case_id) for call, case_id in zip(calls, cases, strict=True))
            return calls
        account = self._account_call()
        return [] if account is None else [account]

    def still_wanted(self, call: ApiCall[Any]) -> bool:
        """False for a case once :attr:`tripped`: it is skipped (unknown) instead.

        :param call: the call about to be sent.
        """
        case_id = self._asked.get(call.path)
        if case_id is None or not self.tripped:
            return True
        self.cases[case_id] = Part.unknown(f"skipped after {self.failures} failed reads in this round")
        return False

    def feed(self, call: ApiCall[Any], answer: object) -> None:
        """Take a case's records or an account-level page, or the error its read ended with.

        :param call: the call.
        :param answer: the parsed answer, or the error.
        """
        self.requests += 1
        case_id = self._asked.get(call.path)
        if case_id is not None:
            self.cases[case_id] = (
                self._failed(answer) if isinstance(answer, BaseException) else part_from(cast(RecordBatch, answer))
            )
        else:
            self._feed_account(cast("TaskPageBatch | BaseException", answer))

    def result(self) -> DirectReads:
        """The reads, filled (:meth:`snapshot` turns them into a snapshot)."""
        return self

    def _account_call(self) -> ApiCall[TaskPageBatch] | None:
        """The next account-level read (a filtered page, a page of the whole queue, the count), or None."""
        if not self.account_types or self.account is not None:
            return None
        if self._phase == "count":
            return count_call(self._known)
        return account_tasks_call(self._page, None if self._phase == "scan" else self._filter)

    def _feed_account(self, answer: TaskPageBatch | BaseException) -> None:
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
        seen = {t[TASK_TYPE] for t in self._account_tasks}
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
