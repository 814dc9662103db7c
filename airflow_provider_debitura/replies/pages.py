"""Plan, capped account scope: read the chat-task listing one page at a time, only as far as the run needs.

With ``max_replies=K`` a run answers at most K cases, oldest first, so it reads ``GET /tasks`` (chat types, oldest
first, 100 a page) page by page, takes each page's cases in order and stops once K of them need an answer or the
listing ends. A page shows only part of a case's open chat tasks (the others may sit on pages not read), and one
creditor message clears all of them, so each case is examined from its own read, ``GET /cases/{id}/tasks`` with the
run's chat types: a case is acted on only from direct reads. Cost and reasons: docs/operators.md, "Cost, in
requests".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.paging import pages_for
from airflow_provider_debitura.models import Records, RejectedRecord, Task, TaskPage
from airflow_provider_debitura.replies.failures import case_failure
from airflow_provider_debitura.replies.plan import CaseCandidate, CaseReader, CaseReading, read_one, select_cases
from airflow_provider_debitura.replies.report import ReplyReport

__all__ = ["PAGE_SIZE", "ListingPages", "PageReader", "describe_pages", "pages_needed", "read_pages"]

PAGE_SIZE = endpoints.MAX_PAGE_SIZE
"""Tasks per listing page (the API's maximum)."""

MAX_PAGES = 1_000
"""Bound on the pages one run reads from a server that reports no ``totalResults`` (100,000 tasks)."""

RESOLVED = "resolved meanwhile: the case's own read (GET /cases/{id}/tasks) shows no open chat task any more"
NOT_OPEN = "no longer open: the case's own read (GET /cases/{id}/tasks) does not list it"


class PageReader(CaseReader, Protocol):
    """What the paged plan reads: listing pages, a case's own tasks, its history and the case (``DebituraHook``)."""

    def get_tasks_page(
        self, *, status: str | None = "Open", types: Sequence[str] | None = None, page: int = 1, page_size: int = 100
    ) -> TaskPage:
        """One page of ``GET /tasks``.

        :param status: the ``status`` filter.
        :param types: the ``type`` filter.
        :param page: 1-based page number.
        :param page_size: tasks per page.
        """

    def get_case_tasks(
        self, case_id: str, *, status: str | None = "Open", types: Sequence[str] | None = None
    ) -> Records[Task]:
        """``GET /cases/{id}/tasks``.

        :param case_id: the case GUID.
        :param status: the ``status`` filter.
        :param types: the ``type`` filter.
        """


FirstPage = Callable[["ListingPages", TaskPage, int], None]
"""Called after page 1 with what is known then and the cases on it (the operator's budget check)."""


@dataclass
class ListingPages:
    """What a paged plan read of the listing (for the log, the report and the budget).

    :param pages_read: ``GET /tasks`` requests made.
    :param total: ``totalResults`` of the last page read: the open chat tasks (None: the API gave none).
    :param ended: the listing's last page was read (every open chat task was seen).
    :param left_cases: cases seen on the pages read but not examined (the cap was reached first).
    :param left_tasks: their tasks, as far as the pages read show them.
    :param examined: cases examined (each read directly).
    """

    pages_read: int = 0
    total: int | None = None
    ended: bool = False
    left_cases: list[str] = field(default_factory=list)
    left_tasks: int = 0
    examined: int = 0

    @property
    def pages(self) -> int | None:
        """Pages the whole listing fills, from ``total`` (None when unknown)."""
        return None if self.total is None else pages_for(self.total, PAGE_SIZE)


def describe_pages(listing: ListingPages, answering: int, max_replies: int) -> str:
    """One log line: what the run read of the listing and what it leaves (known only as far as the pages read).

    :param listing: what the plan read.
    :param answering: cases that need an answer.
    :param max_replies: the cap.
    """
    pages = f" of {listing.pages:,}" if listing.pages is not None else ""
    total = f"; the listing counts {listing.total:,} open chat task(s) in all" if listing.total is not None else ""
    line = (
        f"Read {listing.pages_read:,}{pages} listing page(s) and {listing.examined:,} case(s) directly: "
        f"{answering:,} need an answer (max_replies={max_replies}){total}"
    )
    if listing.ended:
        return line + " (the whole listing was read)."
    left = f"; at least {len(listing.left_cases):,} more case(s) on the pages read" if listing.left_cases else ""
    return line + f"{left}; the pages not read are left for the next run, not read."


def pages_needed(cases_on_page_one: int, max_replies: int, total: int | None) -> int:
    """Listing pages a run of ``max_replies`` cases probably reads, judged from page 1 (at least 1).

    :param cases_on_page_one: the distinct cases page 1 offers.
    :param max_replies: the cap.
    :param total: ``totalResults`` (None: unknown).
    """
    pages = None if total is None else pages_for(total, PAGE_SIZE)
    guess = math.ceil(max_replies / cases_on_page_one) if cases_on_page_one else (pages or 1)
    return max(1, guess if pages is None else min(pages, guess))


@dataclass
class _Run:
    """One paged plan: its reader, its rules and what it has done so far."""

    reader: PageReader
    report: ReplyReport
    types: Collection[str]
    max_replies: int
    read_case: bool
    listing: ListingPages = field(default_factory=ListingPages)
    readings: list[CaseReading] = field(default_factory=list)
    handled: set[str] = field(default_factory=set)
    """Cases examined, failed or blocked in this run: a page that shows one again (offset paging over a live
    queue) is not acted on twice."""
    refused_ids: set[str] = field(default_factory=set)
    unreadable_keys: set[tuple[str | None, str | None, str]] = field(default_factory=set)

    @property
    def full(self) -> bool:
        return len(self.readings) >= self.max_replies

    def read_page(self, number: int) -> TaskPage:
        page = self.reader.get_tasks_page(status="Open", types=list(self.types), page=number, page_size=PAGE_SIZE)
        self.listing.pages_read += 1
        self.listing.total = page.page.total_results
        total = self.listing.total
        self.listing.ended = page.raw_count < PAGE_SIZE or (total is not None and number * PAGE_SIZE >= total)
        return page

    def refuse(self, refused: Sequence[tuple[Task, str]]) -> None:
        for task, reason in refused:
            if task.id not in self.refused_ids:
                self.refused_ids.add(task.id)
                self.report.skip(task.id, task.case_id, reason, task.case_reference)
                self.report.human(task, reason)

    def block_unreadable(self, rejected: Sequence[RejectedRecord]) -> None:
        """A task record that cannot be read blocks its case (the reply would clear a task nobody read)."""
        for record in rejected:
            case_id = (record.case_id or "").strip().lower() or None
            key = (record.id, case_id, record.reason)
            if key in self.unreadable_keys:
                continue
            self.unreadable_keys.add(key)
            reason = f"the task record could not be read ({record.reason}); its case is not answered blind"
            if case_id is None:
                self.report.skip(record.id or "(no id)", None, reason)
                continue
            self.handled.add(case_id)
            self.readings = [r for r in self.readings if r.candidate.case_id != case_id]
            self.report.fail(case_id, None, [record.id or "(no id)"], reason, None)

    def take(self, candidates: Sequence[CaseCandidate]) -> None:
        for candidate in candidates:
            if candidate.case_id in self.handled:
                continue
            if self.full:
                self.listing.left_cases.append(candidate.case_id)
                self.listing.left_tasks += len(candidate.tasks)
                continue
            self.handled.add(candidate.case_id)
            self.listing.examined += 1
            reading = self.examine(candidate)
            if reading is not None:
                self.readings.append(reading)

    def examine(self, listed: CaseCandidate) -> CaseReading | None:
        """Read the case's own open chat tasks and act on those alone; then its history (and the case)."""
        try:
            own = self.reader.get_case_tasks(listed.case_id, status="Open", types=list(self.types))
        except Exception as exc:
            reason = case_failure(exc)
            if reason is None:
                raise
            status = getattr(exc, "status", None)
            ids = [t.id for t in listed.tasks]
            self.report.fail(listed.case_id, listed.reference, ids, reason, status if isinstance(status, int) else None)
            return None
        direct = self.direct_candidate(listed, own)
        return None if direct is None else read_one(self.reader, direct, self.report, self.read_case)

    def direct_candidate(self, listed: CaseCandidate, own: Records[Task]) -> CaseCandidate | None:
        """The case as its own read shows it (None: nothing to answer), every listed task accounted for."""
        if own.rejected:
            reason = (
                f"{len(own.rejected)} of the case's own task records could not be read ({own.rejected[0].reason}); "
                "its case is not answered blind"
            )
            ids = [t.id for t in listed.tasks] + [r.id or "(no id)" for r in own.rejected]
            self.report.fail(listed.case_id, listed.reference, ids, reason, None)
            return None
        mine = [t for t in own if (t.case_id or "").strip().lower() == listed.case_id]
        selection = select_cases(mine, self.types)
        self.refuse(selection.refused)
        still = {t.id for t in mine if t.type in self.types}
        for task in listed.tasks:
            if task.id not in still:
                self.report.skip(task.id, listed.case_id, NOT_OPEN if still else RESOLVED, listed.reference)
        return selection.candidates[0] if selection.candidates else None

    def cap(self) -> None:
        """Record what is known of the cases left for the next run: exact when the listing ended on the pages read;
        otherwise what those pages show, with ``pages_read``, ``pages`` and ``open_chat_tasks`` to say so."""
        listing = self.listing
        if not self.full or (listing.ended and not listing.left_cases):
            return
        self.report.cap(self.max_replies, len(listing.left_cases), listing.left_tasks)
        assert self.report.capped is not None
        if listing.ended:
            return
        self.report.capped["pages_read"] = listing.pages_read
        if listing.total is not None:
            self.report.capped["open_chat_tasks"] = listing.total
        if listing.pages is not None:
            self.report.capped["pages"] = listing.pages


def read_pages(
    reader: PageReader,
    report: ReplyReport,
    *,
    types: Collection[str],
    max_replies: int,
    read_case: bool,
    after_first_page: FirstPage | None = None,
) -> tuple[list[CaseReading], ListingPages]:
    """Read listing pages until ``max_replies`` cases need an answer or the listing ends; each case from its own read.

    A case found on a page is examined once per run: its open chat tasks read directly (its task set: refusals,
    what is pending, what the message renders), then its history (and the case when a template uses ``case``). A case
    whose own read shows no open chat task is skipped ("resolved meanwhile"); a 404 or 400 there is recorded in
    ``report.failed`` and the next case is examined. An unreadable record on a page read blocks its case. The
    ``capped`` entry says what the pages read show of what is left (``cases``, ``tasks``: exact when the listing
    ended on them); when pages were left unread it adds ``open_chat_tasks`` (the listing's total, answered ones
    included), ``pages_read`` and ``pages``: the rest is not known without reading every page.

    :param reader: the hook (or anything with its reads).
    :param report: where skips, refusals, failures and the cap are recorded.
    :param types: the chat-driven types this run answers.
    :param max_replies: stop once this many cases need an answer (at least 1).
    :param read_case: also read each case that needs an answer (a template uses ``case``).
    :param after_first_page: called with the listing so far, page 1 and its number of cases to examine.
    """
    run = _Run(reader, report, types, max_replies, read_case)
    number = 1
    while True:
        page = run.read_page(number)
        selection = select_cases(page.tasks, types, page.rejected)
        run.refuse(selection.refused)
        run.block_unreadable(selection.unreadable)
        fresh = [c for c in selection.candidates if c.case_id not in run.handled]
        if number == 1 and after_first_page is not None:
            after_first_page(run.listing, page, len(fresh))
        run.take(fresh)
        if run.full or run.listing.ended or number >= MAX_PAGES:
            break
        number += 1
    run.cap()
    return run.readings, run.listing
