"""Reading the whole account queue while it moves: the sans-IO listing that both hooks drive (``hooks.exchange``).

Pages are read from the last to the first, so a task solved meanwhile shifts the tasks still to be
read onto pages already read (a harmless duplicate, dropped by id) instead of past the reader; new
tasks are appended at the end and shift nothing still to be read. The guarantee, the proof, the
checks and the request cost are in ``docs/listing.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.exchange import Exchange, Upcoming, unwrap
from airflow_provider_debitura.models import Records, RejectedRecord, Task, TaskPage

DEFAULT_MAX_REREADS = 1
"""Passes added when a check fails (order or count); after them the result is returned unverified."""

MAX_FORWARD_PAGES = 1_000
"""Bound on a listing of a server that reports no ``totalResults`` (100,000 tasks at 100 per page)."""


class Listing(Records[Task]):
    """The tasks of one listing (a list, oldest first) and what is known about how they were read.

    :param tasks: the tasks, each once.
    :param rejected: records that could not be understood (``models.RejectedRecord``).
    :param verified: every check held, so the guarantee holds: every task open for the whole listing is
        in it exactly once. False: complete as far as the listing could tell, but a check failed.
    :param unverified_reason: why ``verified`` is False.
    :param requests: ``GET /tasks`` requests made.
    :param total: ``totalResults`` of the last page read (page 1), the queue size at the end.
    :param pages: pages of ``page_size`` that ``total`` fills: the ``pages_hint`` for the next listing.
    :param duplicates: repeats dropped (tasks shifted onto a page already read).
    :param rereads: passes added because a check failed.
    """

    def __init__(
        self,
        tasks: Iterable[Task] = (),
        rejected: Iterable[RejectedRecord] = (),
        *,
        verified: bool = True,
        unverified_reason: str | None = None,
        requests: int = 0,
        total: int | None = None,
        pages: int = 1,
        duplicates: int = 0,
        rereads: int = 0,
    ) -> None:
        super().__init__(tasks, rejected)
        self.verified = verified
        self.unverified_reason = unverified_reason
        self.requests = requests
        self.total = total
        self.pages = pages
        self.duplicates = duplicates
        self.rereads = rereads

    def summary(self) -> str:
        """One line for logs: size, requests, and what was dropped, rejected or not verified."""
        parts = [f"{len(self)} tasks in {self.requests} requests"]
        if self.duplicates:
            parts.append(f"{self.duplicates} repeats dropped")
        if self.rejected:
            parts.append(f"{len(self.rejected)} unreadable records skipped")
        if self.rereads:
            parts.append(f"{self.rereads} re-read(s)")
        if not self.verified:
            parts.append(f"NOT verified: {self.unverified_reason}")
        return ", ".join(parts)


def pages_for(total: int, page_size: int) -> int:
    """Pages needed for ``total`` records (at least 1).

    :param total: the number of records.
    :param page_size: records per page.
    """
    return max(1, math.ceil(total / page_size))


def fills_last_page(total: int | None, page_size: int) -> bool:
    """Whether ``total`` records (at least one) fill their last page exactly: then a listing also reads the page
    after it, which must hold nothing its own total does not explain (a total capped on a page boundary shows only
    there).

    :param total: the number of records.
    :param page_size: records per page.
    """
    return total is not None and total > 0 and total % page_size == 0


def full_read_requests(total: int, page_size: int) -> int:
    """Requests one pass over ``total`` records costs with a right ``pages_hint``: its pages, and the page after a
    full last page (``total // page_size + 1`` when there are any).

    :param total: the number of records.
    :param page_size: records per page.
    """
    return pages_for(total, page_size) + fills_last_page(total, page_size)


def expected_count(total: int, page: int, page_size: int) -> int:
    """The records page ``page`` holds if ``total`` is true (an answer is atomic: its page and its total agree).

    :param total: ``totalResults`` of the answer.
    :param page: the page number.
    :param page_size: records per page.
    """
    return min(page_size, max(0, total - (page - 1) * page_size))


@dataclass
class _Pass:
    """One read of every page, from ``first_page`` down to page 1."""

    first_page: int
    tasks: dict[str, Task] = field(default_factory=dict)
    read_order: list[list[str]] = field(default_factory=list)
    """The ids first seen on each read, in read order (last page first)."""
    rejected: dict[str, RejectedRecord] = field(default_factory=dict)
    totals: set[int] = field(default_factory=set)
    last_total: int | None = None
    duplicates: int = 0
    floor: datetime | None = None
    """The oldest ``dateCreated`` read so far: a task first seen later must not be newer."""
    problems: list[str] = field(default_factory=list)
    """Checks that failed in a way a re-read can fix (the queue changed in a way the order cannot absorb)."""
    unordered: str | None = None
    """A page not sorted oldest first: a task was inserted out of order, or the API does not list oldest first."""

    lie: str | None = None
    """A page whose records contradict its own ``totalResults``: the totals cannot be trusted (no re-read)."""
    tail_read: bool = False
    """The page after a full last page was read: a total under-reported exactly on a page boundary shows there."""

    def count_problem(self) -> str | None:
        """With one ``totalResults`` throughout, the distinct records read must be exactly that total. Repeats
        do not switch this off: an unstable order of equal timestamps repeats one task where it hides another."""
        if len(self.totals) > 1 or self.last_total is None:
            return None
        distinct = len(self.tasks) + len(self.rejected)
        if distinct != self.last_total:
            repeats = f" ({self.duplicates} repeats)" if self.duplicates else ""
            return (
                f"read {distinct} distinct tasks{repeats} but the API reported {self.last_total} throughout "
                "(an unstable order of equal dateCreated, or a page that lost or gained a record)"
            )
        return None


def task_key(task: Task) -> tuple[str, datetime]:
    """What the listing reads of a task on a page: its id and ``dateCreated`` (its checks need nothing else).

    :param task: a parsed task.
    """
    return task.id, task.date_created


def pair_key(entry: tuple[str, datetime]) -> tuple[str, datetime]:
    """The same for a page of plain ``(id, dateCreated)`` pairs (``TaskListing(key=pair_key)``): a reader of
    the whole queue that keeps its own records feeds the listing pairs, which the garbage collector does not
    track, instead of one object per task (docs/triggerer-scale.md).

    :param entry: an id and its ``dateCreated``.
    """
    return entry


def _rejected_key(record: RejectedRecord, index: int) -> str:
    return f"id:{record.id}" if record.id else f"page-record:{index}:{record.reason}"


class TaskListing(Exchange[Listing]):
    """The sans-IO state machine of one listing of ``GET /tasks``.

    An exchange (``hooks.exchange``): ``listing = hook.exchange(TaskListing(...))``, one page at a time; a failed
    request ends the listing with its error. The first request is page ``pages_hint`` (default 1): when its
    ``totalResults`` confirms the hint it is the first page of the pass, otherwise it only tells the size.

    :param status: the ``status`` filter (None: the API's default, Open).
    :param types: the ``type`` filter.
    :param page_size: tasks per request (1 to 100).
    :param pages_hint: how many pages the queue had last time (``Listing.pages``); saves the size probe.
    :param max_rereads: passes added when a check fails before the result is returned unverified.
    :param key: what the listing reads of each record of a page, its id and ``dateCreated`` (:func:`task_key`
        for parsed tasks, :func:`pair_key` for plain pairs); the result holds the records as fed.
    """

    def __init__(
        self,
        *,
        status: str | None = "Open",
        types: Sequence[str] | None = None,
        page_size: int = endpoints.MAX_PAGE_SIZE,
        pages_hint: int | None = None,
        max_rereads: int = DEFAULT_MAX_REREADS,
        key: Callable[[Any], tuple[str, datetime]] = task_key,
    ) -> None:
        self.key = key
        self.status = status
        self.types = tuple(types or ())
        self.page_size = page_size
        self.max_rereads = max_rereads
        self.pages_read = 0
        self.rereads = 0
        self.total: int | None = None
        """``totalResults`` of the last answer (None before the first, or when the API gave none)."""
        self._mode = "probe"
        self._next: int | None = max(1, int(pages_hint or 1))
        self._pass: _Pass | None = None
        self._passes: list[_Pass] = []
        self._result: Listing | None = None
        self._forward_reason = "the API reported no totalResults, so the listing cannot be checked"
        endpoints.get_tasks_page(page_size=page_size)  # validates page_size before any request

    def next_calls(self) -> Sequence[endpoints.ApiCall[TaskPage]]:
        """The next request to send, or none when the listing is complete."""
        if self._next is None:
            return []
        return [
            endpoints.get_tasks_page(status=self.status, types=self.types, page=self._next, page_size=self.page_size)
        ]

    def feed(self, call: endpoints.ApiCall[Any], answer: object) -> None:
        """Take the answer to the last call (an error it ended with is raised).

        :param call: the call.
        :param answer: the parsed page, or the error.
        """
        page: TaskPage = unwrap(answer)
        requested = self._next
        if requested is None:
            raise RuntimeError("feed() after the listing finished")
        self.pages_read += 1
        self.total = page.page.total_results
        if self._mode == "probe":
            self._on_first(page, requested)
        elif self._mode == "pass":
            self._on_pass_page(page, requested)
        elif self._mode == "tail":
            self._on_tail_page(page, requested)
        else:
            self._on_forward_page(page, requested)

    def pages_left(self) -> int | None:
        """Requests still to come as far as known now: the rest of the current pass (a re-read that a failed check
        adds is not foreseen); None while reading forward without totals, where the end is unknown."""
        if self._next is None:
            return 0
        if self._mode != "pass":
            return 1 if self._mode == "tail" else None
        return self._next + fills_last_page(self.total, self.page_size)

    def upcoming(self) -> Upcoming | None:
        """After the first page, which tells the queue's size: the rest of the pass, for the sync hook to check
        against the request budget before the bulk."""
        if self.pages_read != 1 or not (left := self.pages_left()):
            return None
        total = f"{self.total:,} tasks, " if self.total is not None else ""
        return Upcoming(left, f"the rest of this task listing ({total}{left:,} more pages)")

    def result(self) -> Listing:
        """The listing, once :meth:`next_calls` is empty."""
        if self._result is None:
            raise RuntimeError("listing not finished")
        return self._result

    # -- the first answer: the size ------------------------------------------------------------------

    def _on_first(self, page: TaskPage, requested: int) -> None:
        total = page.page.total_results
        if total is not None and total >= 0 and page.raw_count != expected_count(total, requested, self.page_size):
            self._forward_reason = (
                f"page {requested} holds {page.raw_count} records but its totalResults {total} says "
                f"{expected_count(total, requested, self.page_size)}: the totals cannot be trusted"
            )
            total = None
        if total is None or total < 0:
            self._mode = "forward"
            self._pass = _Pass(first_page=1)
            if requested == 1:
                self._on_forward_page(page, 1)
            else:
                self._next = 1
            return
        if total == 0:  # one atomic answer, empty and saying so: nothing was open at that instant
            self._pass = _Pass(first_page=1, totals={0}, last_total=0)
            self._finish(self._pass, verified=True)
            return
        last = pages_for(total, self.page_size)
        self._start_pass(last)
        if requested == last:
            self._on_pass_page(page, requested)

    def _start_pass(self, first_page: int) -> None:
        self._mode = "pass"
        self._pass = _Pass(first_page=first_page)
        self._next = first_page

    # -- a pass, last page first -----------------------------------------------------------------------

    def _on_pass_page(self, page: TaskPage, number: int) -> None:
        ps = self._pass
        assert ps is not None
        self._check_page(ps, page, number)
        self._take(ps, page)
        if number > 1:
            self._next = number - 1
        else:
            self._end_pass(ps)

    def _check_page(self, ps: _Pass, page: TaskPage, number: int) -> None:
        total = page.page.total_results
        if total is not None:
            ps.totals.add(total)
            ps.last_total = total
            expected = expected_count(total, number, self.page_size)
            if ps.lie is None and page.raw_count != expected:
                ps.lie = (
                    f"page {number} holds {page.raw_count} records but its totalResults {total} says {expected}: "
                    "the totals cannot be trusted"
                )
        if ps.unordered is None:
            dates = [self.key(t)[1] for t in page.tasks]
            if dates != sorted(dates):
                ps.unordered = f"page {number} is not sorted oldest first, so tasks created meanwhile may be missed"

    def _take(self, ps: _Pass, page: TaskPage) -> None:
        seen, floor = ps.tasks, ps.floor
        new: list[str] = []
        oldest: datetime | None = None
        for task in page.tasks:
            task_id, created = self.key(task)
            oldest = created if oldest is None else min(oldest, created)
            if task_id in seen:
                ps.duplicates += 1
            else:
                new.append(task_id)
                if floor is not None and created > floor and not ps.problems:
                    ps.problems.append(
                        f"task {task_id} (created {created.isoformat()}) appeared among older tasks: "
                        "the queue changed in a way that can hide a task"
                    )
            seen[task_id] = task  # the later read is the fresher copy
        if oldest is not None:
            if floor is not None and not new and not ps.problems:
                ps.problems.append("a whole page repeated tasks already read (does the server ignore Page?)")
            ps.floor = oldest if floor is None else min(floor, oldest)
        ps.read_order.append(new)
        for index, record in enumerate(page.rejected):
            key = _rejected_key(record, index + self.pages_read * self.page_size)
            if key in ps.rejected:
                ps.duplicates += 1
            ps.rejected[key] = record

    def _end_pass(self, ps: _Pass) -> None:
        problem = ps.lie or ps.unordered or (ps.problems[0] if ps.problems else None) or ps.count_problem()
        if problem is not None and ps.lie is None and self.rereads < self.max_rereads:
            self.rereads += 1  # reading again cannot fix a lying total
            self._passes.append(ps)
            self._start_pass(pages_for(ps.last_total or 0, self.page_size))
        elif problem is None and fills_last_page(ps.last_total, self.page_size) and not ps.tail_read:
            self._mode, self._next = "tail", pages_for(ps.last_total or 0, self.page_size) + 1
        else:
            self._finish(ps, verified=problem is None, reason=problem)

    def _on_tail_page(self, page: TaskPage, number: int) -> None:
        """The page after a full last page must be empty by its own total: a total under-reported exactly on a
        page boundary (capped at 1,000 with 1,050 open) shows only here. Then the queue is read on from this page
        to a short page, unverified. Tasks on it that its own, larger total explains were created meanwhile: not
        taken (the guarantee does not cover them), and no doubt either."""
        ps = self._pass
        assert ps is not None
        ps.tail_read = True
        total = page.page.total_results
        if total is not None and page.raw_count == expected_count(total, number, self.page_size):
            self._mode = "pass"
            self._end_pass(ps)
            return
        self._forward_reason = (
            f"page {number}, after the last page by totalResults {ps.last_total}, holds {page.raw_count} records "
            f"(its own totalResults: {total}): the totals cannot be trusted, so the rest was read on to a short page"
        )
        self._mode = "forward"
        self._on_forward_page(page, number)

    # -- no totalResults: forward, unverified ----------------------------------------------------------

    def _on_forward_page(self, page: TaskPage, number: int) -> None:
        ps = self._pass
        assert ps is not None
        before = len(ps.tasks) + len(ps.rejected)
        self._take(ps, page)
        ps.problems.clear()  # no order promise is made in this mode
        new = len(ps.tasks) + len(ps.rejected) - before
        if page.raw_count < self.page_size or new == 0 or number >= MAX_FORWARD_PAGES:
            self._finish(ps, verified=False, reason=self._forward_reason)
        else:
            self._next = number + 1

    # -- the result ------------------------------------------------------------------------------------

    def _finish(self, ps: _Pass, *, verified: bool, reason: str | None = None) -> None:
        self._next = None
        if verified:  # the pages read last-first, each oldest first: reversed, they are the API's order
            tasks = [ps.tasks[i] for ids in reversed(ps.read_order) for i in ids]
            rejected = list(ps.rejected.values())
        else:  # everything any pass read, the latest copy of each
            by_id: dict[str, Task] = {}
            by_key: dict[str, RejectedRecord] = {}
            for each in [*self._passes, ps]:
                by_id.update(each.tasks)
                by_key.update(each.rejected)
            tasks = sorted(by_id.values(), key=lambda t: self.key(t)[1])
            rejected = list(by_key.values())
        total = ps.last_total
        self._result = Listing(
            tasks,
            rejected,
            verified=verified,
            unverified_reason=reason,
            requests=self.pages_read,
            total=total,
            pages=pages_for(total or 0, self.page_size),
            duplicates=ps.duplicates,
            rereads=self.rereads,
        )
