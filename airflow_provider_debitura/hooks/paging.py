"""Reading the whole account queue consistently while it changes underneath.

``GET /tasks`` pages by offset over a live queue: a task solved on page 1 while page 2 is being
read shifts every later task up by one, so a naive page loop silently skips one. This module is
the sans-IO state machine that both hooks drive: it asks for pages, checks every page against the
first (``totalResults``, page sizes, duplicates, the final count) and restarts from page 1 when
the queue moved. One change escapes those checks: a task solved on an earlier page while another is
created leaves every count intact. ``confirm=True`` closes that hole by reading the queue until two
passes return the same ids (twice the requests for a multi-page queue; what the operators use). The
case gates' shared poll reads once and instead confirms every "unblocked" with a direct check.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow_provider_debitura.exceptions import DebituraInconsistentListingError
from airflow_provider_debitura.hooks import endpoints
from airflow_provider_debitura.models import Task, TaskPage

DEFAULT_MAX_RESTARTS = 3


class TaskListing:
    """Drive with ``while (call := listing.next_call()) is not None: listing.feed(send(call))``."""

    def __init__(
        self,
        *,
        status: str | None = "Open",
        types: Sequence[str] | None = None,
        page_size: int = endpoints.MAX_PAGE_SIZE,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        confirm: bool = False,
    ) -> None:
        self.status = status
        self.types = tuple(types or ())
        self.page_size = page_size
        self.max_restarts = max_restarts
        self.confirm = confirm
        self.restarts = 0
        self.pages_read = 0
        self.last_restart_reason: str | None = None
        self._previous_pass: frozenset[str] | None = None
        self._reset()

    def _reset(self) -> None:
        self._page = 1
        self._total: int | None = None
        self._tasks: dict[str, Task] = {}
        self._done = False

    def next_call(self) -> endpoints.ApiCall[TaskPage] | None:
        if self._done:
            return None
        return endpoints.get_tasks_page(status=self.status, types=self.types, page=self._page, page_size=self.page_size)

    def feed(self, page: TaskPage) -> None:
        self.pages_read += 1
        drift = self._drift(page)
        if drift:
            self._restart(drift)
            return
        for task in page.tasks:
            self._tasks[task.id] = task
        last_page = page.page.current_page >= page.page.total_pages or len(page.tasks) < self.page_size
        if not last_page:
            self._page += 1
            return
        if len(self._tasks) != self._total:
            self._restart(f"read {len(self._tasks)} distinct tasks but the API reported {self._total}")
            return
        if self.confirm and self._page > 1:
            self._confirm_pass()
            return
        self._done = True

    def _confirm_pass(self) -> None:
        """One task solved on an earlier page while another is created leaves every count intact yet
        shifts a task past the reader. Only a second pass with the same ids proves the listing whole."""
        ids = frozenset(self._tasks)
        if ids == self._previous_pass:
            self._done = True
            return
        if self._previous_pass is not None:
            self._restart("two passes over the queue read different tasks")
        else:
            self._reset()
        self._previous_pass = ids

    def _drift(self, page: TaskPage) -> str | None:
        total = page.page.total_results
        if self._total is None:
            self._total = total
        elif total != self._total:
            return f"totalResults changed from {self._total} to {total} between pages"
        expected = min(self.page_size, max(0, total - (self._page - 1) * self.page_size))
        if len(page.tasks) != expected:
            return f"page {self._page} held {len(page.tasks)} tasks where {expected} were expected"
        if any(task.id in self._tasks for task in page.tasks):
            return f"page {self._page} repeated tasks already read"
        return None

    def _restart(self, reason: str) -> None:
        if self.restarts >= self.max_restarts:
            raise DebituraInconsistentListingError(
                f"The Debitura task queue kept changing while it was read ({reason}; "
                f"{self.restarts} re-reads); no consistent listing. Try again later."
            )
        self.restarts += 1
        self.last_restart_reason = reason
        self._reset()

    @property
    def done(self) -> bool:
        return self._done

    @property
    def total_results(self) -> int | None:
        return self._total

    def result(self) -> list[Task]:
        if not self._done:
            raise RuntimeError("listing not finished")
        return list(self._tasks.values())
