"""Reading only the end of the open queue, and proving by the counts that the end holds everything new.

The API lists the queue oldest first, so a task created since the last round is appended at the end. The
watcher keeps the order of the last listing it trusted (:class:`QueueOrder`, ids only, in memory) and reads
the last page or two (:class:`TailRead`, a sans-IO exchange of ``hooks.exchange`` like
:class:`~airflow_provider_debitura.hooks.paging.TaskListing`).
The read is *verified*, and stands for a complete listing, when every check holds:

- every answer has one ``totalResults`` ``T``, and holds exactly the records ``T`` puts on its page (a lying,
  capped or lagging total fails here; when the last page is full, the empty page after it is read too, so a
  total capped on a page boundary fails as well);
- no record is unreadable, none repeats, ``dateCreated`` never decreases;
- the window (positions ``S`` to ``T - 1``) starts with the task the trusted listing had at position ``S``
  (nothing before the window was solved or inserted, net), the known tasks in it keep their order, and every
  unknown task comes after them (it was appended).

Then the queue is the trusted listing's first ``S`` ids followed by the window, and the unknown tasks in the
window are all that is new. Anything else is a doubt, and a doubt means a full read. What only a full read
would show: a task inserted *before* the window at the same time as one solved there (the count balances);
the API inserts nothing there (new tasks are created now and listed last), and ``docs/watcher-cost.md``
says so. Cost and formulas: ``docs/watcher-cost.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.hooks.exchange import Exchange, unwrap
from airflow_provider_debitura.hooks.paging import expected_count, fills_last_page
from airflow_provider_debitura.models import Task, TaskPage

MAX_TAIL_REQUESTS = 3
"""Requests a tail read may send before it gives up for a full read (steady state needs 1 or 2)."""


@dataclass(frozen=True)
class QueueOrder:
    """The ids of the last listing the watcher trusted, in the API's order (oldest first).

    :param ids: every record of that listing (tasks outside the watcher's filter included: they take places).
    """

    ids: tuple[str, ...]

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """Each id's position."""
        return {task_id: place for place, task_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class TailResult:
    """What a tail read found.

    :param tasks: every task it read (each once, the latest copy), oldest first; on a doubt too, for the
        full read to add (what was read directly was open).
    :param order: the queue's order now, when verified; None on a doubt.
    :param doubt: why a full read is needed; None when verified.
    :param requests: ``GET /tasks`` requests sent.
    :param new: tasks in the window the trusted listing did not hold.
    """

    tasks: list[Task] = field(default_factory=list)
    order: QueueOrder | None = None
    doubt: str | None = None
    requests: int = 0
    new: int = 0

    @property
    def verified(self) -> bool:
        """The window holds every task that is new since the trusted listing."""
        return self.doubt is None


class TailRead(Exchange[TailResult]):
    """The sans-IO state machine of one tail read of ``GET /tasks``.

    An exchange (``hooks.exchange``): ``result = await hook.exchange(TailRead(known), slots=slots)``; a failed
    request ends the read with its error. The first request is page ``N // page_size + 1`` (``N``: the trusted
    listing's size), the page where the next new task lands; its ``totalResults`` decides the pages to read, last
    first, down to the page that held the trusted listing's last task.

    :param known: the order of the last trusted listing.
    :param status: the ``status`` filter (as the trusted listing used).
    :param types: the ``type`` filter (as the trusted listing used).
    :param page_size: tasks per request.
    :param max_requests: requests allowed before giving up for a full read.
    """

    def __init__(
        self,
        known: QueueOrder,
        *,
        status: str | None = "Open",
        types: Sequence[str] | None = None,
        page_size: int = endpoints.MAX_PAGE_SIZE,
        max_requests: int = MAX_TAIL_REQUESTS,
    ) -> None:
        self.known = known
        self.status = status
        self.types = tuple(types or ())
        self.page_size = page_size
        self.max_requests = max_requests
        size = len(known)
        self.anchor = (size - 1) // page_size + 1 if size else 1
        """The page that held the trusted listing's last task: the window starts there."""
        self._plan: list[int] = [size // page_size + 1]
        self._total: int | None = None
        self._pages: dict[int, TaskPage] = {}
        self._read: dict[str, Task] = {}
        self._result: TailResult | None = None
        self.requests = 0

    def next_calls(self) -> Sequence[endpoints.ApiCall[TaskPage]]:
        """The next request, or none when the read is over."""
        if self._result is not None or not self._plan:
            return []
        return [
            endpoints.get_tasks_page(status=self.status, types=self.types, page=self._plan[0], page_size=self.page_size)
        ]

    def feed(self, call: endpoints.ApiCall[Any], answer: object) -> None:
        """Take the answer to the last call (an error it ended with is raised).

        :param call: the call.
        :param answer: the parsed page, or the error.
        """
        if self._result is not None or not self._plan:
            raise RuntimeError("feed() after the tail read finished")
        page: TaskPage = unwrap(answer)
        number = self._plan.pop(0)
        self.requests += 1
        for task in page.tasks:
            self._read[task.id] = task
        total = page.page.total_results
        if total is None or total < 0:
            return self._doubt("the API reported no totalResults")
        if self._total is None:
            self._plan_pass(number, page, total)
        elif total != self._total:
            return self._doubt(f"totalResults moved from {self._total} to {total} between two pages")
        else:
            self._pages[number] = page
        if self._result is None and not self._plan:
            self._verify()

    def result(self) -> TailResult:
        """The outcome, once :meth:`next_calls` is empty."""
        if self._result is None:
            raise RuntimeError("tail read not finished")
        return self._result

    # -- the pages to read -----------------------------------------------------------------------------

    def _plan_pass(self, number: int, page: TaskPage, total: int) -> None:
        """After the first answer of a pass: its pages, from the last one that holds records down to the anchor
        (last first, so a task solved meanwhile shifts a task onto a page still to read, never past the reader),
        and, when the last page is full, the page after it, which must be empty (a total capped on a page
        boundary shows there). That empty page may be read at any time: no task can shift out of it."""
        size = self.page_size
        last = max(1, -(-total // size))
        confirm = last + 1 if fills_last_page(total, size) else None
        if last < self.anchor:
            self._doubt(f"the queue shrank from {len(self.known)} to {total} tasks: tasks before its end were solved")
            return
        pages = list(range(last, self.anchor - 1, -1))
        if number in (last, confirm):  # this answer is part of the pass
            self._total = total
            self._pages[number] = page
            pages = [p for p in pages if p != number]
            confirm = None if number == confirm else confirm
        if self.requests + len(pages) + (confirm is not None) > self.max_requests:
            grown = total - len(self.known)
            self._doubt(f"{grown:+d} tasks since the last round need more than {self.max_requests} page reads")
            return
        # when the answer was only a probe (it told the size), the pass's own first answer plans again
        self._plan = pages + ([confirm] if confirm is not None else [])

    # -- the checks --------------------------------------------------------------------------------------

    def _window(self) -> tuple[list[Task], str | None]:
        """The pages of the pass in position order, each checked against the one total."""
        total = self._total
        assert total is not None
        tasks: list[Task] = []
        for number in sorted(self._pages):
            page = self._pages[number]
            expected = expected_count(total, number, self.page_size)
            if page.raw_count != expected:
                return [], (
                    f"page {number} holds {page.raw_count} records but its totalResults {total} says {expected}: "
                    "the totals cannot be trusted"
                )
            if page.rejected:
                return [], f"page {number} holds a record that could not be read"
            tasks.extend(page.tasks)
        return tasks, None

    def _verify(self) -> None:
        if self._total is None:
            return self._doubt("no page of the pass was read")
        window, problem = self._window()
        problem = problem or _order_problem(window)
        start = (self.anchor - 1) * self.page_size
        if problem is None and start > 0:
            problem = self._anchor_problem(window, start)
        if problem is not None:
            return self._doubt(problem)
        index = self.known.index
        order = QueueOrder(self.known.ids[:start] + tuple(t.id for t in window))
        self._result = TailResult(
            self._sorted_read(), order, None, self.requests, sum(1 for t in window if t.id not in index)
        )

    def _anchor_problem(self, window: list[Task], start: int) -> str | None:
        """Nothing before the window moved (net), the known tasks kept their order, the unknown ones are last."""
        index = self.known.index
        if not window or index.get(window[0].id) != start:
            return (
                f"position {start} no longer holds the task the last listing had there: tasks before the last "
                "page were solved or inserted"
            )
        last = -1
        appended = False
        for task in window:
            place = index.get(task.id)
            if place is None:
                appended = True
            elif appended or place <= last:
                return f"task {task.id} moved: the known tasks on the last pages are not in their old order"
            else:
                last = place
        return None

    def _sorted_read(self) -> list[Task]:
        return sorted(self._read.values(), key=lambda t: t.date_created)

    def _doubt(self, reason: str) -> None:
        self._plan = []
        self._result = TailResult(self._sorted_read(), None, reason, self.requests, 0)


def _order_problem(window: list[Task]) -> str | None:
    seen: set[str] = set()
    previous = None
    for task in window:
        if task.id in seen:
            return f"task {task.id} is listed twice on the last pages: the queue shifted while they were read"
        seen.add(task.id)
        if previous is not None and task.date_created < previous:
            return "the last pages are not sorted oldest first"
        previous = task.date_created
    return None
